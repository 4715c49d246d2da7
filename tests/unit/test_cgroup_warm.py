"""linux/cgroups/warm.py: while a create holds the warmer, its thread
writes our pid to the procs file every few ms; it stops when the last
holder leaves, starts again for the next, and gives up for good where the
write is refused.  A plain file stands in for cgroup.procs."""
from __future__ import annotations

import logging
import os
import threading
import time

from crio_native.linux.cgroups import warm
from crio_native.linux.cgroups.warm import AttachWarmer


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.002)


def test_writes_our_pid_while_held_and_stops_after(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs)
    with warmer.held():
        wait_for(lambda: warmer.writes >= 3)
        assert [t for t in threading.enumerate() if t.name == "cgroup-warmer"]
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "cgroup-warmer"])
    after = warmer.writes
    time.sleep(5 * warm.INTERVAL_SECONDS)
    assert warmer.writes == after
    # each write is our pid (O_WRONLY without O_APPEND: rewritten at the offset)
    assert procs.read_text().startswith(str(os.getpid()))


def test_one_thread_for_overlapping_holders_and_a_new_one_after(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs)
    with warmer.held():
        with warmer.held():
            wait_for(lambda: warmer.writes >= 1)
            assert len([t for t in threading.enumerate() if t.name == "cgroup-warmer"]) == 1
        before = warmer.writes
        wait_for(lambda: warmer.writes >= before + 2)     # still held by the outer one
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "cgroup-warmer"])
    before = warmer.writes
    with warmer.held():
        wait_for(lambda: warmer.writes > before)


def test_a_refused_write_turns_it_off_for_good(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="crio_native.linux.cgroups.warm")
    warmer = AttachWarmer(tmp_path)          # a directory: open(O_WRONLY) fails
    with warmer.held():
        wait_for(lambda: warmer._target() is None)
    assert warmer.writes == 0 and "cgroup attach warmer off" in caplog.text
    with warmer.held():
        pass
    assert not [t for t in threading.enumerate() if t.name == "cgroup-warmer"]


def test_off_where_there_is_no_file():
    warmer = AttachWarmer(None, probe=False)
    with warmer.held():
        pass
    assert warmer.writes == 0


def test_finds_a_v1_controller_hierarchy_of_our_own(monkeypatch, tmp_path):
    from crio_native.linux.cgroups.hierarchy import Hierarchy

    (tmp_path / "pids" / "a").mkdir(parents=True)
    (tmp_path / "pids" / "a" / "cgroup.procs").write_text("")
    (tmp_path / "named").mkdir()
    (tmp_path / "named" / "cgroup.procs").write_text("")
    hierarchies = [(Hierarchy(tmp_path / "named", 1, frozenset({"name=systemd"})), "/"),
                   (Hierarchy(tmp_path / "pids", 1, frozenset({"pids"})), "/"),
                   (Hierarchy(tmp_path / "v2", 2, frozenset()), "/")]
    monkeypatch.setattr(warm, "host_hierarchies", lambda: hierarchies)
    monkeypatch.setattr(warm, "own_cgroups", lambda: {"pids": "/a", "name=systemd": "/",
                                                      "": "/"})
    assert warm.own_procs_file() == tmp_path / "pids" / "a" / "cgroup.procs"
    monkeypatch.setattr(warm, "host_hierarchies", lambda: hierarchies[2:])
    assert warm.own_procs_file() is None        # pure v2: the launcher clones into the group


def warmer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cgroup-warmer"]


def test_a_hold_ends_at_its_at_most_without_a_release(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs)
    release = warmer.hold(at_most=0.05)
    wait_for(lambda: warmer.writes >= 1)
    wait_for(lambda: not warmer_threads())       # the runc exec that runs on is not warmed
    after = warmer.writes
    release()                                    # late: does nothing
    release()
    time.sleep(5 * warm.INTERVAL_SECONDS)
    assert warmer.writes == after and not warmer_threads()


def test_an_unbounded_hold_outlasts_a_bounded_one(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs)
    with warmer.held():
        warmer.hold(at_most=0.01)
        time.sleep(0.05)
        before = warmer.writes
        wait_for(lambda: warmer.writes >= before + 2)
    wait_for(lambda: not warmer_threads())


def test_shared_is_one_instance_for_the_process():
    assert warm.shared() is warm.shared()


def test_a_lingering_thread_idles_between_holds_and_serves_the_next(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs, idle_linger=0.5)
    with warmer.held():
        wait_for(lambda: warmer.writes >= 1)
        thread = warmer._thread
    time.sleep(5 * warm.INTERVAL_SECONDS)         # the release is seen
    idle = warmer.writes
    time.sleep(5 * warm.INTERVAL_SECONDS)
    assert warmer.writes == idle                  # idle: no writes
    assert thread is not None and thread.is_alive() and warmer._thread is thread
    assert thread.name == warm.IDLE_THREAD_NAME and thread not in warmer_threads()
    with warmer.held():
        wait_for(lambda: warmer.writes > idle)    # the same thread, writing again
        assert warmer._thread is thread and thread in warmer_threads()
    wait_for(lambda: not thread.is_alive())       # ends after its linger


def test_a_lingering_thread_ends_after_its_linger(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs, idle_linger=0.05)
    with warmer.held():
        wait_for(lambda: warmer.writes >= 1)
        thread = warmer._thread
    assert thread is not None
    wait_for(lambda: not thread.is_alive())
    assert warmer._thread is None
    before = warmer.writes
    with warmer.held():                           # a new thread for the next hold
        wait_for(lambda: warmer.writes > before)
        assert warmer._thread is not thread


def test_the_shared_warmer_lingers():
    assert warm.shared()._idle_linger == warm.SHARED_IDLE_LINGER_SECONDS > 0


def open_on(path) -> int:
    """How many of our fds are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            pass
    return count


def test_an_idle_thread_holds_no_fd(tmp_path):
    """The daemon's fd count after its pods are gone is the leak check's
    measure: a lingering thread keeps the procs file open only while it
    writes."""
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = AttachWarmer(procs, idle_linger=5.0)
    with warmer.held():
        wait_for(lambda: warmer.writes >= 1)
        assert open_on(procs) == 1
        thread = warmer._thread
    wait_for(lambda: thread is not None and thread.name == warm.IDLE_THREAD_NAME)
    wait_for(lambda: open_on(procs) == 0)
    assert thread.is_alive()
    before = warmer.writes
    with warmer.held():                           # reopened for the next hold
        wait_for(lambda: warmer.writes > before)
        assert open_on(procs) == 1
