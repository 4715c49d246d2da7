"""The RuntimeDefault seccomp profile, as a template.

Deny by default with EPERM; allow the syscalls ordinary workloads use; allow
the privileged ones only when the container holds the capability the kernel
would check anyway; keep namespace creation (clone flags, unshare, setns)
and the kernel keyring, module loading, kexec, io_uring and the like out of
reach.  Equivalent in effect to the profiles CRI-O and containerd ship.

Template entries may carry "includes" / "excludes" with "caps" and
"arches"; seccomp.render_template() turns the template into an OCI
linux.seccomp section for one container's capabilities and architecture.
`python -m crio_native.spec.seccomp_default` prints it as JSON (that is how
contrib/seccomp/crio-native-default.json is made)."""
from __future__ import annotations

import functools
import json
from typing import Any

EPERM = 1
ENOSYS = 38

# Namespace flags clone(2) may not carry without CAP_SYS_ADMIN: CLONE_NEWNS,
# NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 \
    | 0x10000000 | 0x20000000 | 0x40000000

# personality(2) values that only change how the ABI looks: PER_LINUX,
# PER_LINUX32, UNAME26 with each, and the 0xffffffff query.
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

ARCH_MAP = [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    {"architecture": "SCMP_ARCH_PPC64LE", "subArchitectures": []},
    {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
    {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []},
]

_FILES = """
access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat fchmodat2
chown chown32 fchown fchown32 fchownat lchown lchown32 umask
open openat openat2 creat close close_range dup dup2 dup3 fcntl fcntl64 flock
read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2
lseek _llseek sendfile sendfile64 splice tee copy_file_range readahead
stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64
fstatfs fstatfs64 truncate truncate64 ftruncate ftruncate64 fallocate
fadvise64 fadvise64_64 fsync fdatasync sync syncfs sync_file_range
mkdir mkdirat mknod mknodat rmdir rename renameat renameat2 link linkat
unlink unlinkat symlink symlinkat readlink readlinkat
getdents getdents64 utime utimes utimensat utimensat_time64 futimesat
getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr
flistxattr removexattr lremovexattr fremovexattr
inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
memfd_create memfd_secret
landlock_create_ruleset landlock_add_rule landlock_restrict_self
io_setup io_destroy io_submit io_cancel io_getevents
"""

_EVENTS = """
poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old
epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4
timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime timerfd_gettime64
futex futex_time64
get_robust_list set_robust_list membarrier pipe pipe2
"""

_MEMORY = """
brk mmap mmap2 munmap mremap mprotect madvise msync mincore remap_file_pages
mlock mlock2 mlockall munlock munlockall pkey_alloc pkey_free pkey_mprotect
"""

_PROCESS = """
execve execveat exit exit_group fork vfork wait4 waitid waitpid
getpid getppid gettid getpgid setpgid getpgrp getsid setsid
set_tid_address set_thread_area get_thread_area rseq restart_syscall
prctl capget capset seccomp
getrlimit setrlimit ugetrlimit prlimit64 getrusage getpriority setpriority
ioprio_get ioprio_set sched_yield sched_getaffinity sched_setaffinity
sched_getattr sched_setattr sched_getparam sched_setparam sched_getscheduler
sched_setscheduler sched_get_priority_max sched_get_priority_min
sched_rr_get_interval sched_rr_get_interval_time64
kill tkill tgkill pidfd_open pidfd_send_signal process_mrelease
rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo rt_tgsigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
sigaltstack signal sigprocmask sigreturn pause
getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32
getresuid getresuid32 getresgid getresgid32 getgroups getgroups32
setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
setgroups setgroups32
ptrace pidfd_getfd process_vm_readv process_vm_writev
"""

_TIME = """
time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
clock_nanosleep clock_nanosleep_time64 nanosleep alarm getitimer setitimer times
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 adjtimex clock_adjtime clock_adjtime64
"""

_IPC_NET = """
ipc msgget msgctl msgsnd msgrcv semget semctl semop semtimedop semtimedop_time64
shmget shmat shmdt shmctl mq_open mq_unlink mq_notify mq_getsetattr
mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64
socketpair socketcall bind connect listen accept accept4 shutdown
getsockname getpeername getsockopt setsockopt send sendto sendmsg sendmmsg
recv recvfrom recvmsg recvmmsg recvmmsg_time64
"""

_SYSTEM = """
uname sysinfo getrandom getcpu ioctl
"""

# Capability -> syscalls the kernel already guards with it.
_BY_CAPABILITY = {
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_SYS_ADMIN": """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick
        lookup_dcookie mount mount_setattr move_mount name_to_handle_at open_tree
        perf_event_open pivot_root quotactl quotactl_fd setdomainname sethostname setns
        syslog umount umount2 unshare""",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "init_module finit_module delete_module",
    "CAP_SYS_PACCT": "acct",
    # userfaultfd stays out even with CAP_SYS_PTRACE (CRI-O's default denies
    # it): it lets a process stall the kernel at will in a page fault, the
    # usual first step of a kernel race exploit.
    "CAP_SYS_PTRACE": "kcmp process_madvise",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy set_mempolicy mbind",
    "CAP_SYSLOG": "syslog",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
}

# Architecture -> syscalls only that architecture has.
_BY_ARCH = {
    ("SCMP_ARCH_X86_64", "SCMP_ARCH_X32"): "arch_prctl",
    ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"): "modify_ldt",
    ("SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"):
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ("SCMP_ARCH_S390", "SCMP_ARCH_S390X"):
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ("SCMP_ARCH_RISCV64",): "riscv_flush_icache",
}


def _names(text: str) -> list[str]:
    return sorted(set(text.split()))


def _allow(names: list[str], **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ALLOW", **extra}


def _clone_rules() -> list[dict[str, Any]]:
    """Without CAP_SYS_ADMIN: clone only without namespace flags (the flags
    are argument 0, or 1 on s390's swapped ABI); clone3, whose flags live in
    memory seccomp cannot read, answers ENOSYS so libc falls back to clone."""
    masked = {"value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    s390 = ["SCMP_ARCH_S390", "SCMP_ARCH_S390X"]
    no_admin = {"caps": ["CAP_SYS_ADMIN"]}
    return [
        _allow(["clone"], args=[{"index": 0, **masked}],
               excludes={"caps": ["CAP_SYS_ADMIN"], "arches": s390}),
        _allow(["clone"], args=[{"index": 1, **masked}],
               includes={"arches": s390}, excludes=no_admin),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
         "excludes": no_admin},
    ]


AF_NETLINK, AF_VSOCK, NETLINK_AUDIT = 16, 40, 9
EINVAL = 22
_U32 = 0xFFFFFFFF


def _aligned_blocks(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi] as (start, size) blocks, each size a power of two and start
    a multiple of it: one SCMP_CMP_MASKED_EQ comparison each."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 31
        while lo + size - 1 > hi:
            size //= 2
        out.append((lo, size))
        lo += size
    return out


def _socket_rules() -> list[dict[str, Any]]:
    """socket(2) for every address family but AF_VSOCK (the hypervisor's
    sockets), and AF_NETLINK with NETLINK_AUDIT only for a container holding
    CAP_AUDIT_WRITE: without it that call answers EINVAL, which libaudit reads
    as "no audit here" (EPERM makes login, su and sshd fail), as CRI-O's
    default does.  A rule compares each argument once (the comparisons of
    one rule are ANDed, repeated ones become separate rules), so "any family
    but these two" is a union of ranges."""
    def family(op: str, value: int, two: int = 0) -> dict[str, Any]:
        return {"index": 0, "value": value, "valueTwo": two, "op": op}
    audit = {"caps": ["CAP_AUDIT_WRITE"]}
    rules = [_allow(["socket"], args=[family("SCMP_CMP_LT", AF_VSOCK)], includes=audit),
             _allow(["socket"], args=[family("SCMP_CMP_GT", AF_VSOCK)], includes=audit),
             _allow(["socket"], args=[family("SCMP_CMP_LT", AF_NETLINK)], excludes=audit),
             _allow(["socket"], args=[family("SCMP_CMP_EQ", AF_NETLINK),
                                      {"index": 2, "value": NETLINK_AUDIT, "valueTwo": 0,
                                       "op": "SCMP_CMP_NE"}], excludes=audit),
             {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EINVAL,
              "args": [family("SCMP_CMP_EQ", AF_NETLINK),
                       {"index": 2, "value": NETLINK_AUDIT, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
              "excludes": audit},
             _allow(["socket"], args=[family("SCMP_CMP_GT", AF_VSOCK)], excludes=audit)]
    for start, size in _aligned_blocks(AF_NETLINK + 1, AF_VSOCK - 1):
        rules.append(_allow(["socket"], args=[family("SCMP_CMP_MASKED_EQ", _U32 & ~(size - 1),
                                                     start)], excludes=audit))
    return rules


def template() -> dict[str, Any]:
    everyday = _FILES + _EVENTS + _MEMORY + _PROCESS + _TIME + _IPC_NET + _SYSTEM
    syscalls = [_allow(_names(everyday))]
    # One entry per value: the args of one entry are ANDed.
    syscalls += [_allow(["personality"], args=[{"index": 0, "value": v, "valueTwo": 0,
                                                "op": "SCMP_CMP_EQ"}])
                 for v in PERSONALITY_ALLOWED]
    syscalls += _clone_rules()
    syscalls += _socket_rules()
    # Newer than CRI-O's list, which answers ENOSYS for what it does not
    # name: glibc probes it and falls back on ENOSYS only.
    syscalls.append({"names": ["riscv_hwprobe"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
                     "includes": {"arches": ["SCMP_ARCH_RISCV64"]}})
    for arches, names in _BY_ARCH.items():
        syscalls.append(_allow(_names(names), includes={"arches": list(arches)}))
    for cap, names in _BY_CAPABILITY.items():
        syscalls.append(_allow(_names(names), includes={"caps": [cap]}))
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "archMap": ARCH_MAP, "syscalls": syscalls}


@functools.cache
def shared_template() -> dict[str, Any]:
    """template(), built once for the process: the default profile of every
    container (spec/seccomp.py renders it, and keeps each rendering, whose
    copies share its name strings: every container's spec is kept, by
    ContainerManager.spec_of, and would otherwise hold its own ~400 names).
    Read-only: callers that change a profile take template()."""
    return template()


if __name__ == "__main__":
    print(json.dumps(template(), indent=2))
