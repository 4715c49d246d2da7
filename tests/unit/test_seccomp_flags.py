"""linux.seccomp.flags: what reaches seccomp(2), with and without a
listener, and what `features` claims.  No root."""
from __future__ import annotations

from collections import OrderedDict

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux import seccomp as sc
from crio_native.runtime.builtin.features import features

WAIT = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
RULES = {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
NOTIFY = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(sc, "_cache", OrderedDict())


def test_flag_values_match_linux_seccomp_h():
    assert sc.FLAGS == {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, WAIT: 32}


def test_wait_killable_goes_with_the_listener(monkeypatch):
    monkeypatch.setattr(sc, "kernel_supports_flags", lambda flags: True)
    f = sc.compile_filter({**NOTIFY, "flags": [WAIT, "SECCOMP_FILTER_FLAG_LOG"]})
    assert f.flags == sc.FLAG_NEW_LISTENER | sc.FLAG_WAIT_KILLABLE_RECV | 2


def test_wait_killable_without_listener_is_dropped():
    # the kernel would refuse it alone (EINVAL); the rest still applies
    f = sc.compile_filter({**RULES, "flags": [WAIT, "SECCOMP_FILTER_FLAG_LOG"]})
    assert f.flags == 2 and f.listener_path is None
    # a listenerPath without a notify rule does not make it a listener filter
    f = sc.compile_filter({**RULES, "listenerPath": "/run/agent.sock", "flags": [WAIT]})
    assert f.flags == 0


def test_old_kernel_refuses_with_the_field(monkeypatch):
    monkeypatch.setattr(sc, "kernel_supports_flags", lambda flags: False)
    with pytest.raises(FailedPrecondition) as exc:
        sc.compile_filter({**NOTIFY, "flags": ["SECCOMP_FILTER_FLAG_LOG", WAIT]})
    assert str(exc.value).startswith(f"config.json: linux.seccomp.flags[1]: {WAIT} needs "
                                     "Linux 5.19")


@pytest.mark.parametrize("flags", [[7], [{"x": 1}], ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]])
def test_unknown_flags_name_the_entry(flags):
    with pytest.raises(Exception) as exc:
        sc.compile_filter({**RULES, "flags": flags})
    assert str(exc.value).startswith("config.json: linux.seccomp.flags[0]: unknown flag")


def test_kernel_probe_on_this_kernel():
    # unknown bits and WAIT_KILLABLE_RECV without NEW_LISTENER are EINVAL
    assert not sc.kernel_supports_flags(1 << 12)
    assert not sc.kernel_supports_flags(sc.FLAG_WAIT_KILLABLE_RECV)
    assert not sc.kernel_supports_flags(sc.FLAG_TSYNC | sc.FLAG_NEW_LISTENER)
    assert sc.kernel_supports_flags(sc.FLAG_TSYNC)


@pytest.mark.parametrize("wait_ok", [True, False])
def test_features_list_wait_killable_only_when_the_kernel_has_it(monkeypatch, wait_ok):
    monkeypatch.setattr(sc, "kernel_supports_flags",
                        lambda flags: wait_ok or not flags & sc.FLAG_WAIT_KILLABLE_RECV)
    doc = features()["linux"]["seccomp"]
    assert WAIT in doc["knownFlags"]
    assert (WAIT in doc["supportedFlags"]) is wait_ok
    assert set(doc["supportedFlags"]) == set(sc.FLAGS) - (set() if wait_ok else {WAIT})
