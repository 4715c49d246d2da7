"""`crio-native-runtime` driven like runc: create/start/state/kill/delete/run
with --root, --pid-file, exit codes and errors on stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "crio_native.runtime.builtin.cli"]


@pytest.fixture
def cli(tmp_path):
    root = tmp_path / "cli-root"

    def run(*args, check=True, pre=(), detached=False):
        # A created container keeps the CLI's stdio (as with runc): give it
        # /dev/null, or the pipes would stay open for as long as it lives.
        out = subprocess.DEVNULL if detached else subprocess.PIPE
        p = subprocess.run(CLI + [*map(str, pre), "--root", str(root), *map(str, args)],
                           stdout=out, stderr=out, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, p.stderr
        return p
    yield run
    for cid in (root.iterdir() if root.exists() else []):
        run("delete", "--force", cid.name, check=False)


def test_run_exit_code_and_output(cli, make_bundle):
    b = make_bundle(["sh", "-c", "echo out; exit 4"])
    p = cli("run", "--bundle", b.path, "r1", check=False)
    assert (p.returncode, p.stdout) == (4, "out\n")


def test_create_start_state_kill_delete(cli, make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    pid_file = tmp_path / "pid"
    cli("create", "--bundle", b.path, "--pid-file", pid_file, "c1", detached=True)
    state = json.loads(cli("state", "c1").stdout)
    assert state["status"] == "created"
    assert state["pid"] == int(pid_file.read_text())
    cli("start", "c1")
    assert json.loads(cli("state", "c1").stdout)["status"] == "running"
    assert "c1" in cli("list").stdout
    cli("kill", "c1", "KILL")
    deadline = time.monotonic() + 5
    while json.loads(cli("state", "c1").stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cli("delete", "c1")
    assert cli("state", "c1", check=False).returncode == 1


def test_errors_on_stderr(cli, make_bundle, tmp_path):
    p = cli("run", "--bundle", make_bundle(["nope"]).path, "e1", check=False)
    assert p.returncode == 1
    assert 'exec: "nope": executable file not found in $PATH' in p.stderr
    log = tmp_path / "log.json"
    p = cli("kill", "missing", "TERM", check=False, pre=["--log", log, "--log-format", "json"])
    assert p.returncode == 1
    assert "does not exist" in json.loads(log.read_text())["msg"]


def test_features(cli):
    doc = json.loads(cli("features").stdout)
    assert {"ociVersionMin", "ociVersionMax", "mountOptions", "linux"} <= set(doc)
    assert "user" in doc["linux"]["namespaces"] and doc["linux"]["seccomp"]["enabled"]
    assert "SCMP_ARCH_X86_64" in doc["linux"]["seccomp"]["archs"]
    assert "rbind" in doc["mountOptions"]


def test_pause_resume_via_cli(cli, make_bundle):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = f"crn-cli-pause-{os.getpid()}"
    cli("create", "--bundle", make_bundle(["sleep", "60"], edit).path, "pz", detached=True)
    cli("start", "pz")
    cli("pause", "pz")
    assert json.loads(cli("state", "pz").stdout)["status"] == "paused"
    cli("resume", "pz")
    assert json.loads(cli("state", "pz").stdout)["status"] == "running"
    cli("delete", "--force", "pz")


def test_exec_via_cli(cli, make_bundle, tmp_path):
    cli("create", "--bundle", make_bundle(["sleep", "60"]).path, "ex", detached=True)
    cli("start", "ex")
    p = cli("exec", "--cwd", "/tmp", "-e", "X=1", "-u", "1000:1000", "ex",
            "sh", "-c", "pwd; echo $X; id -u; exit 3", check=False)
    assert (p.returncode, p.stdout) == (3, "/tmp\n1\n1000\n")
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["hostname"], "cwd": "/", "env": ["PATH=/bin"],
                                   "user": {"uid": 0, "gid": 0}}))
    assert cli("exec", "--process", process, "ex").stdout == "crn\n"
    cli("delete", "--force", "ex")


RUNC = "/usr/sbin/runc"


def _runc(root, *args, detached=False):
    """runc's CLI; a created container keeps runc's stdio, so `detached`
    gives it /dev/null instead of our pipes."""
    out = subprocess.DEVNULL if detached else subprocess.PIPE
    return subprocess.run([RUNC, "--root", str(root), *map(str, args)], stdout=out, stderr=out,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def _ps_table_pids(text: str) -> list[str]:
    lines = text.splitlines()
    col = lines[0].split().index("PID")
    return [line.split()[col] for line in lines[1:]]


def test_ps_matches_runc(cli, make_bundle, tmp_path, cgroups_path):
    """json: the host pids in the container's cgroups; table: ps -ef (or the
    given ps options) cut down to them, with runc's header and shape."""
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed")
    script = ["sh", "-c", "sleep 100 & sleep 101"]
    results = {}
    for name in ("builtin", "runc"):
        def edit(spec, name=name):
            spec["linux"]["cgroupsPath"] = cgroups_path(f"crn-ps-{name}-{os.getpid()}")
        b = make_bundle(script, edit)
        if name == "builtin":
            cli("create", "--bundle", b.path, "ps1", detached=True)
            cli("start", "ps1")
            run = lambda *a: cli(*a).stdout  # noqa: E731
        else:
            root = tmp_path / "runc-root"
            assert _runc(root, "create", "--bundle", b.path, "ps1", detached=True).returncode == 0
            _runc(root, "start", "ps1")
            run = lambda *a: _runc(root, *a).stdout  # noqa: E731
        deadline = time.monotonic() + 5
        while len(json.loads(run("ps", "--format", "json", "ps1"))) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pids = json.loads(run("ps", "--format", "json", "ps1"))
        table = run("ps", "ps1")
        custom = run("ps", "ps1", "-o", "pid,comm")
        results[name] = (pids, table, custom)
        if name == "runc":
            _runc(root, "delete", "--force", "ps1")
        else:
            cli("delete", "--force", "ps1")
    for name, (pids, table, custom) in results.items():
        assert len(pids) == 2, name
        assert _ps_table_pids(table) == [str(p) for p in pids], name
        assert [line.split()[1] for line in custom.splitlines()[1:]] == ["sleep", "sleep"]
    mine, ref = results["builtin"], results["runc"]
    assert mine[1].splitlines()[0] == ref[1].splitlines()[0]
    assert mine[2].splitlines()[0] == ref[2].splitlines()[0]


