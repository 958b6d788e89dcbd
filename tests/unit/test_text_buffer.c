/* src/core/text_buffer.c: growth keeps what was appended and the NUL after
 * it, formatted text lands whole whether or not it fits the room there is,
 * and a length past SIZE_MAX or a failed allocation is reported (return
 * value and the sticky `failed`) with the contents left as they were. */
#include <stdint.h>
#include <string.h>

#include "core/text_buffer.h"
#include "test_util.h"

/* A failed allocation is part of the contract under test: under
 * AddressSanitizer, have malloc return NULL for a huge size, as glibc does,
 * rather than stop the process. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static void test_growth(void) {
    text_buffer b = {0};
    CHECK(b.data == NULL && b.len == 0);
    /* 10,000 small appends: every byte kept in order, always a C string */
    char expect[10001];
    for (int i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        CHECK(text_buffer_append(&b, &c, 1));
    }
    expect[10000] = '\0';
    CHECK(b.len == 10000 && b.cap > b.len);
    CHECK(strcmp(b.data, expect) == 0);
    /* embedded NULs count as bytes */
    CHECK(text_buffer_append(&b, "x\0y", 3));
    CHECK(b.len == 10003 && memcmp(b.data + 10000, "x\0y", 4) == 0);
    /* an empty append still makes a C string of an empty buffer */
    text_buffer e = {0};
    CHECK(text_buffer_append(&e, "", 0));
    CHECK(e.data && e.len == 0 && e.data[0] == '\0');
    text_buffer_free(&e);
    text_buffer_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && !b.failed);
}

static void test_reserve(void) {
    text_buffer b = {0};
    CHECK(text_buffer_reserve(&b, 1000));
    CHECK(b.data && b.cap >= 1001 && b.len == 0 && b.data[0] == '\0');
    char *before = b.data;
    char chunk[100];
    memset(chunk, 'q', sizeof chunk);
    for (int i = 0; i < 10; i++) CHECK(text_buffer_append(&b, chunk, sizeof chunk));
    CHECK(b.data == before); /* reserved: no reallocation */
    CHECK(b.len == 1000 && b.data[1000] == '\0');
    text_buffer_free(&b);
}

static void test_printf(void) {
    text_buffer b = {0};
    CHECK(text_buffer_printf(&b, "%s=%d", "n", 42));
    CHECK(b.len == 4 && strcmp(b.data, "n=42") == 0);
    /* longer than the room left: written whole after growing */
    char word[3000];
    memset(word, 'w', sizeof word - 1);
    word[sizeof word - 1] = '\0';
    CHECK(text_buffer_printf(&b, "[%s]", word));
    CHECK(b.len == 4 + 2 + 2999);
    CHECK(b.data[4] == '[' && b.data[5] == 'w' && b.data[b.len - 1] == ']' && b.data[b.len] == '\0');
    /* fits the room now: one pass */
    size_t cap = b.cap;
    CHECK(text_buffer_printf(&b, "%c", '!'));
    CHECK(b.cap == cap && b.data[b.len - 1] == '!' && b.data[b.len] == '\0');
    /* an empty format appends nothing and allocates a C string */
    text_buffer e = {0};
    CHECK(text_buffer_printf(&e, "%s", ""));
    CHECK(e.data && e.len == 0 && e.data[0] == '\0');
    text_buffer_free(&e);
    text_buffer_free(&b);
}

static void test_edit(void) {
    text_buffer b = {0};
    CHECK(text_buffer_append(&b, "hello, world", 12));
    text_buffer_truncate(&b, 5);
    CHECK(b.len == 5 && strcmp(b.data, "hello") == 0);
    text_buffer_truncate(&b, 99); /* longer than the text: no change */
    CHECK(b.len == 5);
    text_buffer_drop_front(&b, 2);
    CHECK(b.len == 3 && strcmp(b.data, "llo") == 0);
    text_buffer_drop_front(&b, 0);
    CHECK(b.len == 3);
    text_buffer_drop_front(&b, 3);
    CHECK(b.len == 0 && b.data[0] == '\0');
    char *kept = b.data;
    CHECK(text_buffer_append(&b, "abc", 3));
    text_buffer_reset(&b);
    CHECK(b.len == 0 && b.data == kept && b.data[0] == '\0'); /* memory kept */
    text_buffer_drop_front(&(text_buffer){0}, 0);            /* nothing allocated: no access */
    text_buffer_free(&b);
}

static void test_failure_reported(void) {
    text_buffer b = {0};
    CHECK(text_buffer_append(&b, "keep", 4));
    /* len + n + 1 overflows size_t: refused before any allocation */
    CHECK(!text_buffer_append(&b, "x", SIZE_MAX - 2));
    CHECK(b.failed && b.len == 4 && strcmp(b.data, "keep") == 0);
    /* sticky: later appends and printfs do nothing, and say so */
    CHECK(!text_buffer_append(&b, "more", 4));
    CHECK(!text_buffer_printf(&b, "%d", 7));
    CHECK(!text_buffer_reserve(&b, 1));
    CHECK(b.len == 4 && strcmp(b.data, "keep") == 0);
    /* reset makes it usable again */
    text_buffer_reset(&b);
    CHECK(!b.failed && text_buffer_append(&b, "ok", 2) && strcmp(b.data, "ok") == 0);
    CHECK(!text_buffer_reserve(&b, SIZE_MAX));
    CHECK(b.failed);
    text_buffer_reset(&b);
    /* an allocation that cannot succeed (more than the address space):
     * realloc returns NULL; the old bytes stay */
    CHECK(!text_buffer_reserve(&b, SIZE_MAX / 2));
    CHECK(b.failed && b.len == 0 && b.data && b.data[0] == '\0');
    text_buffer_free(&b);
    CHECK(!b.failed);
}

int main(void) {
    RUN_TEST(test_growth);
    RUN_TEST(test_reserve);
    RUN_TEST(test_printf);
    RUN_TEST(test_edit);
    RUN_TEST(test_failure_reported);
    return test_finish();
}
