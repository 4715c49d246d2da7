"""The inotify binding and the CNI config watcher behind NetworkReady (no root)."""
from __future__ import annotations

import json
import os
import struct
import threading
import time

import pytest

from crio_native.network import inotify
from crio_native.network.watch import NetworkConfigWatcher

BRIDGE = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": "bridge"}]}
V11 = {"cniVersion": "1.1.0", "name": "newnet", "plugins": [{"type": "bridge"}]}


def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def raw_event(wd, mask, name=b""):
    padded = name + b"\0" * (16 - len(name) % 16) if name else b""
    return struct.pack("iIII", wd, mask, 0, len(padded)) + padded


# ---- inotify -------------------------------------------------------------------

def test_parse_events_of_a_captured_buffer():
    buf = raw_event(1, inotify.IN_CREATE, b"10-a.conflist") + raw_event(1, inotify.IN_DELETE_SELF) \
        + raw_event(2, inotify.IN_IGNORED)
    events = inotify.parse_events(buf)
    assert [(e.wd, e.mask, e.name) for e in events] == [
        (1, inotify.IN_CREATE, "10-a.conflist"), (1, inotify.IN_DELETE_SELF, ""),
        (2, inotify.IN_IGNORED, "")]


def test_inotify_reports_without_blocking_and_closes(tmp_path):
    before = fds()
    with inotify.Inotify() as ino:
        wd = ino.add_watch(str(tmp_path), inotify.IN_CREATE | inotify.IN_DELETE)
        # the same inode gives the same wd; the new mask replaces the old one
        assert ino.add_watch(str(tmp_path), inotify.IN_CREATE | inotify.IN_DELETE) == wd
        assert ino.read_events() == []
        (tmp_path / "x").write_text("1")
        (tmp_path / "x").unlink()
        events = ino.read_events()
        assert [(e.mask, e.name) for e in events] == [(inotify.IN_CREATE, "x"),
                                                      (inotify.IN_DELETE, "x")]
        with pytest.raises(FileNotFoundError):
            ino.add_watch(str(tmp_path / "missing"), inotify.IN_CREATE)
    assert fds() == before


# ---- the watcher ------------------------------------------------------------------

@pytest.fixture
def watcher_for(tmp_path):
    made = []

    def make(directory, **kw) -> NetworkConfigWatcher:
        w = NetworkConfigWatcher(str(directory), **kw).start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def test_unstarted_watcher_scans_per_call(tmp_path):
    w = NetworkConfigWatcher(str(tmp_path))
    assert not w.current().ready
    (tmp_path / "10.conflist").write_text(json.dumps(BRIDGE))
    assert w.current().config.name == "podnet"
    assert not w.watching


def test_follows_a_directory_created_later(tmp_path, watcher_for):
    net_dir = tmp_path / "etc" / "cni" / "net.d"          # two levels missing
    w = watcher_for(net_dir)
    assert not w.current().ready and "does not exist" in w.current().problem
    net_dir.mkdir(parents=True)
    assert "no valid CNI configuration" in w.current().problem
    conf = net_dir / "10-podnet.conflist"
    conf.write_text(json.dumps(BRIDGE))
    assert w.current().config.name == "podnet"           # no delay: events drained on read
    conf.write_text("{broken")
    state = w.current()
    assert not state.ready and "10-podnet.conflist" in state.problem
    conf.write_text(json.dumps(BRIDGE))
    assert w.current().ready
    conf.unlink()
    assert not w.current().ready


def test_atomic_rename_and_lexical_order(tmp_path, watcher_for):
    w = watcher_for(tmp_path)
    tmp = tmp_path / ".tmp"
    tmp.write_text(json.dumps(V11))
    os.rename(tmp, tmp_path / "20-new.conflist")
    assert w.current().config.name == "newnet"
    (tmp_path / "10-first.conflist").write_text(json.dumps(BRIDGE))
    assert w.current().config.name == "podnet"
    os.rename(tmp_path / "10-first.conflist", tmp_path / "30-last.conflist")
    assert w.current().config.name == "newnet"


def test_directory_removed_and_made_again(tmp_path, watcher_for):
    net_dir = tmp_path / "net.d"
    net_dir.mkdir()
    (net_dir / "10.conflist").write_text(json.dumps(BRIDGE))
    w = watcher_for(net_dir)
    assert w.current().ready
    (net_dir / "10.conflist").unlink()
    net_dir.rmdir()
    assert "does not exist" in w.current().problem
    net_dir.mkdir()
    (net_dir / "10.conflist").write_text(json.dumps(BRIDGE))
    assert w.current().ready
    os.rename(net_dir, tmp_path / "old")                  # moved away: the new one counts
    assert not w.current().ready
    net_dir.mkdir()
    assert not w.current().ready
    (net_dir / "20.conflist").write_text(json.dumps(V11))
    assert w.current().config.name == "newnet"


def test_thread_refreshes_without_readers_and_stop_leaves_nothing(tmp_path):
    threads, before = set(threading.enumerate()), fds()
    w = NetworkConfigWatcher(str(tmp_path)).start()
    assert len(set(threading.enumerate()) - threads) == 1
    (tmp_path / "10.conflist").write_text(json.dumps(BRIDGE))
    deadline = time.monotonic() + 5
    while (w._state is None or not w._state.ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w._state.ready                                  # the thread saw it, nobody asked
    w.stop()
    assert set(threading.enumerate()) == threads and fds() == before
    assert not w.watching
    w.stop()                                               # idempotent


def test_status_probe_only_for_cni_1_1_and_cached(tmp_path, watcher_for, monkeypatch):
    calls = []
    verdict = {"error": None}

    def probe(found):
        calls.append(found.name)
        if verdict["error"]:
            raise RuntimeError(verdict["error"])

    w = watcher_for(tmp_path, status_probe=probe)
    (tmp_path / "10.conflist").write_text(json.dumps(BRIDGE))
    assert w.readiness() == (True, "") and calls == []     # 1.0.0: no STATUS
    (tmp_path / "10.conflist").write_text(json.dumps(V11))
    assert w.readiness() == (True, "") and calls == ["newnet"]
    verdict["error"] = "code 50: plugin not available"
    assert w.readiness() == (True, "") and calls == ["newnet"]   # within the TTL
    monkeypatch.setattr("crio_native.network.watch.STATUS_TTL_SECONDS", 0.0)
    ready, problem = w.readiness()
    assert not ready and "CNI STATUS of network 'newnet'" in problem and "code 50" in problem
    verdict["error"] = None
    assert w.readiness() == (True, "")
    (tmp_path / "10.conflist").unlink()
    ready, problem = w.readiness()
    assert not ready and "no valid CNI configuration" in problem
