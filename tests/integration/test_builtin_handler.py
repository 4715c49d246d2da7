"""The built-in runtime behind the RuntimeHandler interface: containers are
launched by their own crio-native-monitor from the plan file (--plan), so
the monitor is their parent, writes the CRI log and records the exit; create
hooks run here through the sync-socket handshake; ExecSync, pause/resume,
update, kill and delete act on the container the monitor holds."""
from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroups
from crio_native.linux.cgroups import group as cgroup_group
from crio_native.linux.mounts import kernel_has_mount_setattr
from crio_native.monitor import monitor_binary, process_alive, read_exit, wait_exit
from crio_native.monitor.launch import launch_monitor, stop_monitor
from crio_native.runtime.builtin.plan import build_plan
from crio_native.runtime.builtin.handler import BuiltinHandler
from crio_native.runtime.handler import MonitorOptions

from tests.hostinfo import cgroup_controller_usable
from tests.integration.test_monitor import joined, log_entries

# Also run inside the pure cgroup v2 VM by `make test` (CLONE_INTO_CGROUP,
# memory.events, v2 limit files there).
pytestmark = [pytest.mark.root, pytest.mark.vm]


@pytest.fixture
def handler(tmp_path):
    h = BuiltinHandler("builtin", tmp_path / "state")
    yield h
    for cid in h.runtime.list():
        h.delete(cid, force=True)


@pytest.fixture
def mon_opts(tmp_path):
    """mon_opts(cid, **kw) -> MonitorOptions with a fresh state dir and log."""
    def make(cid: str, **kw) -> MonitorOptions:
        d = tmp_path / f"mon-{cid}"
        d.mkdir()
        return MonitorOptions(state_dir=d, log_path=d / "ctr.log", **kw)
    return make


def _ppid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("PPid:")[1].split()[0])


