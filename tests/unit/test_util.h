/* A tiny assertion harness for unit tests: CHECK records a failure with its
 * location and goes on; a test binary exits non-zero if any check failed and
 * prints "N passed, N failed" last. */
#ifndef LLMRT_TEST_UTIL_H
#define LLMRT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int test_checks_passed;
extern int test_checks_failed;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) test_checks_passed++;                                             \
        else {                                                                      \
            test_checks_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (cond) test_checks_passed++;                                       \
        else {                                                                \
            test_checks_failed++;                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

/* Checks a call returned LLMRT_OK, printing llmrt_last_error() otherwise. */
#define CHECK_OK(expr) CHECK_MSG((expr) == 0, "%s", llmrt_last_error())

/* Runs a test function, printing its name. */
#define RUN_TEST(fn)                         \
    do {                                     \
        fprintf(stderr, "-- %s\n", #fn);     \
        fn();                                \
    } while (0)

/* Runs a test function with one argument, printing its name. */
#define RUN_TEST_ARG(fn, arg)                \
    do {                                     \
        fprintf(stderr, "-- %s\n", #fn);     \
        fn(arg);                             \
    } while (0)

/* Prints the summary line and returns the process exit code. */
int test_finish(void);

/* Deterministic pseudo-random numbers (xorshift64*) for fresh inputs. */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state); /* [-1, 1) */
void test_fill_random(float *x, size_t n, uint64_t *state, float scale);

/* ‖a − b‖ / ‖b‖ */
double test_rel_l2(const float *a, const float *b, size_t n);

/* A fresh temporary directory (malloc'd path), removed by the OS eventually. */
char *test_temp_dir(void);

#endif
