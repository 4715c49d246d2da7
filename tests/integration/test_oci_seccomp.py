"""Seccomp: the OCI section compiled with libseccomp and loaded by the child,
compared with runc on the same bundle."""
from __future__ import annotations

import pytest

# Also run inside the pure cgroup v2 VM by `make test` (crun works there as a second oracle).
pytestmark = [pytest.mark.root, pytest.mark.vm]

PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["chmod", "fchmodat", "fchmod"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]},
        {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
    ],
}
PROBE = ("grep -E '^(Seccomp|NoNewPrivs)' /proc/self/status; mkdir /tmp/x 2>&1; "
         "chmod 600 /bin/busybox 2>&1; hostname abcde 2>&1; hostname abcdef 2>&1; hostname; true")


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
def test_seccomp_errno_rules(builtin, oracle, make_bundle, nnp):
    def edit(spec):
        spec["linux"]["seccomp"] = PROFILE
        spec["process"]["noNewPrivileges"] = nnp
        spec["root"]["readonly"] = False
        spec["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
        spec["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN")
        spec["process"]["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    mine = builtin.run(make_bundle(["sh", "-c", PROBE], edit))
    ref = oracle.run(make_bundle(["sh", "-c", PROBE], edit))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out
    lines = mine.out.splitlines()
    assert "Seccomp:\t2" in lines and f"NoNewPrivs:\t{int(nnp)}" in lines
    assert any("Permission denied" in x for x in lines)
    assert any("Operation not permitted" in x for x in lines)
    assert any("Function not implemented" in x for x in lines)
    assert lines[-1] == "abcdef"


def test_seccomp_errno_default_and_allowlist(builtin, oracle, make_bundle):
    """An allowlist with ERRNO default: busybox `true` needs only a few calls."""
    allowed = ["execve", "exit_group", "exit", "brk", "arch_prctl", "set_tid_address",
               "getuid", "geteuid", "rt_sigaction", "rt_sigprocmask", "poll", "read", "close",
               "write", "getpid", "getppid", "uname", "set_robust_list", "prlimit64", "mmap",
               "munmap", "mprotect", "readlink", "getcwd", "fstat", "newfstatat", "ioctl",
               "rseq", "futex", "capget", "capset", "setresuid", "setresgid", "setgroups",
               "prctl", "chdir", "umask", "close_range", "fcntl", "stat", "statx", "openat",
               "epoll_pwait", "epoll_ctl", "epoll_create1", "nanosleep", "sched_yield",
               "tgkill", "sigaltstack", "gettid", "mincore", "madvise", "clone", "wait4",
               "rt_sigreturn", "fstatfs", "statfs", "getdents64", "dup2", "pipe", "pipe2", "execveat", "vfork", "getpgrp", "setpgid"]

    def edit(spec):
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    script = ["sh", "-c", "echo ok; mkdir /tmp/x 2>&1; true"]
    mine = builtin.run(make_bundle(script, edit))
    ref = oracle.run(make_bundle(script, edit))
    assert (mine.code, mine.out) == (ref.code, ref.out), ref.err
    assert mine.out == "ok\nmkdir: can't create directory '/tmp/x': Operation not permitted\n"


def test_project_default_profile(builtin, oracle, make_bundle):
    """The daemon's RuntimeDefault profile, rendered by crio_native.spec, in
    both runtimes: ordinary work runs, blocked calls fail alike."""
    import json
    import os
    from pathlib import Path

    from crio_native.spec.seccomp import render_template

    profile = json.loads((Path(__file__).parents[2] / "contrib" / "seccomp" /
                          "crio-native-default.json").read_text())

    def edit(spec):
        caps = spec["process"]["capabilities"]["bounding"]
        spec["linux"]["seccomp"] = render_template(profile, caps, os.uname().machine)
    script = ("grep '^Seccomp:' /proc/self/status; ls / | wc -l; "
              "unshare -U true 2>&1; mount -t tmpfs t /tmp 2>&1; echo done")
    mine = builtin.run(make_bundle(["sh", "-c", script], edit))
    ref = oracle.run(make_bundle(["sh", "-c", script], edit))
    assert (mine.code, mine.out) == (ref.code, ref.out), (mine.err, ref.err)
    assert mine.out.startswith("Seccomp:\t2\n") and mine.out.endswith("done\n")
