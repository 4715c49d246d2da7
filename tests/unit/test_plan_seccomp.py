"""OCI seccomp section -> BPF: policy decisions and errors naming the field."""
from __future__ import annotations

import struct

import pytest

from crio_native.errors import InvalidArgument
from crio_native.linux import seccomp as sc

BASE = {"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def resolve(name):
    return {"mkdir": 83, "chmod": 90}.get(name)


def test_compiles_to_sock_filters():
    f = sc.compile_filter(BASE)
    assert len(f.bpf) % 8 == 0 and len(f.bpf) > 8
    # the program ends with a return of the default action (ALLOW)
    codes = [struct.unpack_from("=HBBI", f.bpf, i) for i in range(0, len(f.bpf), 8)]
    assert (0x06, 0, 0, sc.ACT_ALLOW) in codes
    assert (0x06, 0, 0, sc.ACT_ERRNO | 1) in codes
    assert f.flags == 0


@pytest.mark.parametrize("name,errno_ret,expected", [
    ("SCMP_ACT_ALLOW", None, sc.ACT_ALLOW),
    ("SCMP_ACT_ERRNO", None, sc.ACT_ERRNO | 1),
    ("SCMP_ACT_ERRNO", 38, sc.ACT_ERRNO | 38),
    ("SCMP_ACT_KILL", None, sc.ACT_KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", None, sc.ACT_KILL_PROCESS),
    ("SCMP_ACT_TRACE", 7, sc.ACT_TRACE | 7),
    ("SCMP_ACT_LOG", None, sc.ACT_LOG),
])
def test_actions(name, errno_ret, expected):
    assert sc.action_from_name(name, errno_ret, "f") == expected


def test_rules_skip_unknown_and_default_and_split_repeated_args():
    spec = {"syscalls": [
        {"names": ["mkdir", "nosuch"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["chmod"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
    ]}
    rules = sc.rules_from_spec(spec, sc.ACT_ALLOW, resolve)
    assert rules == [(83, sc.ACT_ERRNO | 1, []),
                     (90, sc.ACT_ERRNO | 1, [(1, 4, 1, 0)]),
                     (90, sc.ACT_ERRNO | 1, [(1, 4, 2, 0)])]


def test_flags():
    f = sc.compile_filter({**BASE, "flags": ["SECCOMP_FILTER_FLAG_TSYNC",
                                             "SECCOMP_FILTER_FLAG_LOG"]})
    assert f.flags == 3


@pytest.mark.parametrize("edit,field", [
    ({"defaultAction": "SCMP_ACT_DANCE"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "linux.seccomp.defaultAction"),
    ({"architectures": ["SCMP_ARCH_Z80"]}, "linux.seccomp.architectures[0]"),
    ({"flags": ["SECCOMP_FILTER_FLAG_FAST"]}, "linux.seccomp.flags[0]"),
    ({"syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}, "linux.seccomp.syscalls[0].names"),
    ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index"),
    ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]},
     "linux.seccomp.syscalls[0].args[0].op"),
])
def test_invalid_names_field(edit, field):
    with pytest.raises(InvalidArgument) as exc:
        sc.compile_filter({**BASE, **edit})
    assert str(exc.value).startswith(f"config.json: {field}: ")


NOTIFY = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}


def test_notify_makes_a_listener_filter():
    f = sc.compile_filter({**NOTIFY, "listenerMetadata": "m",
                           "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]})
    codes = [struct.unpack_from("=HBBI", f.bpf, i) for i in range(0, len(f.bpf), 8)]
    assert (0x06, 0, 0, sc.ACT_NOTIFY) in codes
    # NEW_LISTENER, and TSYNC dropped (the kernel refuses the two together)
    assert f.flags == sc.FLAG_NEW_LISTENER | 2
    assert (f.listener_path, f.listener_metadata) == ("/run/agent.sock", "m")
    assert sc.action_from_name("SCMP_ACT_NOTIFY", None, "f") == sc.ACT_NOTIFY


@pytest.mark.parametrize("edit", [{"listenerPath": "/run/x.sock"},
                                  {"listenerPath": "relative", "listenerMetadata": "m"}])
def test_listener_without_notify_is_ignored(edit):
    f = sc.compile_filter({**BASE, **edit})
    assert (f.flags, f.listener_path, f.listener_metadata) == (0, None, "")


@pytest.mark.parametrize("edit,field,words", [
    ({"listenerPath": None}, "linux.seccomp.listenerPath",
     "not set, but linux.seccomp.syscalls[0].action is SCMP_ACT_NOTIFY"),
    ({"listenerPath": "run/agent.sock"}, "linux.seccomp.listenerPath", "absolute"),
    ({"listenerPath": "/" + "a" * 107}, "linux.seccomp.listenerPath", "unix socket address"),
    ({"listenerMetadata": 7}, "linux.seccomp.listenerMetadata", "string"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction", "default"),
    ({"syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].action", "write syscall"),
    ({"syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].action", "sendmsg syscall"),
])
def test_notify_refusals_name_the_field(edit, field, words):
    with pytest.raises(InvalidArgument) as exc:
        sc.compile_filter({**NOTIFY, **edit})
    assert str(exc.value).startswith(f"config.json: {field}: ") and words in str(exc.value)