def _monitors_of(cid: str) -> list[int]:
    """Live crio-native-monitor processes started for container `cid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"crio-native-monitor") and cid.encode() in argv \
                and process_alive(int(entry)):
            out.append(int(entry))
    return out


def _processes_running(*argv: str) -> list[int]:
    want = "\0".join(argv).encode() + b"\0"
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes() == want \
                        and process_alive(int(entry)):
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _cgroup_spec(name: str, resources: dict | None = None):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
        if resources is not None:
            spec["linux"]["resources"] = resources
    return edit


def _wait_status(handler, cid, status, timeout=5.0):
    deadline = time.monotonic() + timeout
    while handler.state(cid)["status"] != status:
        assert time.monotonic() < deadline, handler.state(cid)
        time.sleep(0.01)


def _assert_nothing_left(handler, cid: str, opts: MonitorOptions, cgroup_dirs=()) -> None:
    assert cid not in handler.runtime.list()
    assert not (handler.runtime.root / cid).exists()
    assert _monitors_of(cid) == []
    assert {p.name for p in opts.state_dir.iterdir()} <= {"ctr.log"}
    for d in cgroup_dirs:
        assert not Path(d).exists()


# ---- the monitor is the parent ---------------------------------------------------

def test_monitor_is_parent_logs_and_exit(handler, make_bundle, mon_opts):
    b = make_bundle(["sh", "-c", "echo hello; echo oops >&2; sleep 0.3; exit 3"])
    opts = mon_opts("p1")
    created = handler.create("p1", b.path, opts)
    assert _ppid(created.pid) == created.monitor_pid != os.getpid()
    assert (opts.state_dir / "pid").read_text().strip() == str(created.pid)
    assert handler.state("p1")["status"] == "created"
    assert read_exit(opts.state_dir) is None
    handler.start("p1")
    # running with nothing of ours as its parent
    assert handler.state("p1")["status"] == "running"
    assert _ppid(created.pid) == created.monitor_pid
    status = wait_exit(opts.state_dir, timeout=10)
    assert (status.exit_code, status.signal) == (3, 0)
    entries = log_entries(opts.log_path)
    assert joined(entries, "stdout") == ["hello"]
    assert joined(entries, "stderr") == ["oops"]
    assert any(s == "stdout" and t == "F" and text == "hello" for _ts, s, t, text in entries)
    assert handler.runtime.wait("p1", timeout=5) == 3   # from the exit file: not our child
    assert handler.state("p1")["status"] == "stopped"
    handler.delete("p1")
    assert _monitors_of("p1") == []


def test_container_survives_without_us_as_parent(handler, make_bundle, mon_opts):
    opts = mon_opts("p2")
    created = handler.create("p2", make_bundle(["sleep", "60"]).path, opts)
    handler.start("p2")
    _wait_status(handler, "p2", "running")
    time.sleep(0.2)
    assert process_alive(created.pid) and _ppid(created.pid) == created.monitor_pid
    # the monitor left our session: the daemon's death would not reach it
    assert os.getsid(created.monitor_pid) != os.getsid(0)
    handler.kill("p2", signal.SIGKILL)
    status = wait_exit(opts.state_dir, timeout=10)
    assert (status.exit_code, status.signal) == (137, 9)
    handler.delete("p2")


def test_terminal_is_the_controlling_tty(handler, make_bundle, mon_opts):
    """The pty comes from the container's own devpts (as runc makes it), so
    `tty` finds its name there; it is the controlling terminal."""
    def edit(spec):
        spec["process"]["terminal"] = True
    script = "read -r pid comm st ppid pgrp sid tty rest < /proc/self/stat; echo tty=$tty; " \
             "[ -t 0 ] && [ -t 1 ] && echo isatty; echo name=$(tty)"
    opts = mon_opts("t1", terminal=True)
    handler.create("t1", make_bundle(["sh", "-c", script], edit).path, opts)
    handler.start("t1")
    assert wait_exit(opts.state_dir, timeout=10).exit_code == 0
    text = "".join(t for *_, t in log_entries(opts.log_path))
    assert "isatty" in text
    assert "tty=" in text and "tty=0" not in text   # a controlling terminal is set
    assert "name=/dev/pts/0" in text, text


def test_terminal_in_spec_needs_a_monitor_terminal(handler, make_bundle, mon_opts):
    from crio_native.errors import Unimplemented

    def edit(spec):
        spec["process"]["terminal"] = True
    opts = mon_opts("t2")
    with pytest.raises(Unimplemented, match="process.terminal"):
        handler.create("t2", make_bundle(["true"], edit).path, opts)
    _assert_nothing_left(handler, "t2", opts)


# ---- failures leave nothing ------------------------------------------------------

def test_missing_executable_fails_like_runc(handler, make_bundle, mon_opts):
    name = f"crn-hd-miss-{os.getpid()}"
    opts = mon_opts("m1")
    b = make_bundle(["no-such-binary"], _cgroup_spec(name, {}))
    plan = cgroups.plan_cgroups(name, {}, root=handler.runtime.cgroup_root)
    with pytest.raises(FailedPrecondition,
                       match=r'exec: "no-such-binary": executable file not found in \$PATH'):
        handler.create("m1", b.path, opts)
    _assert_nothing_left(handler, "m1", opts, plan.dirs)


def test_missing_cwd_fails_like_runc(handler, make_bundle, mon_opts):
    def edit(spec):
        spec["process"]["cwd"] = "/etc/passwd"      # a missing cwd is made, like runc
    opts = mon_opts("m2")
    with pytest.raises(FailedPrecondition,
                       match=r'chdir to cwd \("/etc/passwd"\) set in config.json failed: not a'):
        handler.create("m2", make_bundle(["true"], edit).path, opts)
    _assert_nothing_left(handler, "m2", opts)


# ---- create hooks through the monitor's handshake ---------------------------------

def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_create_runtime_hook_runs_while_the_child_waits(handler, make_bundle, mon_opts,
                                                        tmp_path):
    out = tmp_path / "hook-state.json"
    hook = _script(tmp_path / "hook.sh", f'cat > "{out}"\n')

    def edit(spec):
        spec["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    opts = mon_opts("h1")
    created = handler.create("h1", make_bundle(["sleep", "60"], edit).path, opts)
    state = json.loads(out.read_text())
    assert state["status"] == "created" and state["pid"] == created.pid
    assert state["id"] == "h1"
    handler.start("h1")
    _wait_status(handler, "h1", "running")
    handler.delete("h1", force=True)


def test_failing_hook_fails_create_and_leaves_nothing(handler, make_bundle, mon_opts,
                                                      tmp_path):
    hook = _script(tmp_path / "fail.sh", "echo boom >&2; exit 3\n")
    name = f"crn-hd-hook-{os.getpid()}"

    def edit(spec):
        _cgroup_spec(name, {})(spec)
        spec["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    opts = mon_opts("h2")
    plan = cgroups.plan_cgroups(name, {}, root=handler.runtime.cgroup_root)
    with pytest.raises(FailedPrecondition, match=r"createRuntime hook #0 .*exit status 3: boom"):
        handler.create("h2", make_bundle(["sleep", "60"], edit).path, opts)
    _assert_nothing_left(handler, "h2", opts, plan.dirs)


# ---- the monitor's --plan mode, driven by hand -----------------------------------------

@pytest.mark.parametrize("extra", [["--", "/bin/true"],
                                   ["--container-pid-file", "/x/pid"]])
def test_plan_command_line_errors(tmp_path, extra):
    p = subprocess.run([str(monitor_binary()), "--state-dir", str(tmp_path), "--plan",
                        str(tmp_path / "plan"), *extra], capture_output=True, text=True)
    assert p.returncode == 2 and "--plan" in p.stderr


def test_launcher_gone_during_hooks_fails_the_launch(make_bundle, tmp_path):
    """The monitor asks for the hooks and the launcher closes the socket
    instead of answering: the waiting child is killed, the monitor ends."""
    def edit(spec):
        spec["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    b = make_bundle(["sleep", "60"], edit)
    plan = tmp_path / "plan"
    plan.write_bytes(build_plan(b.spec, b.path))
    ours, theirs = socket.socketpair()
    with ours:
        with theirs:
            subprocess.run([str(monitor_binary()), "--id", "raw1", "--state-dir", str(tmp_path),
                            "--sync-fd", str(theirs.fileno()), "--plan", str(plan)],
                           pass_fds=(theirs.fileno(),), check=True, timeout=10)
        with ours.makefile("rb") as f:   # the socket closes with its file
            monitor_pid = int(f.readline().split()[1])
            words = f.readline().split()
            assert words[0] == b"hooks"
            child = int(words[1])
            assert _ppid(child) == monitor_pid
    deadline = time.monotonic() + 10
    while process_alive(monitor_pid) or process_alive(child):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for pid in (monitor_pid, child):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    assert not (tmp_path / "attach").exists() and not (tmp_path / "exit").exists()


def _children_of_monitor(container_id: str) -> list[int] | None:
    """The processes that the monitors for `container_id` have started,
    other than a monitor (the first stage forks the second); None when no
    monitor runs."""
    monitors = _monitors_of(container_id)
    if not monitors:
        return None
    kids = set()
    for pid in monitors:
        try:
            kids |= {int(k) for k in
                     Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        except OSError:
            pass
    return sorted(kids - set(monitors))


def test_gate_is_asked_before_the_process_is_cloned(make_bundle, tmp_path):
    """--gate: the monitor asks "gate" once it has started and clones the
    container only after the answer (the systemd driver makes the scope
    meanwhile)."""
    b = make_bundle(["sleep", "60"])
    plan = tmp_path / "plan"
    plan.write_bytes(build_plan(b.spec, b.path))
    seen: list[list[int] | None] = []
    mon = launch_monitor("gate1", (), tmp_path, tmp_path / "ctr.log", plan_file=plan,
                         on_gate=lambda: seen.append(_children_of_monitor("gate1")))
    try:
        assert seen == [[]]          # asked once, while the monitor had no child
        assert _ppid(mon.container_pid) == mon.pid
    finally:
        stop_monitor(mon)


def test_gate_refused_fails_the_launch_and_leaves_nothing(make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    plan = tmp_path / "plan"
    plan.write_bytes(build_plan(b.spec, b.path))

    def refuse() -> None:
        raise FailedPrecondition("the scope did not start")
    with pytest.raises(FailedPrecondition, match="the scope did not start"):
        launch_monitor("gate2", (), tmp_path, tmp_path / "ctr.log", plan_file=plan,
                       on_gate=refuse)
    deadline = time.monotonic() + 10
    while _monitors_of("gate2"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not (tmp_path / "attach").exists() and not (tmp_path / "exit").exists()


def test_gate_needs_a_plan_and_a_sync_fd(tmp_path):
    p = subprocess.run([str(monitor_binary()), "--state-dir", str(tmp_path), "--gate",
                        "--", "/bin/true"], capture_output=True, text=True)
    assert p.returncode == 2 and "--gate needs --plan" in p.stderr


def test_meanwhile_runs_while_the_monitor_starts_and_before_the_clone(make_bundle, tmp_path):
    """launch_monitor(meanwhile=): run right after the spawn while the
    monitor starts, which waits at its gate until it has returned: nothing
    is cloned before (the v1 cgroups are made so, see
    creation.cgroups_while_launching)."""
    b = make_bundle(["sleep", "60"])
    plan = tmp_path / "plan"
    plan.write_bytes(build_plan(b.spec, b.path))
    seen: list[list[int] | None] = []

    def meanwhile() -> None:
        deadline = time.monotonic() + 10
        while _children_of_monitor("mw1") is None:     # the monitor is up
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.1)                                  # and had time to clone, if it would
        seen.append(_children_of_monitor("mw1"))
    mon = launch_monitor("mw1", (), tmp_path, tmp_path / "ctr.log", plan_file=plan,
                         meanwhile=meanwhile)
    try:
        assert seen == [[]]
        assert _ppid(mon.container_pid) == mon.pid
    finally:
        stop_monitor(mon)


def test_meanwhile_failure_fails_the_launch_and_leaves_nothing(make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    plan = tmp_path / "plan"
    plan.write_bytes(build_plan(b.spec, b.path))

    def fail() -> None:
        raise FailedPrecondition("no groups today")
    with pytest.raises(FailedPrecondition, match="no groups today"):
        launch_monitor("mw2", (), tmp_path, tmp_path / "ctr.log", plan_file=plan,
                       meanwhile=fail)
    deadline = time.monotonic() + 10
    while _monitors_of("mw2"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not (tmp_path / "attach").exists() and not (tmp_path / "exit").exists()


def test_cgroup_failure_during_the_launch_leaves_nothing(handler, make_bundle, mon_opts,
                                                         monkeypatch):
    """On v1/hybrid the groups are made while the monitor starts; a refused
    limit there fails the create before the clone and leaves no group,
    state, monitor or process (on pure v2 they are made before the monitor,
    with the same outcome)."""
    name = f"crn-hd-mw-{os.getpid()}"
    opts = mon_opts("mw3")
    b = make_bundle(["sleep", "60"], _cgroup_spec(name, {}))
    plan = cgroups.plan_cgroups(name, {}, root=handler.runtime.cgroup_root)

    def refuse(writes) -> None:
        raise FailedPrecondition("cgroup file x: the kernel refused 'y'")
    monkeypatch.setattr(cgroup_group, "write_limits", refuse)
    with pytest.raises(FailedPrecondition, match="the kernel refused"):
        handler.create("mw3", b.path, opts)
    _assert_nothing_left(handler, "mw3", opts, plan.dirs)
    monkeypatch.undo()
    handler.create("mw3", b.path, mon_opts("mw3b"))     # and the same create then works
    assert all(d.is_dir() for d in plan.dirs)
    handler.delete("mw3", force=True)
    assert not any(d.exists() for d in plan.dirs)


# ---- exec_sync ---------------------------------------------------------------------

@pytest.fixture
def running(handler, make_bundle, mon_opts):
    """running(cid, edit=None) -> a started `sleep 60` container's bundle spec."""
    def start(cid: str, edit=None, args=("sleep", "60")):
        b = make_bundle(list(args), edit)
        handler.create(cid, b.path, mon_opts(cid))
        handler.start(cid)
        _wait_status(handler, cid, "running")
        return b.spec
    return start


