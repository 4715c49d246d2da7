"""Attach to a container through its monitor: live output framed per stream,
stdin in, EOF on stdin, several clients at once, and a pty with resize."""
from __future__ import annotations

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.monitor import EXIT, STDERR, STDOUT, AttachClient, resize

from tests.integration.test_monitor import BB, joined, log_entries, monitors, sh  # noqa: F401


def read_until(client: AttachClient, needle: bytes, kind: str = STDOUT,
               timeout: float = 10.0) -> bytes:
    got = b""
    while needle not in got:
        frame = client.recv(timeout)
        assert frame is not None, f"connection closed before {needle!r}; got {got!r}"
        if frame.kind == kind:
            got += frame.data
    return got


def rest(client: AttachClient, timeout: float = 10.0) -> tuple[dict[str, bytes], int | None]:
    """Everything up to the monitor closing the connection."""
    out, code = {STDOUT: b"", STDERR: b""}, None
    for frame in client.frames(timeout):
        if frame.kind == EXIT:
            code = frame.exit_code
        else:
            out[frame.kind] += frame.data
    return out, code


def test_attach_echoes_stdin_through_cat(monitors):
    mon = monitors.launch([BB, "cat"], stdin=True)
    with AttachClient.connect(mon.state_dir, stdin=True) as client:
        client.write_stdin(b"hello\n")
        assert read_until(client, b"hello\n") == b"hello\n"
        client.write_stdin(b"world\n")
        assert read_until(client, b"world\n") == b"world\n"
        client.close_stdin()
        out, code = rest(client)
    assert code == 0 and out[STDOUT] == b""
    assert monitors.finish(mon).exit_code == 0
    assert joined(log_entries(mon.log_path), "stdout") == ["hello", "world"]


def test_attach_frames_stdout_and_stderr_apart(monitors):
    mon = monitors.launch(sh("read x; echo out-$x; echo err-$x >&2; exit 3"), stdin=True)
    with AttachClient.connect(mon.state_dir, stdin=True) as client:
        client.write_stdin(b"1\n")
        out, code = rest(client)
    assert out == {STDOUT: b"out-1\n", STDERR: b"err-1\n"}
    assert code == 3
    assert monitors.finish(mon).exit_code == 3


def test_attach_only_to_stderr(monitors):
    mon = monitors.launch(sh("read x; echo out; echo err >&2"), stdin=True)
    with AttachClient.connect(mon.state_dir, stdout=False, stdin=True) as client:
        client.write_stdin(b"go\n")
        out, code = rest(client)
    assert out == {STDOUT: b"", STDERR: b"err\n"} and code == 0
    monitors.finish(mon)


def test_two_clients_see_the_same_output(monitors):
    mon = monitors.launch([BB, "cat"], stdin=True)
    with AttachClient.connect(mon.state_dir) as watcher, \
            AttachClient.connect(mon.state_dir, stdin=True) as writer:
        writer.write_stdin(b"both\n")
        assert read_until(writer, b"both\n") == b"both\n"
        assert read_until(watcher, b"both\n") == b"both\n"
        writer.close_stdin()
        assert rest(watcher)[1] == 0
    monitors.finish(mon)


def test_stdin_once_closes_stdin_when_the_client_leaves(monitors):
    mon = monitors.launch([BB, "cat"], stdin=True, stdin_once=True)
    with AttachClient.connect(mon.state_dir, stdin=True) as client:
        client.write_stdin(b"once\n")
        read_until(client, b"once\n")
    assert monitors.finish(mon).exit_code == 0
    assert joined(log_entries(mon.log_path), "stdout") == ["once"]


def test_large_stdin_is_not_lost(monitors):
    # more than the monitor's stdin buffer and the pipe: exercises pausing
    lines = b"".join(b"line %d\n" % i for i in range(100000))
    mon = monitors.launch([BB, "cat"], stdin=True)
    with AttachClient.connect(mon.state_dir, stdout=False, stderr=False, stdin=True) as client:
        client.write_stdin(lines)
        client.close_stdin()
        rest(client, timeout=30)
    assert monitors.finish(mon, timeout=30).exit_code == 0
    got = joined(log_entries(mon.log_path), "stdout")
    assert got == [f"line {i}" for i in range(100000)]


# busybox lets COLUMNS/LINES override the tty's size, and pytest sets COLUMNS
TTY_ENV = {"PATH": "/usr/bin:/bin", "TERM": "xterm"}


def test_terminal_resize_seen_by_stty(monitors):
    mon = monitors.launch(sh(f"read x; {BB} stty size; read y; {BB} stty size"),
                          stdin=True, terminal=True, env=TTY_ENV)
    with AttachClient.connect(mon.state_dir, stdin=True) as client:
        client.resize(40, 100)
        client.write_stdin(b"go\n")
        assert b"40 100" in read_until(client, b"40 100")
        resize(mon.state_dir, 25, 80)        # from another connection
        client.write_stdin(b"again\n")
        assert b"25 80" in read_until(client, b"25 80")
        _out, code = rest(client)
    assert code == 0
    assert monitors.finish(mon).exit_code == 0
    entries = log_entries(mon.log_path)
    assert {s for _, s, _, _ in entries} == {"stdout"}   # a tty has one stream
    text = "".join(t for *_, t in entries)
    assert "40 100" in text and "25 80" in text


def test_terminal_is_the_controlling_tty(monitors):
    mon = monitors.launch(sh(f"{BB} tty"), terminal=True, env=TTY_ENV)
    monitors.finish(mon)
    lines = joined(log_entries(mon.log_path), "stdout")
    assert lines[0].startswith("/dev/pts/")


def test_resize_without_terminal_fails(monitors):
    mon = monitors.launch([BB, "cat"], stdin=True)
    with AttachClient.connect(mon.state_dir, stdin=True) as client:
        with pytest.raises(OSError, match="resize"):
            client.resize(10, 10)
        client.close_stdin()
        rest(client)
    monitors.finish(mon)


def test_attach_after_exit_fails(monitors):
    mon = monitors.launch(sh("true"))
    monitors.finish(mon)
    with pytest.raises(FailedPrecondition, match="not running"):
        AttachClient.connect(mon.state_dir)


def test_close_stdin_on_a_terminal_sends_eof(monitors):
    mon = monitors.launch([BB, "cat"], stdin=True, terminal=True, env=TTY_ENV)
    with AttachClient.connect(mon.state_dir, stdin=True) as client:
        client.write_stdin(b"typed\n")
        read_until(client, b"typed\r\n")     # the tty's echo, then cat's copy
        client.close_stdin()
        _out, code = rest(client)
    assert code == 0
    assert monitors.finish(mon).exit_code == 0
