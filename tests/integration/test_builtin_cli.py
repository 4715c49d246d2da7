"""`crio-native-runtime` driven like runc: create/start/state/kill/delete/run
with --root, --pid-file, exit codes and errors on stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "crio_native.runtime.cli"]


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