def test_ps_json_without_cgroups_lists_the_process_tree(cli, make_bundle):
    cli("create", "--bundle", make_bundle(["sh", "-c", "sleep 100 & sleep 101"]).path, "ps2",
        detached=True)
    cli("start", "ps2")
    deadline = time.monotonic() + 5
    while len(pids := json.loads(cli("ps", "--format", "json", "ps2").stdout)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    init = json.loads(cli("state", "ps2").stdout)["pid"]
    assert pids[0] == init and len(pids) == 2
    cli("delete", "--force", "ps2")
    assert cli("ps", "ps2", check=False).returncode == 1


class ConsoleServer:
    """A console-socket server, as a runc user runs one: receives the pty
    master (SCM_RIGHTS) and reads what the container writes to it."""

    def __init__(self, path):
        import socket
        import threading

        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.name, self.output, self.master = None, b"", None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import socket

        conn, _ = self.sock.accept()
        with conn:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        self.name, self.master = msg, fds[0]
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:         # EIO: every slave is closed
                break
            if not data:
                break
            self.output += data

    def result(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        os.close(self.master)
        self.sock.close()
        return self.name, self.output


def test_console_socket_matches_runc(cli, make_bundle, tmp_path):
    """process.terminal with --console-socket: the pty comes from the
    container's own devpts (tty says /dev/pts/0), it is the controlling
    terminal, and its master reaches the socket's owner, as with runc."""
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed")

    def edit(spec):
        spec["process"]["terminal"] = True
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    # field 7 of stat: the controlling tty (136,0 = /dev/pts/0)
    script = ["sh", "-c", "tty; ls /dev/pts; stat -c %u /proc/self/fd/0; "
              "cut -d' ' -f7 /proc/self/stat; echo done"]
    results = {}
    for name in ("builtin", "runc"):
        server = ConsoleServer(tmp_path / f"console-{name}.sock")
        b = make_bundle(script, edit)
        if name == "builtin":
            cli("create", "--bundle", b.path, "--console-socket", server.path, "tty1",
                detached=True)
            cli("start", "tty1")
        else:
            root = tmp_path / "runc-root"
            p = _runc(root, "create", "--bundle", b.path, "--console-socket", server.path,
                      "tty1")
            assert p.returncode == 0, p.stderr
            _runc(root, "start", "tty1")
        results[name] = server.result()
        if name == "builtin":
            cli("delete", "--force", "tty1")
        else:
            _runc(root, "delete", "--force", "tty1")
    assert results["builtin"] == results["runc"]
    name, out = results["builtin"]
    assert name == b"/dev/ptmx"
    assert out.decode().split() == ["/dev/pts/0", "0", "ptmx", "1000", str(136 << 8), "done"]


def test_console_socket_needs_terminal_and_detach(cli, make_bundle, tmp_path):
    sock = tmp_path / "nobody.sock"
    p = cli("create", "--bundle", make_bundle(["true"]).path, "--console-socket", sock, "c9",
            check=False)
    assert p.returncode == 1 and "process.terminal is false" in p.stderr

    def edit(spec):
        spec["process"]["terminal"] = True
    b = make_bundle(["true"], edit)
    p = cli("create", "--bundle", b.path, "--console-socket", sock, "c9", check=False)
    assert p.returncode == 1 and "nobody.sock" in p.stderr      # nothing listens there
    p = cli("run", "--bundle", b.path, "--console-socket", sock, "c9", check=False)
    assert p.returncode == 1 and "detach" in p.stderr
    p = cli("create", "--bundle", b.path, "c9", check=False)
    assert p.returncode == 1 and "console socket" in p.stderr
    assert cli("list").stdout == ""


def _limit_file(pid: int, v1: tuple[str, str], v2: str) -> Path:
    """The file holding a limit for the container process `pid`: in its v2
    group on a pure v2 host, else in the v1 hierarchy of the controller."""
    from crio_native.linux import cgroups

    for h, mount_root in cgroups.host_hierarchies():
        own = cgroups.own_cgroups(Path(f"/proc/{pid}/cgroup").read_text())
        if h.version == 2 and v2.split(".")[0] in h.controllers:
            return h.dir_of(own[""], mount_root) / v2
        if h.version == 1 and v1[0] in h.controllers:
            return h.dir_of(own[v1[0]], mount_root) / v1[1]
    pytest.skip(f"no usable {v1[0]} controller on this host")


@pytest.mark.vm
def test_update_via_cli(cli, make_bundle, tmp_path):
    """`update` takes runc's flags (with size suffixes) and a resources file,
    and writes the limits into the container's own group."""
    from tests.hostinfo import cgroup_controller_usable

    if not cgroup_controller_usable("pids") or not cgroup_controller_usable("memory"):
        pytest.skip("needs the pids and memory controllers")

    def edit(spec):
        spec["linux"]["cgroupsPath"] = f"crn-cli-update-{os.getpid()}"
        spec["linux"]["resources"] = {"pids": {"limit": 50}}
    cli("create", "--bundle", make_bundle(["sleep", "60"], edit).path, "up", detached=True)
    pid = json.loads(cli("state", "up").stdout)["pid"]
    pids = _limit_file(pid, ("pids", "pids.max"), "pids.max")
    memory = _limit_file(pid, ("memory", "memory.limit_in_bytes"), "memory.max")
    assert pids.read_text().strip() == "50"
    cli("update", "--pids-limit", "70", "--memory", "64m", "up")
    assert pids.read_text().strip() == "70"
    assert memory.read_text().strip() == str(64 << 20)
    res = tmp_path / "resources.json"
    res.write_text(json.dumps({"pids": {"limit": 90}}))
    cli("update", "--resources", res, "--memory", "128MiB", "up")
    assert pids.read_text().strip() == "90"
    assert memory.read_text().strip() == str(128 << 20)
    for bad, word in ((["--memory", "lots"], "--memory"), (["--pids-limit", "x"], "--pids-limit"),
                      ([], "nothing to update")):
        p = cli("update", *bad, "up", check=False)
        assert p.returncode == 1 and word in p.stderr, p.stderr
    assert pids.read_text().strip() == "90"
    cli("delete", "--force", "up")


def test_parse_bytes_like_runc():
    from crio_native.errors import InvalidArgument
    from crio_native.runtime.builtin.cli import parse_bytes

    assert parse_bytes("1024") == 1024
    assert parse_bytes("64m") == parse_bytes("64MB") == parse_bytes("64MiB") == 64 << 20
    assert parse_bytes("1.5g") == 3 << 29
    assert parse_bytes("-1") == -1
    for bad in ("", "m", "12x", "-5", "1.2.3"):
        with pytest.raises(InvalidArgument):
            parse_bytes(bad)


def test_run_in_the_foreground_with_a_terminal(tmp_path, make_bundle):
    """`run` of a terminal container without --detach: the CLI makes its own
    console socket and copies between the pty and its stdio, as runc does;
    the container sees a tty and gets our input; the exit code is its own."""
    import pty

    def edit(spec):
        spec["process"]["terminal"] = True
    b = make_bundle(["sh", "-c", "tty; read line; echo got:$line; exit 3"], edit)
    master, slave = pty.openpty()
    root = tmp_path / "fg-root"
    proc = subprocess.Popen(CLI + ["--root", str(root), "run", "--bundle", str(b.path), "fg"],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        sent = False
        while proc.poll() is None or _readable(master):
            assert time.monotonic() < deadline, out
            if _readable(master):
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            if not sent and b"/dev/pts/0" in out:
                os.write(master, b"hello\r")
                sent = True
        assert proc.wait(timeout=10) == 3, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        proc.stderr.close()
    text = out.decode(errors="replace")
    assert "/dev/pts/0" in text and "got:hello" in text
    assert not root.exists() or not any(root.iterdir())


def _readable(fd: int) -> bool:
    import select
    return bool(select.select([fd], [], [], 0.05)[0])


# ---- --no-pivot and the MS_MOVE fallback ---------------------------------------

def _no_pivot_bundle(make_bundle, args, cgroups_path=None, name="np", where=None):
    def edit(spec):
        if cgroups_path is not None:
            spec["linux"]["cgroupsPath"] = cgroups_path(f"crn-{name}-{os.getpid()}")
    b = make_bundle(args, edit, where=where)
    (b.rootfs / "marker").write_text("own root\n")
    return b


def test_no_pivot_sees_its_own_root_like_runc(cli, make_bundle, tmp_path, cgroups_path):
    """runc --no-pivot as the oracle: the same root and the same mount
    table inside (nothing of the host's beyond the rootfs's own path)."""
    from tests.integration.test_oci_compare import mount_shape
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed")
    script = ["sh", "-c", "cat /marker; ls /; echo ---; cat /proc/self/mountinfo"]
    mine = cli("run", "--no-pivot", "--bundle",
               _no_pivot_bundle(make_bundle, script, cgroups_path, "np-b").path, "np1")
    ref = _runc(tmp_path / "runc-root", "run", "--no-pivot", "--bundle",
                _no_pivot_bundle(make_bundle, script, cgroups_path, "np-r").path, "np1")
    print(mine.stdout, ref.stdout, sep="\n=====\n")
    assert ref.returncode == 0, ref.stderr
    (my_root, my_mounts), (ref_root, ref_mounts) = (r.stdout.split("---\n") for r in (mine, ref))
    assert my_root == ref_root and my_root.startswith("own root\n")
    assert mount_shape(my_mounts) == mount_shape(ref_mounts)


def _namespace_mounts(pid: int) -> dict[int, str] | None:
    """Every mount of `pid`'s mount namespace, also those outside its root
    (mountinfo ids -> mount point): listmount(2)/statmount(2) with the
    namespace's id (Linux 6.11+), or None where the kernel lacks them."""
    import ctypes
    import fcntl
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    ns_get_mntns_id, lsmt_root, sys_statmount, sys_listmount = 0x8008b705, 2**64 - 1, 457, 458
    buf = bytearray(8)
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    try:
        fcntl.ioctl(fd, ns_get_mntns_id, buf)
    except OSError:
        return None
    finally:
        os.close(fd)
    (ns_id,) = struct.unpack("Q", buf)
    ids = (ctypes.c_uint64 * 4096)()
    n = libc.syscall(sys_listmount, struct.pack("IIQQQ", 32, 0, lsmt_root, 0, ns_id), ids,
                     4096, 0)
    if n < 0:
        return None
    out = {}
    for mnt in ids[:n]:
        sm = ctypes.create_string_buffer(1 << 16)
        # STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT; strings follow the 512-byte header
        if libc.syscall(sys_statmount, struct.pack("IIQQQ", 32, 0, mnt, 0x12, ns_id), sm,
                        len(sm), 0) < 0:
            return None
        old_id, = struct.unpack_from("I", sm.raw, 56)
        point_at = 512 + struct.unpack_from("I", sm.raw, 108)[0]
        out[old_id] = sm.raw[point_at:sm.raw.index(b"\0", point_at)].decode()
    return out


def _host_mounts_left(pid: int) -> list[str] | None:
    """The mounts of the container's namespace that it cannot see: not in
    its own mountinfo (which stops at its root)."""
    every = _namespace_mounts(pid)
    if every is None:
        return None
    seen = {int(line.split()[0]) for line in Path(f"/proc/{pid}/mountinfo").read_text()
            .splitlines()}
    return sorted(point for mid, point in every.items() if mid not in seen)


def test_no_pivot_leaves_no_host_mount_in_the_namespace(cli, make_bundle, tmp_path,
                                                        cgroups_path):
    """What pivot_root would have detached with the old root goes before the
    move: of the host's mounts only the old root itself stays under the
    container's root (runc detaches only its full procfs and sysfs)."""
    left = {}
    for name in ("builtin", "runc"):
        if name == "runc" and not os.path.exists(RUNC):
            continue
        b = _no_pivot_bundle(make_bundle, ["sleep", "60"], cgroups_path, f"np-{name}")
        if name == "builtin":
            cli("create", "--no-pivot", "--bundle", b.path, "np2", detached=True)
            pid = json.loads(cli("state", "np2").stdout)["pid"]
        else:
            root = tmp_path / "runc-root"
            assert _runc(root, "create", "--no-pivot", "--bundle", b.path, "np2",
                         detached=True).returncode == 0
            pid = json.loads(_runc(root, "state", "np2").stdout)["pid"]
        try:
            left[name] = _host_mounts_left(pid)
        finally:
            if name == "builtin":
                cli("delete", "--force", "np2")
            else:
                _runc(root, "delete", "--force", "np2")
    print(f"host mounts left in the namespace: {left}")
    if left["builtin"] is None:
        pytest.skip("this kernel has no listmount/statmount for another mount namespace")
    assert left["builtin"] == ["/"]
    if "runc" in left:
        assert "/" in left["runc"] and len(left["runc"]) >= len(left["builtin"])


def _ramfs_root_script(base: Path, binds: list[str], work: Path) -> str:
    """Shell run under `unshare -m --propagation private`: a ramfs below a
    shared mount becomes the root (chroot), as on an initramfs host:
    pivot_root refuses it (EINVAL).  Host directories come in by rbind."""
    lines = ["set -e", f"mount -t tmpfs crn-base {base}", f"mount --make-shared {base}",
             f"mkdir {base}/root", f"mount -t ramfs crn-ramfs {base}/root"]
    for d in binds:
        lines += [f"if [ -L {d} ]; then cp -P {d} {base}/root{d}; else "
                  f"mkdir -p {base}/root{d} && mount --rbind {d} {base}/root{d}; fi"]
    lines += [f"exec chroot {base}/root \"$@\""]
    return "\n".join(lines)


def _bind_points(dirs: list[Path], base: Path) -> list[str]:
    """Where to rbind the host into the ramfs root so that `dirs` are there:
    each one's top-level directory, except one that holds `base` itself
    (/tmp, where pytest's tmp_path lives: binding it would put the new root
    inside itself), which comes in as the deeper directory only.  So a
    checkout or venv under /tmp works too.  Nested points are dropped."""
    points: set[Path] = set()
    for d in dirs:
        if not os.path.lexists(d):
            continue
        top = Path("/", d.parts[1])
        points.add(d if base.is_relative_to(top) else top)
    assert not any(base.is_relative_to(p) for p in points), (points, base)
    return sorted(str(p) for p in points
                  if not any(p != q and p.is_relative_to(q) for q in points))


def test_initramfs_root_falls_back_to_ms_move(make_bundle, tmp_path):
    """On a ramfs root pivot_root fails with EINVAL; the child then moves the
    rootfs onto / instead, without being asked (--no-pivot not given)."""
    import shutil
    work, base = tmp_path / "work", tmp_path / "base"
    work.mkdir()
    base.mkdir()
    b = _no_pivot_bundle(make_bundle, ["sh", "-c", "cat /marker; ls /"], where=work)
    system = [Path(d) for d in ("/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/proc",
                                "/sys", "/dev")]
    # the interpreter, its venv and this checkout (its src/ and built helpers)
    ours = [Path(sys.executable).resolve().parent, Path(sys.prefix), Path(sys.base_prefix),
            Path(sys.executable).parent, Path(__file__).resolve().parents[2]]
    binds = _bind_points(system + ours, base) + [str(work)]
    script = _ramfs_root_script(base, binds, work)
    run = [shutil.which("unshare"), "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    p = subprocess.run(run + CLI + ["--root", str(work / "state"), "run", "--bundle",
                                    str(b.path), "ram1"],
                       capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("own root\n") and "marker" in p.stdout.split()
    # the control: pivot_root itself is refused there
    control = subprocess.run(run + ["unshare", "-m", "--propagation", "slave", "sh", "-c",
                                    f"mount --bind {work} {work} && cd {work} && "
                                    "pivot_root . ."], capture_output=True, text=True, timeout=30)
    assert control.returncode != 0 and "Invalid argument" in control.stderr, control.stderr
