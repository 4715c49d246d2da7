"""The Python side of the monitor agrees with its C side, and parses what
the monitor writes (no root, no processes)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from crio_native.errors import Internal
from crio_native.monitor import protocol
from crio_native.monitor.exitstatus import parse_exit
from crio_native.monitor.launch import monitor_command

HEADER = Path(__file__).resolve().parents[2] / "src" / "_native" / "monitor" / "protocol.h"


def header_defines() -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for name, value in re.findall(r"^#define CRN_(\w+)[ \t]+(\S+)", HEADER.read_text(), re.M):
        out[name] = value.strip('"') if value.startswith('"') else int(value, 0)
    return out


def test_protocol_constants_match_the_header():
    defines = header_defines()
    defines.pop("MONITOR_PROTOCOL_H", None)
    assert defines, "no constants found in protocol.h"
    for name, value in defines.items():
        assert getattr(protocol, name) == value, name


def test_resize_and_attach_encoding():
    assert protocol.encode_resize(40, 100) == bytes([protocol.MSG_RESIZE, 0, 40, 0, 100])
    assert protocol.encode_attach(3) == bytes([protocol.MSG_ATTACH, 3])
    assert protocol.decode_reply(bytes([5, 0, 0, 0, 2])) == (5, 2)
    assert protocol.decode_exit(bytes([0, 0, 0, 137])) == 137


def test_parse_exit():
    st = parse_exit("code=137\nsignal=9\nfinished=2024-01-02T15:04:05.123456789Z\noom=1\n")
    assert (st.exit_code, st.signal, st.oom_killed) == (137, 9, True)
    assert st.finished_at_ns == 1704207845_123456789


@pytest.mark.parametrize("text", ["", "code=x\nsignal=0\nfinished=2024-01-02T15:04:05.1Z\noom=0",
                                  "code=1\n"])
def test_parse_exit_rejects_malformed(text):
    with pytest.raises(Internal, match="malformed"):
        parse_exit(text)


def test_monitor_command_line():
    cmd = monitor_command("c1", ["/bin/true", "-x"], Path("/s"), Path("/l"), sync_fd=5,
                          stdin=True, stdin_once=True, terminal=True, cgroup_path="/cg",
                          binary=Path("/m"))
    assert cmd == ["/m", "--id", "c1", "--state-dir", "/s", "--sync-fd", "5",
                   "--log-path", "/l", "--cgroup-path", "/cg", "--stdin", "--stdin-once",
                   "--terminal", "--", "/bin/true", "-x"]
