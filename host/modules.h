#ifndef HPLUA_MODULES_H
#define HPLUA_MODULES_H
#include <stddef.h>

typedef struct hplua_embedded {
    const char *name; /* module name for require */
    const char *path; /* path relative to the source tree */
    const char *src;
    size_t len;
} hplua_embedded;

extern const hplua_embedded hplua_embedded_modules[];

#endif
