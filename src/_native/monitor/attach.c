/* The attach server: a SOCK_SEQPACKET unix socket in the state dir (see
 * protocol.h).  Any number of clients up to CRN_ATTACH_CLIENTS_MAX may
 * subscribe to output and feed stdin.  The monitor never waits for a client:
 * one that cannot take a packet at once is disconnected, so a stuck reader
 * can neither stall the container nor hole the log. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "monitor.h"

int crn_attach_listen(struct crn_monitor *m, crn_error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    cleanup_fd int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return crn_error_set(err, errno, "socket", NULL);
    /* Through our dir fd, so a long state dir path fits in sun_path. */
    snprintf(addr.sun_path, sizeof(addr.sun_path), "/proc/self/fd/%d/%s", m->state_dirfd,
             CRN_ATTACH_SOCKET_NAME);
    unlinkat(m->state_dirfd, CRN_ATTACH_SOCKET_NAME, 0);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return crn_error_set(err, errno, "bind", m->opts.state_dir);
    if (fchmodat(m->state_dirfd, CRN_ATTACH_SOCKET_NAME, 0600, 0) < 0 ||
        listen(fd, CRN_ATTACH_CLIENTS_MAX) < 0) {
        crn_error_set(err, errno, "listen", m->opts.state_dir);
        unlinkat(m->state_dirfd, CRN_ATTACH_SOCKET_NAME, 0);
        return -1;
    }
    if (crn_epoll_add(m, fd, EPOLLIN, CRN_EV(CRN_EV_LISTEN, 0), err) < 0) {
        unlinkat(m->state_dirfd, CRN_ATTACH_SOCKET_NAME, 0);
        return -1;
    }
    m->listen_fd = crn_take_fd(&fd);
    return 0;
}

static struct crn_client *free_slot(struct crn_monitor *m, int *idx)
{
    for (*idx = 0; *idx < CRN_ATTACH_CLIENTS_MAX; (*idx)++)
        if (m->clients[*idx].fd < 0)
            return &m->clients[*idx];
    return NULL;
}

void crn_attach_accept(struct crn_monitor *m)
{
    int fd, idx;
    struct crn_client *c;
    bool paused = crn_stdin_backed_up(m);

    while ((fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        c = free_slot(m, &idx);
        if (c == NULL ||
            crn_epoll_add(m, fd, paused ? 0 : EPOLLIN, CRN_EV(CRN_EV_CLIENT, idx), NULL) < 0) {
            close(fd);
            continue;
        }
        *c = (struct crn_client){.fd = fd, .flags = 0, .paused = paused};
    }
}

static void drop_client(struct crn_monitor *m, struct crn_client *c)
{
    bool owned_stdin = c->flags & CRN_ATTACH_STDIN;
    crn_error err;

    epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    *c = (struct crn_client){.fd = -1};
    if (owned_stdin && m->opts.stdin_once && m->in.fd >= 0)
        crn_stdin_close(m, &err);
}

static bool send_packet(struct crn_monitor *m, struct crn_client *c, const void *buf, size_t len)
{
    if (send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
        return true;
    drop_client(m, c);
    return false;
}

void crn_attach_client_event(struct crn_monitor *m, int idx, uint32_t events)
{
    struct crn_client *c = &m->clients[idx];
    unsigned char reply[6] = {CRN_MSG_REPLY};
    ssize_t n;
    int32_t rc;

    for (int budget = 8; c->fd >= 0 && !c->paused && budget > 0; budget--) {
        n = recv(c->fd, m->frame, sizeof(m->frame), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            drop_client(m, c);
            return;
        }
        rc = crn_control_request(m, c, (uint8_t)m->frame[0], m->frame + 1, (size_t)n - 1);
        if (rc < 0)
            continue; /* no reply for this type */
        reply[1] = (unsigned char)m->frame[0];
        rc = (int32_t)htonl((uint32_t)rc);
        memcpy(reply + 2, &rc, sizeof(rc));
        if (!send_packet(m, c, reply, sizeof(reply)))
            return;
    }
    /* a paused client is not read, so its hangup is final (and would keep
     * waking a level-triggered epoll) */
    if (c->fd >= 0 && (events & (EPOLLHUP | EPOLLERR)) && (c->paused || !(events & EPOLLIN)))
        drop_client(m, c);
}

void crn_attach_broadcast(struct crn_monitor *m, uint8_t want_flag, size_t len)
{
    for (int i = 0; i < CRN_ATTACH_CLIENTS_MAX; i++)
        if (m->clients[i].fd >= 0 && (m->clients[i].flags & want_flag))
            send_packet(m, &m->clients[i], m->frame, len);
}

void crn_attach_send_exit(struct crn_monitor *m, int code)
{
    unsigned char pkt[5] = {CRN_MSG_EXIT};
    uint32_t be = htonl((uint32_t)code);

    memcpy(pkt + 1, &be, sizeof(be));
    for (int i = 0; i < CRN_ATTACH_CLIENTS_MAX; i++)
        if (m->clients[i].fd >= 0)
            send_packet(m, &m->clients[i], pkt, sizeof(pkt));
}

void crn_attach_pause(struct crn_monitor *m, bool paused)
{
    for (int i = 0; i < CRN_ATTACH_CLIENTS_MAX; i++) {
        struct crn_client *c = &m->clients[i];
        if (c->fd < 0 || c->paused == paused)
            continue;
        c->paused = paused;
        crn_epoll_mod(m, c->fd, paused ? 0 : EPOLLIN, CRN_EV(CRN_EV_CLIENT, i));
    }
}

void crn_attach_shutdown(struct crn_monitor *m)
{
    for (int i = 0; i < CRN_ATTACH_CLIENTS_MAX; i++)
        if (m->clients[i].fd >= 0) {
            close(m->clients[i].fd);
            m->clients[i].fd = -1;
        }
    if (m->listen_fd >= 0) {
        unlinkat(m->state_dirfd, CRN_ATTACH_SOCKET_NAME, 0);
        close(m->listen_fd);
        m->listen_fd = -1;
    }
}
