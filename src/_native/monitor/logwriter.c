/* The CRI container log format, one entry per line:
 *
 *   2024-01-02T15:04:05.999999999Z stdout F some text
 *
 * an RFC 3339 UTC timestamp with nanoseconds, the stream, and F for a full
 * line or P for a partial one.  Output is written as it arrives, never held
 * back: a read that ends mid-line gives a P entry and the rest of the line
 * follows in later entries, the last one F.  A line longer than
 * CRN_LOG_LINE_MAX is cut into P entries of that size.  Readers (the kubelet,
 * crictl logs) join P entries up to the next F of the same stream. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "monitor.h"

static const char *const stream_names[] = {"stdout", "stderr"};

void crn_format_time(char *buf, size_t size, const struct timespec *ts)
{
    struct tm tm;

    gmtime_r(&ts->tv_sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec);
}

int crn_log_open(struct crn_log *log, const char *path, crn_error *err)
{
    log->path = path;
    log->fd = -1;
    if (path == NULL)
        return 0;
    log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log->fd < 0)
        return crn_error_set(err, errno, "open", path);
    return 0;
}

/* For log rotation: the old file was renamed away; start a new one at the
 * path.  The old fd is kept if the new open fails, so no output is lost. */
int crn_log_reopen(struct crn_log *log, crn_error *err)
{
    int fd;

    if (log->path == NULL)
        return crn_error_set(err, ENOENT, "reopen log: no log path", NULL);
    fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return crn_error_set(err, errno, "open", log->path);
    if (log->fd >= 0)
        close(log->fd);
    log->fd = fd;
    return 0;
}

void crn_log_close(struct crn_log *log)
{
    if (log->fd >= 0)
        close(log->fd);
    log->fd = -1;
}

/* writev until done; a log that cannot be written (ENOSPC) loses the entry
 * rather than stalling the container. */
static void write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
}

static void write_entry(struct crn_log *log, enum crn_stream stream, const char *data,
                        size_t len, bool full)
{
    char head[64];
    struct timespec now;
    struct iovec iov[3];
    int hlen;

    clock_gettime(CLOCK_REALTIME, &now);
    crn_format_time(head, sizeof(head), &now);
    hlen = (int)strlen(head);
    hlen += snprintf(head + hlen, sizeof(head) - (size_t)hlen, " %s %c ",
                     stream_names[stream], full ? 'F' : 'P');
    iov[0] = (struct iovec){head, (size_t)hlen};
    iov[1] = (struct iovec){(void *)data, len};
    iov[2] = (struct iovec){"\n", 1};
    write_all(log->fd, iov, 3);
}

void crn_log_write(struct crn_log *log, enum crn_stream stream, const char *data, size_t len)
{
    if (log->fd < 0)
        return;
    while (len > 0) {
        size_t window = len < CRN_LOG_LINE_MAX + 1 ? len : CRN_LOG_LINE_MAX + 1;
        const char *nl = memchr(data, '\n', window);
        size_t seg = nl ? (size_t)(nl - data) : (window > CRN_LOG_LINE_MAX ? CRN_LOG_LINE_MAX : window);

        write_entry(log, stream, data, seg, nl != NULL);
        seg += nl ? 1 : 0;
        data += seg;
        len -= seg;
    }
}
