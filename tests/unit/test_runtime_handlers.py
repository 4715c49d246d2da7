"""make_handler and HandlerSet: which handler each runtime.runtimes entry
gives, where its state goes, and the errors for names and types it cannot
serve.  No root, no runtime is run."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native.config import Config
from crio_native.config.sections import RuntimeHandlerConfig
from crio_native.errors import ErrorKind, FailedPrecondition, InvalidArgument
from crio_native.runtime.handler import RuntimeHandler
from crio_native.runtime.registry import (HANDLER_TYPES, HandlerSet, handler_class, make_handler,
                                         runtime_root_of)
from crio_native.runtime.oci.handler import OciCliHandler


def config(**runtimes: RuntimeHandlerConfig) -> Config:
    c = Config(runroot="/run/crn-test")
    c.runtime.runtimes.update(runtimes)
    return c


@pytest.mark.parametrize("name, path", [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")])
def test_default_oci_handlers(name, path):
    h = make_handler(name, config())
    assert isinstance(h, OciCliHandler)
    assert (h.name, h.runtime_path) == (name, path)
    assert h.runtime_root == Path("/run/crn-test/runtimes") / name
    assert not h.systemd_cgroup


def test_configured_runtime_root_and_systemd_cgroups():
    c = config(mine=RuntimeHandlerConfig(runtime_type="oci", runtime_path="/opt/bin/runc",
                                         runtime_root="/run/mine"))
    c.runtime.cgroup_manager = "systemd"
    h = make_handler("mine", c)
    assert (h.runtime_path, h.runtime_root, h.systemd_cgroup) == (
        "/opt/bin/runc", Path("/run/mine"), True)
    assert runtime_root_of("mine", c) == Path("/run/mine")


def test_empty_runtime_path_is_looked_up_in_path(tmp_path, monkeypatch):
    binary = tmp_path / "myrt"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert make_handler("myrt", config(myrt=RuntimeHandlerConfig())).runtime_path == str(binary)


def test_empty_runtime_path_not_in_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FailedPrecondition, match="nort.*runtime_path.*PATH"):
        make_handler("nort", config(nort=RuntimeHandlerConfig()))


def test_builtin_handler():
    from crio_native.runtime.builtin.handler import BuiltinHandler

    c = config()
    h = make_handler("builtin", c)
    assert isinstance(h, BuiltinHandler)
    assert h.runtime.root == Path("/run/crn-test/runtimes/builtin")
    assert h.pod is not None and h.pod.process.runtime.root == Path("/run/crn-test/infra")
    c.runtime.cgroup_root = "/crn"
    made = make_handler("builtin", c)
    assert made.runtime.cgroup_root == "/crn" and made.pod.cgroup.cgroup_root == "/crn"


@pytest.mark.parametrize("runtime_type", sorted(HANDLER_TYPES))
def test_every_runtime_type_is_a_runtime_handler(runtime_type):
    cls = handler_class(runtime_type)
    assert issubclass(cls, RuntimeHandler) and not cls.__abstractmethods__
    assert callable(cls.from_config)


def test_unknown_runtime_type():
    with pytest.raises(FailedPrecondition, match="unknown runtime_type 'wasm'"):
        handler_class("wasm")


def test_vm_handlers_drive_a_shim_v2_binary(monkeypatch):
    from crio_native.runtime.shim.handler import VmShimHandler

    handler = make_handler("kata", config(kata=RuntimeHandlerConfig(
        runtime_type="vm", runtime_path="/usr/bin/kata")))
    assert isinstance(handler, VmShimHandler) and handler.runtime_path == "/usr/bin/kata"
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FailedPrecondition, match="containerd-shim-kata-v2") as info:
        make_handler("kata", config(kata=RuntimeHandlerConfig(runtime_type="vm")))
    assert info.value.kind is ErrorKind.FAILED_PRECONDITION


def test_unknown_name():
    with pytest.raises(InvalidArgument, match="runtime_handler.*'gvisor'.*builtin, crun, runc"):
        make_handler("gvisor", config())


def test_handler_set_caches_one_handler_per_name():
    handlers = HandlerSet(config())
    runc = handlers.get("runc")
    assert handlers.get("runc") is runc
    assert handlers.get("crun") is not runc
    assert handlers.names() == ["builtin", "crun", "runc"]


def test_handler_set_empty_name_is_the_default():
    c = config()
    c.runtime.default_runtime = "runc"
    handlers = HandlerSet(c)
    assert handlers.get("") is handlers.get("runc")


def test_handler_set_unknown_name():
    with pytest.raises(InvalidArgument, match="runtime_handler") as info:
        HandlerSet(config()).get("nope")
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT


def test_handler_set_does_not_cache_failures():
    c = config(kata=RuntimeHandlerConfig(runtime_type="vm"))
    handlers = HandlerSet(c)
    for _ in range(2):
        with pytest.raises(FailedPrecondition):
            handlers.get("kata")
    assert "kata" in handlers.names()
