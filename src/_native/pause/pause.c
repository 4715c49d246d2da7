/* crio-native-pause: the infra process of a pod that asked for a pod-level
 * PID namespace.  It is PID 1 there: it reaps orphans the pod's containers
 * leave behind and exits on SIGTERM/SIGINT.  Statically linked, because it is
 * bind-mounted alone into an otherwise empty root. */
#include <signal.h>
#include <stdlib.h>
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

int main(void)
{
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};

    if (getpid() != 1)
        return 2; /* only meaningful as a namespace's init */
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;)
        pause();
}