def _process(spec: dict, args: list[str]) -> dict:
    p = copy.deepcopy(spec["process"])
    p["args"] = args
    return p


def test_exec_sync_output_and_exit_code(handler, running):
    spec = running("e1")
    r = handler.exec_sync("e1", _process(spec, ["sh", "-c", "echo out; echo err >&2; exit 7"]),
                          timeout=10)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (7, b"out\n", b"err\n", False)


def test_exec_sync_timeout_kills_the_process(handler, running):
    spec = running("e2")
    started = time.monotonic()
    r = handler.exec_sync("e2", _process(spec, ["sleep", "10"]), timeout=0.5)
    assert r.timed_out and r.exit_code == 128 + signal.SIGKILL
    assert time.monotonic() - started < 5
    assert _processes_running("sleep", "10") == []
    assert handler.state("e2")["status"] == "running"


def test_exec_sync_ends_though_a_background_child_keeps_writing(handler, running):
    """The exec'd shell exits at once; the loop it left behind holds the
    pipes and never goes quiet.  ExecSync still answers, within the drain
    limit after the exit, with what was written."""
    spec = running("e3")
    started = time.monotonic()
    r = handler.exec_sync("e3", _process(spec, [
        "sh", "-c", "(while :; do echo tick; sleep 0.02; done) & echo first"]), timeout=30)
    assert time.monotonic() - started < 10
    assert (r.exit_code, r.timed_out) == (0, False)
    # the loop may print before the shell does (a slow VM schedules it first)
    lines = r.stdout.splitlines()
    assert lines.count(b"first") == 1 and b"tick" in lines


