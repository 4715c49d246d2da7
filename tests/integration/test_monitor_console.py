"""The monitor's --console-socket: a tty container made by an OCI runtime.
runc makes the pty inside the container and sends its master to the socket
the monitor listens on; the monitor then serves it as it serves a pty of
its own (output into the log, stdin, resize, EOF as ^D).  Fake runtimes
(a shell, a Python one-liner) check the refusals: no connection, no fd, an
fd that is not a pty master."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from crio_native.errors import Internal, InvalidArgument
from crio_native.monitor import AttachClient, launch_monitor

from tests.bundles import RuncBundle
from tests.integration.test_monitor import (  # noqa: F401
    joined, log_entries, monitors, wait_gone,
)
from tests.integration.test_monitor_attach import read_until, rest
from tests.integration.test_monitor_runc import runc  # noqa: F401
from tests.integration.test_oci_cli_handler import processes_mentioning

needs_runc = pytest.mark.skipif(shutil.which("runc") is None,
                                reason="needs runc (Debian package runc)")


def terminal_bundle(path, *args: str):
    bundle = RuncBundle(path)
    bundle.with_args(*args)
    config_path = bundle.path / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = True
    config["process"]["env"] = ["PATH=/bin", "TERM=xterm"]
    config_path.write_text(json.dumps(config))
    return bundle.path


@needs_runc
def test_runc_terminal_container_is_served_like_the_monitors_own(monitors, runc,  # noqa: F811
                                                                 tmp_path):
    bundle = terminal_bundle(tmp_path / "bundle", "/bin/busybox", "sh", "-c",
                             "read x; busybox tty; busybox stty size; read y; echo bye $y")
    state = monitors.state_dir("t1")
    console = tmp_path / "console.sock"
    mon = monitors.launch(["runc", "--root", str(runc.root), "create", "--bundle", str(bundle),
                           "--pid-file", str(state / "ctr.pid"), "--console-socket",
                           str(console), "t1"], name="t1", stdin=True,
                          container_pid_file=state / "ctr.pid", console_socket=console)
    assert not console.exists(), "the console socket outlived the create"
    try:
        runc("start", "t1")
        with AttachClient.connect(mon.state_dir, stdin=True) as client:
            client.resize(40, 100)
            client.write_stdin(b"go\n")
            got = read_until(client, b"40 100")
            assert b"/dev/pts/0" in got           # the container's own devpts
            client.close_stdin()                  # ^D: `read y` sees the end
            out, code = rest(client)
        assert code == 0
        assert b"bye" in out["stdout"]
        assert monitors.finish(mon).exit_code == 0
    finally:
        runc("delete", "--force", "t1", check=False)
    entries = log_entries(mon.log_path)
    assert {s for _, s, _, _ in entries} == {"stdout"}   # a tty has one stream
    text = "".join(t for *_, t in entries)
    assert "go" in text and "40 100" in text and "bye" in text


def fake_create(script: str, pid_file) -> list[str]:
    """A `create` that leaves a process (its pid in `pid_file`) and does
    `script` with the console socket path as $1."""
    return ["/bin/sh", "-c", f"{script}; sleep 31.25 & echo $! > {pid_file}", "fake"]


def test_a_create_that_never_connects_fails_and_leaves_nothing(monitors, tmp_path):
    state = monitors.state_dir("t2")
    console = tmp_path / "console.sock"
    with pytest.raises(Internal, match="without connecting to the console socket"):
        launch_monitor("t2", fake_create("true", state / "ctr.pid"), state, state / "ctr.log",
                       container_pid_file=state / "ctr.pid", console_socket=console)
    assert not console.exists()
    assert not (state / "attach").exists()
    assert not processes_mentioning("sleep 31.25"), "the adopted process was left running"


SEND_FD = ("import os, socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
           "socket.send_fds(s, [b'x'], [{fd}])")


@pytest.mark.parametrize("what, fd, message", [
    ("no fd", None, "sent no file descriptor"),
    ("not a pty", "os.open('/dev/null', os.O_RDONLY)", "not a pty master"),
])
def test_a_console_socket_without_a_pty_master_is_refused(monitors, tmp_path, what, fd,
                                                          message):
    state = monitors.state_dir("t3")
    console = tmp_path / "console.sock"
    send = ("import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.send(b'x')" if fd is None else SEND_FD.format(fd=fd))
    script = f"{sys.executable} -c \"{send}\" {console}"
    with pytest.raises(Internal, match=message):
        launch_monitor("t3", fake_create(script, state / "ctr.pid"), state,
                       state / "ctr.log", container_pid_file=state / "ctr.pid",
                       console_socket=console)
    assert not console.exists()
    assert not processes_mentioning("sleep 31.25")


def test_console_socket_arguments_are_checked(monitors, tmp_path):
    state = monitors.state_dir("t4")
    with pytest.raises(InvalidArgument, match="--console-socket needs `--container-pid-file`"):
        launch_monitor("t4", ["/bin/true"], state, state / "ctr.log",
                       console_socket=tmp_path / "c.sock")
    with pytest.raises(InvalidArgument, match="--terminal with --container-pid-file needs"):
        launch_monitor("t4", ["/bin/true"], state, state / "ctr.log", terminal=True,
                       container_pid_file=state / "ctr.pid")
    with pytest.raises(OSError, match="too long"):
        launch_monitor("t4", fake_create("true", state / "ctr.pid"), state, state / "ctr.log",
                       container_pid_file=state / "ctr.pid",
                       console_socket=tmp_path / ("x" * 120))
    assert not processes_mentioning("sleep 31.25")
    assert set(os.listdir(state)) <= {"ctr.log"}
