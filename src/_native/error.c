#include <string.h>

#include "error.h"

/* A bounded append that never calls into stdio, so it stays async-signal-safe. */
static size_t append(char *dst, size_t used, const char *src)
{
    while (src && *src && used + 1 < CRN_ERROR_MSG_MAX)
        dst[used++] = *src++;
    dst[used] = '\0';
    return used;
}

int crn_error_set(crn_error *e, int err, const char *syscall_name, const char *path)
{
    size_t used = 0;

    if (e == NULL)
        return -1;
    e->err = err;
    e->msg[0] = '\0';
    used = append(e->msg, used, syscall_name);
    if (path != NULL) {
        used = append(e->msg, used, " `");
        used = append(e->msg, used, path);
        append(e->msg, used, "`");
    }
    return -1;
}

void crn_error_clear(crn_error *e)
{
    e->err = 0;
    e->msg[0] = '\0';
}