# ---- pause, update, kill, delete ------------------------------------------------------

def test_pause_and_resume(handler, running):
    running("s1", _cgroup_spec(f"crn-hd-pause-{os.getpid()}"))
    handler.pause("s1")
    assert handler.state("s1")["status"] == "paused"
    handler.resume("s1")
    assert handler.state("s1")["status"] == "running"


def test_exec_sync_again_and_again(handler, running):
    """Repeated execs reuse what the runtime kept of the last (exec_cache):
    each still runs its own command, and a paused container refuses them
    until it is resumed, though the first exec came before the pause."""
    spec = running("s2", _cgroup_spec(f"crn-hd-again-{os.getpid()}"))
    for word in ("one", "two", "one"):
        r = handler.exec_sync("s2", _process(spec, ["echo", word]), timeout=10)
        assert (r.exit_code, r.stdout, r.stderr) == (0, word.encode() + b"\n", b"")
    handler.pause("s2")
    try:
        with pytest.raises(FailedPrecondition, match="paused"):
            handler.exec_sync("s2", _process(spec, ["echo", "one"]), timeout=10)
    finally:
        handler.resume("s2")
    r = handler.exec_sync("s2", _process(spec, ["sh", "-c", "exit 3"]), timeout=10)
    assert r.exit_code == 3


