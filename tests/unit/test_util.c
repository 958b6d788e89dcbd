#define _GNU_SOURCE
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int test_checks_passed;
int test_checks_failed;

int test_finish(void) {
    printf("%d passed, %d failed\n", test_checks_passed, test_checks_failed);
    return test_checks_failed ? 1 : 0;
}

uint64_t test_rand_u64(uint64_t *state) {
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

float test_rand_uniform(uint64_t *state) {
    return (float)((test_rand_u64(state) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

void test_fill_random(float *x, size_t n, uint64_t *state, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = test_rand_uniform(state) * scale;
}

double test_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

char *test_temp_dir(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char *path = malloc(strlen(base) + 32);
    sprintf(path, "%s/llmrt-test-XXXXXX", base);
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}
