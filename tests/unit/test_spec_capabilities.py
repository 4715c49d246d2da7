"""process.capabilities: defaults, add/drop with ALL, ambient, privileged."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import InvalidArgument
from crio_native.spec import capabilities
from tests.unit.test_spec_support import apply, config_with, make_inputs

DEFAULTS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID",
            "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_KILL"}
ALL = set(capabilities.ALL_CAPS)


def caps_for(add=(), drop=(), ambient=(), **kw):
    cfg = config_with(linux__security_context__capabilities=api_pb2.Capability(
        add_capabilities=list(add), drop_capabilities=list(drop),
        add_ambient_capabilities=list(ambient)), **kw)
    return apply(capabilities.with_capabilities, make_inputs(cfg)).process["capabilities"]


@pytest.mark.parametrize("add, drop, want", [
    ((), (), DEFAULTS),
    (("NET_RAW",), (), DEFAULTS | {"CAP_NET_RAW"}),
    (("CAP_SYS_ADMIN",), (), DEFAULTS | {"CAP_SYS_ADMIN"}),
    (("sys_time",), (), DEFAULTS | {"CAP_SYS_TIME"}),
    ((), ("KILL",), DEFAULTS - {"CAP_KILL"}),
    ((), ("ALL",), set()),
    (("NET_ADMIN",), ("ALL",), {"CAP_NET_ADMIN"}),
    (("ALL",), (), ALL),
    (("ALL",), ("SYS_ADMIN",), ALL - {"CAP_SYS_ADMIN"}),
    (("ALL",), ("ALL",), set()),
    (("NET_RAW",), ("NET_RAW",), DEFAULTS),        # drop wins, as in containerd
])
def test_add_drop(add, drop, want):
    caps = caps_for(add, drop)
    assert set(caps["bounding"]) == want
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert caps["inheritable"] == []


def test_defaults_come_from_config():
    cfg = Config()
    cfg.runtime.default_capabilities = ["CHOWN", "CAP_KILL"]
    b = apply(capabilities.with_capabilities, make_inputs(daemon=cfg))
    assert b.process["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_KILL"]


def test_privileged_gets_everything_despite_drops():
    caps = caps_for(drop=("ALL",), linux__security_context__privileged=True)
    assert set(caps["bounding"]) == ALL


def test_ambient_joins_every_set():
    caps = caps_for(ambient=("NET_BIND_SERVICE", "NET_RAW"))
    assert caps["ambient"] == ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]
    assert "CAP_NET_RAW" in caps["bounding"] and "CAP_NET_RAW" in caps["permitted"]


@pytest.mark.parametrize("kw, field", [
    ({"add": ("FLY",)}, r"capabilities\.add_capabilities\[0\]"),
    ({"drop": ("KILL", "CAP_NOPE")}, r"capabilities\.drop_capabilities\[1\]"),
    ({"ambient": ("ALL",)}, r"capabilities\.add_ambient_capabilities"),
])
def test_bad_names(kw, field):
    with pytest.raises(InvalidArgument, match=field):
        caps_for(**kw)


def test_sets_are_in_kernel_order():
    caps = caps_for(add=("SYS_ADMIN", "AUDIT_WRITE", "CHOWN"))
    order = [capabilities.CAPABILITIES[c] for c in caps["bounding"]]
    assert order == sorted(order)


def test_privileged_gets_only_what_the_daemon_holds():
    cfg = config_with(linux__security_context__privileged=True)
    held = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
    caps = apply(capabilities.with_capabilities,
                 make_inputs(cfg, host_capabilities=held)).process["capabilities"]
    assert caps["bounding"] == caps["effective"] == ["CAP_CHOWN", "CAP_NET_ADMIN",
                                                     "CAP_SYS_ADMIN"]


def test_add_all_means_what_the_host_can_grant():
    # a host whose bounding set lacks CAP_SYS_RESOURCE (this one): ALL must
    # not ask for it, or capset refuses the whole set
    held = ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    cfg = config_with(linux__security_context__capabilities__add_capabilities=["ALL"],
                      linux__security_context__capabilities__drop_capabilities=["NET_ADMIN"])
    caps = apply(capabilities.with_capabilities,
                 make_inputs(cfg, host_capabilities=held)).process["capabilities"]
    assert caps["bounding"] == caps["permitted"] == ["CAP_CHOWN", "CAP_SYS_ADMIN"]


def test_names_in_mask():
    from crio_native.linux.capabilities import names_in_mask

    assert names_in_mask(0b1 | 1 << 12 | 1 << 21) == ["CAP_CHOWN", "CAP_NET_ADMIN",
                                                      "CAP_SYS_ADMIN"]