def test_update_changes_the_cgroup_limits(handler, running):
    resources, later, expect = {}, {}, []
    if cgroup_controller_usable("pids"):
        resources["pids"], later["pids"] = {"limit": 42}, {"limit": 77}
        expect.append(("pids", "pids.max", "pids.max", "77"))
    if cgroup_controller_usable("memory"):
        resources["memory"] = {"limit": 64 << 20}
        later["memory"] = {"limit": 96 << 20}
        expect.append(("memory", "memory.limit_in_bytes", "memory.max", str(96 << 20)))
    if not expect:
        pytest.skip("this host has neither a pids nor a memory cgroup controller")
    name = f"crn-hd-upd-{os.getpid()}"
    running("u1", _cgroup_spec(name, resources))
    handler.update("u1", later)
    plan = cgroups.plan_cgroups(name, later, root=handler.runtime.cgroup_root)
    written = {p.name: p for p, _ in plan.writes}
    for _ctrl, v1, v2, value in expect:
        path = written.get(v1) or written[v2]
        assert path.read_text().strip() == value


def test_update_without_cgroups_fails(handler, running):
    running("u2")
    with pytest.raises(FailedPrecondition, match="no cgroups of its own"):
        handler.update("u2", {"pids": {"limit": 10}})


def test_kill_all_processes(handler, running, tmp_path):
    name = f"crn-hd-kill-{os.getpid()}"
    running("k1", _cgroup_spec(name), args=("sh", "-c", "sleep 61 & sleep 62 & wait"))
    opts_dir = tmp_path / "mon-k1"
    handler.kill("k1", signal.SIGKILL, all_processes=True)
    assert wait_exit(opts_dir, timeout=10).exit_code == 137
    plan = cgroups.plan_cgroups(name, {}, root=handler.runtime.cgroup_root)
    deadline = time.monotonic() + 5
    while any((d / "cgroup.procs").read_text().split() for d in plan.dirs):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    handler.kill("k1", signal.SIGKILL)        # already gone: not an error
    handler.delete("k1")
    assert not any(d.exists() for d in plan.dirs)


def test_delete_unknown_and_force(handler, running, tmp_path):
    handler.delete("never-created")
    handler.delete("never-created", force=True)
    running("d1")
    handler.delete("d1", force=True)
    assert handler.runtime.list() == []
    assert _monitors_of("d1") == []
    assert read_exit(tmp_path / "mon-d1").exit_code == 137


def test_oom_kill_recorded_from_the_memory_cgroup(handler, make_bundle, mon_opts):
    if not cgroup_controller_usable("memory"):
        pytest.skip("this host has no memory cgroup controller for the container's group")
    name = f"crn-hd-oom-{os.getpid()}"
    opts = mon_opts("o1")
    b = make_bundle(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo $x"],
                    _cgroup_spec(name, {"memory": {"limit": 32 << 20}}))
    handler.create("o1", b.path, opts)
    handler.start("o1")
    status = wait_exit(opts.state_dir, timeout=30)
    assert status.oom_killed, status


# ---- features ---------------------------------------------------------------------

def test_user_namespaces_as_features_claims(handler, make_bundle, mon_opts, traversable_tmp):
    assert handler.features().user_namespaces
    assert handler.features().recursive_read_only_mounts == kernel_has_mount_setattr()

    def edit(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    opts = mon_opts("n1")
    b = make_bundle(["sh", "-c", "cat /proc/self/uid_map; id -u"], edit, traversable_tmp)
    handler.create("n1", b.path, opts)
    handler.start("n1")
    assert wait_exit(opts.state_dir, timeout=10).exit_code == 0
    lines = joined(log_entries(opts.log_path), "stdout")
    assert lines[0].split() == ["0", "100000", "65536"] and lines[1] == "0"
