/* Number formatting that neither allocates nor takes locks: usable in the
 * child between clone and execve as well as in the parent. */
#ifndef CRN_FMT_H
#define CRN_FMT_H

/* "/proc/self/fd/N" into buf (at least 32 bytes). */
void crn_fd_path(char *buf, int fd);
/* Decimal of v into buf (at least 24 bytes). */
void crn_itoa(char *buf, long long v);

#endif
