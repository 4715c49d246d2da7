/* crio-native-pause: the infra process of a pod that asked for a pod-level
 * PID namespace.  It is PID 1 there: it reaps orphans the pod's containers
 * leave behind and exits on SIGTERM/SIGINT.  Statically linked, because it is
 * bind-mounted alone into an otherwise empty root. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* A systemd scope's placeholder (linux/systemd/scope.py): systemd wants a
 * process in a scope before the container exists.  It waits for EOF on
 * stdin, that is until the runtime lets it go or dies.  Static, so its exec
 * costs next to nothing. */
static int until_eof(void)
{
    char buf[64];

    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR))
            return 0;
    }
}

int main(int argc, char **argv)
{
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};

    if (argc > 1 && strcmp(argv[1], "--until-eof") == 0)
        return until_eof();
    if (getpid() != 1)
        return 2; /* only meaningful as a namespace's init */
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;)
        pause();
}
