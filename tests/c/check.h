/* The checks of the C unit tests (test_stream.c, test_heap.c): CHECK(cond) reports a
 * condition that does not hold, with its place, and counts it; main ends with
 * checks_done(name), its exit status. */
#ifndef HPLUA_TESTS_CHECK_H
#define HPLUA_TESTS_CHECK_H
#include <stdio.h>

static int failures;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

static int checks_done(const char *name)
{
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
