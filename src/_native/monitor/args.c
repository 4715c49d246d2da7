/* The monitor's command line:
 *
 *   crio-native-monitor --state-dir DIR [--id ID] [--log-path FILE]
 *       [--cgroup-path DIR] [--sync-fd N] [--stdin] [--stdin-once]
 *       [--terminal] [--container-pid-file FILE [--console-socket PATH]
 *       [--warm-cgroup PROCS]] -- COMMAND [ARG...]
 *   crio-native-monitor --state-dir DIR [...] --plan FILE
 *
 * With --container-pid-file, COMMAND is an OCI runtime's `create` (runc,
 * crun): it makes the container process and exits, the process is
 * reparented to us (we are a child subreaper) and FILE names it; for a
 * container with a terminal the runtime sends the pty master to the socket
 * we listen on at PATH (its --console-socket; console.c), and PROCS is
 * our own cgroup's cgroup.procs, kept warm while it runs (adopt.c).  With
 * --plan there is no COMMAND: FILE is the built-in runtime's launch plan.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

enum { OPT_ID = 256, OPT_STATE_DIR, OPT_LOG_PATH, OPT_CGROUP, OPT_SYNC_FD, OPT_STDIN,
       OPT_STDIN_ONCE, OPT_TERMINAL, OPT_PID_FILE, OPT_PLAN, OPT_CONSOLE, OPT_GATE,
       OPT_WARM };

static const struct option long_opts[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"log-path", required_argument, NULL, OPT_LOG_PATH},
    {"cgroup-path", required_argument, NULL, OPT_CGROUP},
    {"sync-fd", required_argument, NULL, OPT_SYNC_FD},
    {"stdin", no_argument, NULL, OPT_STDIN},
    {"stdin-once", no_argument, NULL, OPT_STDIN_ONCE},
    {"terminal", no_argument, NULL, OPT_TERMINAL},
    {"container-pid-file", required_argument, NULL, OPT_PID_FILE},
    {"plan", required_argument, NULL, OPT_PLAN},
    {"console-socket", required_argument, NULL, OPT_CONSOLE},
    {"gate", no_argument, NULL, OPT_GATE},
    {"warm-cgroup", required_argument, NULL, OPT_WARM},
    {NULL, 0, NULL, 0},
};

static int parse_fd(const char *s, int *out, crn_error *err)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 3 || v > 65535)
        return crn_error_set(err, EINVAL, "invalid --sync-fd", s);
    *out = (int)v;
    return 0;
}

static int apply(struct crn_monitor_opts *o, int opt, const char *arg, crn_error *err)
{
    switch (opt) {
    case OPT_ID: o->id = arg; return 0;
    case OPT_STATE_DIR: o->state_dir = arg; return 0;
    case OPT_LOG_PATH: o->log_path = arg; return 0;
    case OPT_CGROUP: o->cgroup_path = arg; return 0;
    case OPT_SYNC_FD: return parse_fd(arg, &o->sync_fd, err);
    case OPT_STDIN: o->stdin_open = true; return 0;
    case OPT_STDIN_ONCE: o->stdin_once = true; return 0;
    case OPT_TERMINAL: o->terminal = true; return 0;
    case OPT_PID_FILE: o->container_pid_file = arg; return 0;
    case OPT_PLAN: o->plan_path = arg; return 0;
    case OPT_CONSOLE: o->console_socket = arg; return 0;
    case OPT_GATE: o->gate = true; return 0;
    case OPT_WARM: o->warm_cgroup = arg; return 0;
    default: return crn_error_set(err, EINVAL, "unknown option", NULL);
    }
}

int crn_monitor_parse_args(struct crn_monitor_opts *o, int argc, char **argv, crn_error *err)
{
    int opt;

    memset(o, 0, sizeof(*o));
    o->sync_fd = -1;
    o->id = "";
    opterr = 0;
    /* '+': stop at the first non-option, which starts the container command */
    while ((opt = getopt_long(argc, argv, "+", long_opts, NULL)) != -1) {
        if (opt == '?')
            return crn_error_set(err, EINVAL, "unknown option", argv[optind - 1]);
        if (apply(o, opt, optarg, err) < 0)
            return -1;
    }
    if (o->state_dir == NULL)
        return crn_error_set(err, EINVAL, "missing option", "--state-dir");
    if (o->plan_path && o->container_pid_file)
        return crn_error_set(err, EINVAL, "--plan with --container-pid-file is not supported",
                             NULL);
    if (o->gate && (!o->plan_path || o->sync_fd < 0))
        return crn_error_set(err, EINVAL, "--gate needs --plan and --sync-fd", NULL);
    if (o->plan_path && optind < argc)
        return crn_error_set(err, EINVAL, "--plan takes no container command, got",
                             argv[optind]);
    if (!o->plan_path && optind >= argc)
        return crn_error_set(err, EINVAL, "missing container command after", "--");
    if (o->stdin_once && !o->stdin_open)
        return crn_error_set(err, EINVAL, "--stdin-once needs", "--stdin");
    /* an OCI runtime makes the pty itself and hands the master back */
    if (o->console_socket && !o->container_pid_file)
        return crn_error_set(err, EINVAL, "--console-socket needs", "--container-pid-file");
    if (o->warm_cgroup && !o->container_pid_file)
        return crn_error_set(err, EINVAL, "--warm-cgroup needs", "--container-pid-file");
    if (o->terminal && o->container_pid_file && !o->console_socket)
        return crn_error_set(err, EINVAL, "--terminal with --container-pid-file needs",
                             "--console-socket");
    if (o->console_socket)
        o->terminal = true;
    o->argv = o->plan_path ? NULL : &argv[optind];
    return 0;
}
