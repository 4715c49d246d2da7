/* Async-signal-safe formatting (fmt.h). */
#include <string.h>

#include "fmt.h"

void crn_itoa(char *buf, long long v)
{
    char tmp[24];
    int n = 0, i = 0;
    unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[i++] = '-';
    while (n)
        buf[i++] = tmp[--n];
    buf[i] = '\0';
}

void crn_fd_path(char *buf, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    memcpy(buf, prefix, sizeof(prefix) - 1);
    crn_itoa(buf + sizeof(prefix) - 1, fd);
}
