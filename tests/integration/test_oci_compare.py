"""The same bundle run by the built-in runtime and by an OCI CLI (runc; crun
where the host lets it run) must give the same observable container."""
from __future__ import annotations

import os
import re

import pytest

# Also run inside the pure cgroup v2 VM by `make test` (crun works there as a second oracle).
pytestmark = [pytest.mark.root, pytest.mark.vm]

STATUS_PROBE = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status"


def both(builtin, oracle, bundle):
    mine, ref = builtin.run(bundle), oracle.run(bundle)
    assert ref.code is not None
    return mine, ref


def mount_shape(mountinfo: str) -> list[str]:
    """mountinfo without ids, device numbers and the bundle's host path."""
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        fstype = right.split()[0]
        root = "(rootfs)" if f[4] == "/" else f[3]
        out.append(f"{f[4]} {root} {f[5]} {fstype}")
    return out


def test_exit_code_and_stdout(builtin, oracle, make_bundle):
    b = make_bundle(["sh", "-c", "echo hello; echo err >&2; exit 3"])
    mine, ref = both(builtin, oracle, b)
    assert (mine.code, mine.out) == (ref.code, ref.out) == (3, "hello\n")
    assert mine.err == "err\n"


def test_caps_nnp_seccomp_status(builtin, oracle, make_bundle):
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", STATUS_PROBE]))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out
    assert "CapEff:\t0000000020000420" in mine.out and "NoNewPrivs:\t1" in mine.out


def test_capabilities_sets_and_no_nnp(builtin, oracle, make_bundle):
    def edit(spec):
        caps = ["CAP_CHOWN", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_NET_RAW"]
        spec["process"]["capabilities"] = {
            "bounding": caps + ["CAP_KILL"], "effective": caps, "permitted": caps,
            "inheritable": ["CAP_CHOWN", "CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]}
        spec["process"]["noNewPrivileges"] = False
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", STATUS_PROBE], edit))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out
    assert "CapAmb:\t0000000000002000" in mine.out and "NoNewPrivs:\t0" in mine.out


def test_hostname_user_groups_umask_cwd_env(builtin, oracle, make_bundle):
    def edit(spec):
        spec["hostname"] = "probe-host"
        spec["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20],
                                   "umask": 0o027}
        spec["process"]["cwd"] = "/tmp"
        spec["process"]["env"].append("FOO=bar baz")
    script = "hostname; id; umask; pwd; echo \"$FOO\""
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script], edit))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out
    assert mine.out.splitlines()[:2] == ["probe-host", "uid=1000 gid=1001 groups=10,20"]


def test_rlimits(builtin, oracle, make_bundle):
    def edit(spec):
        spec["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}]
    script = "ulimit -n; ulimit -Hn; ulimit -c; ulimit -u"
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script], edit))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out == "512\n1000\n0\n300\n"


def test_mountinfo_shape(builtin, oracle, make_bundle):
    mine, ref = both(builtin, oracle, make_bundle(["cat", "/proc/self/mountinfo"]))
    assert mine.code == ref.code == 0
    if oracle.name == "runc":
        assert mount_shape(mine.out) == mount_shape(ref.out)
    else:
        # crun applies maskedPaths before readonlyPaths and masks files with
        # the host's /dev/null: compare the mount points only
        def points(text):
            return sorted(line.split()[0] for line in mount_shape(text))
        assert points(mine.out) == points(ref.out)


def test_dev_contents(builtin, oracle, make_bundle):
    script = "ls -l /dev | awk '{print $1, $3, $4, $5, $6, $NF}'"
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script]))
    assert mine.code == ref.code == 0
    expected = ref.out
    if oracle.name == "crun" and not os.path.exists("/proc/kcore"):
        # crun 1.8.1 makes the /dev/core link even when the kernel has no
        # /proc/kcore; runc and builtin make it only when it would resolve.
        expected = "".join(line for line in expected.splitlines(keepends=True)
                           if not line.rstrip().endswith(" /proc/kcore"))
    assert mine.out == expected
    assert "crw-rw-rw- root root 1, 3 null" in mine.out
    assert ("/proc/kcore" in mine.out) == os.path.exists("/proc/kcore")


def test_masked_and_readonly_paths(builtin, oracle, make_bundle):
    script = ("head -c 16 /proc/kcore | wc -c; ls /sys/firmware | wc -l; "
              "echo 1 > /proc/sys/kernel/domainname && echo wrote || echo ro; "
              "touch /newfile && echo wrote || echo ro")
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script]))
    assert mine.out == ref.out
    assert mine.out.split() == ["0", "0", "ro", "ro"]


def test_bind_mount_ro_and_rw(builtin, oracle, make_bundle, tmp_path):
    host = tmp_path / "hostdata"
    host.mkdir()
    (host / "f").write_text("from host\n")
    hostfile = tmp_path / "single"
    hostfile.write_text("one file\n")

    def edit(spec):
        spec["mounts"] += [
            {"destination": "/data/ro", "type": "bind", "source": str(host),
             "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/data/rw", "type": "none", "source": str(host),
             "options": ["bind", "nosuid", "nodev"]},
            {"destination": "/etc/single", "type": "bind", "source": str(hostfile),
             "options": ["bind", "ro"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "mode=700"]}]
    script = ("cat /data/ro/f /etc/single; touch /data/ro/x 2>/dev/null && echo w || echo ro; "
              "touch /data/rw/y && echo w || echo ro; stat -c %a /scratch; "
              "grep -E ' /(data|etc/single|scratch)' /proc/self/mountinfo | cut -d' ' -f5,6")
    mine = builtin.run(make_bundle(["sh", "-c", script], edit))
    (host / "y").unlink()
    ref = oracle.run(make_bundle(["sh", "-c", script], edit))
    (host / "y").unlink()
    assert mine.out == ref.out
    assert mine.out.splitlines()[:5] == ["from host", "one file", "ro", "w", "700"]


def test_rootfs_propagation_private(builtin, oracle, make_bundle):
    def edit(spec):
        spec["linux"]["rootfsPropagation"] = "rprivate"
    script = "grep ' / / ' /proc/self/mountinfo | grep -c shared:; true"
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script], edit))
    assert mine.out == ref.out == "0\n"


def test_absolute_symlink_destination_stays_inside(builtin, oracle, make_bundle, tmp_path):
    """/link -> /tmp/target inside the image means <rootfs>/tmp/target, never
    the host's /tmp/target."""
    target = f"/tmp/crn-escape-{os.getpid()}"
    assert not os.path.exists(target)

    def edit(spec):
        spec["mounts"].append({"destination": "/link/sub", "type": "tmpfs", "source": "tmpfs"})
    results = []
    for runner in (builtin, oracle):
        b = make_bundle(["sh", "-c", "grep -c ' /tmp/crn-escape-[0-9]*/sub ' /proc/self/mountinfo"],
                        edit)
        b.spec["root"]["readonly"] = False
        (b.rootfs / "link").symlink_to(target)
        results.append(runner.run(b.write()))
        if runner is builtin or oracle.name == "runc":
            assert (b.rootfs / target.lstrip("/") / "sub").is_dir()
        assert not os.path.exists(target)
    assert results[0].out == "1\n"
    if oracle.name == "runc":
        assert results[1].out == "1\n"


def test_signal_exit_status(builtin, oracle, make_bundle):
    script = "sleep 100 & kill -TERM $!; wait $!; echo $?; kill -9 $$"
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script]))
    assert mine.out == ref.out == "143\n"


def test_missing_cwd_is_created(builtin, oracle, make_bundle):
    def edit(spec):
        spec["process"]["cwd"] = "/work/dir"
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", "pwd; stat -c %a ."], edit))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out == "/work/dir\n755\n"


@pytest.mark.parametrize("args,pattern", [
    (["nonexistent-cmd"], r'exec: "nonexistent-cmd": executable file not found in \$PATH'),
    (["/bin/nope"], r'exec: "/bin/nope": stat /bin/nope: no such file or directory'),
])
def test_launch_errors_match_runc(builtin, oracle, make_bundle, args, pattern):
    from crio_native.errors import FailedPrecondition

    b = make_bundle(args)
    with pytest.raises(FailedPrecondition) as exc:
        builtin.run(b)
    assert re.search(pattern, str(exc.value))
    ref = oracle.run(b)
    assert ref.code != 0
    if oracle.name == "runc":  # crun words it its own way
        # runc logs in logfmt, which escapes the quotes
        assert re.search(pattern, ref.err.replace('\\"', '"')), ref.err


def test_cwd_reached_before_user_switch(builtin, oracle, make_bundle):
    """The runtime enters a cwd the container user may not search, as runc does."""
    def edit(spec):
        spec["process"]["cwd"] = "/private"
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    results = []
    for runner in (builtin, oracle):
        b = make_bundle(["sh", "-c", "pwd; ls . 2>/dev/null || echo denied"], edit)
        (b.rootfs / "private").mkdir(mode=0o700)
        results.append(runner.run(b))
    assert results[0].out == results[1].out == "/private\ndenied\n"


def test_user_namespace_maps(builtin, oracle, make_bundle, traversable_tmp):
    """A new user namespace whose maps the parent writes while the child
    waits; devices are bound from the host since mknod is refused there."""
    def edit(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["process"]["user"] = {"uid": 0, "gid": 0}
    script = ("cat /proc/self/uid_map /proc/self/gid_map; id; " + STATUS_PROBE +
              "; echo x > /dev/null && echo devnull-ok; ls -l /dev/null | cut -c1")
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script], edit, traversable_tmp))
    assert mine.code == ref.code == 0, (mine.err, ref.err)
    assert mine.out == ref.out
    maps = mine.out.split()
    assert maps[:3] == ["0", "100000", "65536"] and "devnull-ok" in mine.out


def test_sysctls_and_oom_score_adj(builtin, oracle, make_bundle):
    def edit(spec):
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536",
                                   "net.ipv4.ping_group_range": "0 100"}
        spec["process"]["oomScoreAdj"] = 500
    script = ("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax "
              "/proc/sys/net/ipv4/ping_group_range /proc/self/oom_score_adj")
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script], edit))
    assert mine.code == ref.code == 0, (mine.err, ref.err)
    assert mine.out == ref.out
    assert mine.out.split() == ["1", "65536", "0", "100", "500"]


def test_cgroup_mount(builtin, oracle, make_bundle, cgroups_path):
    """runc's default `cgroup` mount: on this hybrid host a tmpfs with the
    container's group of each v1 hierarchy bound read-only inside."""
    def edit(spec):
        spec["linux"]["cgroupsPath"] = cgroups_path(f"crn-cgmount-{os.getpid()}")
        spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup",
                               "source": "cgroup",
                               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    script = ("grep ' /sys/fs/cgroup' /proc/self/mountinfo; ls -l /sys/fs/cgroup | "
              "awk '{print $1, $NF}'; touch /sys/fs/cgroup/pids/x 2>/dev/null || echo ro")
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", script], edit))
    assert mine.code == ref.code == 0, (mine.err, ref.err)
    lines, ref_lines = mine.out.splitlines(), ref.out.splitlines()
    n = sum(1 for x in lines if "/sys/fs/cgroup" in x)
    assert mount_shape("\n".join(lines[:n])) == mount_shape("\n".join(ref_lines[:n]))
    assert lines[n:] == ref_lines[n:]
    assert lines[-1] == "ro"


@pytest.fixture
def host_dir_with_submount(tmp_path):
    """A host dir holding a tmpfs mount of its own (unmounted afterwards)."""
    import subprocess

    top = tmp_path / "rro-src"
    (top / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "crn-rro", str(top / "sub")], check=True)
    yield top
    subprocess.run(["umount", str(top / "sub")], check=True)


@pytest.mark.parametrize("option, writable", [("rro", False), ("ro", True)])
def test_recursive_read_only_bind(builtin, oracle, make_bundle, host_dir_with_submount,
                                  option, writable):
    """"rro" makes the submounts a rbind brings along read-only too; plain
    "ro" leaves them writable."""
    def edit(spec):
        spec["mounts"].append({"destination": "/data", "type": "bind",
                               "source": str(host_dir_with_submount),
                               "options": ["rbind", option]})
    probe = "touch /data/sub/f && echo wrote; touch /data/f 2>/dev/null || echo top-ro"
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", probe], edit))
    assert mine.out == ref.out
    assert mine.out == ("wrote\ntop-ro\n" if writable else "top-ro\n")


def _device_rules_enforceable() -> bool:
    """The built-in runtime enforces device rules through the v1 devices
    controller, or on pure cgroup v2 with an eBPF device filter."""
    from crio_native.linux import cgroups

    hierarchies = cgroups.host_hierarchies()
    return cgroups.pure_v2(hierarchies) or any(
        h.version == 1 and "devices" in h.controllers for h, _ in hierarchies)


@pytest.mark.skipif(not _device_rules_enforceable(),
                    reason="a hybrid host without the v1 devices controller: the built-in "
                           "runtime cannot enforce device cgroup rules there")
def test_device_cgroup_rules(builtin, oracle, make_bundle, cgroups_path):
    """A node the spec creates but the device rules do not allow cannot be
    opened; the standard devices can."""
    def edit(spec):
        spec["linux"]["cgroupsPath"] = cgroups_path("devrules")
        spec["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                                     "fileMode": 0o644, "uid": 0, "gid": 0}]
        spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    probe = ("head -c1 /dev/null && echo null-ok; "
             "head -c1 /dev/kmsg >/dev/null 2>&1 || echo kmsg-denied")
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", probe], edit))
    assert mine.out == ref.out == "null-ok\nkmsg-denied\n"


def _runc_has_personality() -> bool:
    """runc took linux.personality in 1.2; 1.1 ignores it."""
    import subprocess

    out = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"runc version (\d+)\.(\d+)", out)
    return bool(m) and (int(m[1]), int(m[2])) >= (1, 2)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="LINUX32 shows as i686 on x86_64")
def test_personality_linux32(builtin, oracle, make_bundle):
    def edit(spec):
        spec["linux"]["personality"] = {"domain": "LINUX32"}
    mine, ref = both(builtin, oracle, make_bundle(["sh", "-c", "uname -m; cat /proc/self/personality"],
                                                  edit))
    assert mine.code == 0, mine.err
    assert mine.out == "i686\n00000008\n"
    if oracle.name == "runc" and not _runc_has_personality():
        # runc 1.1 ignores linux.personality (runc 1.2 applies it): its
        # container keeps the host's domain, which is what this host's
        # oracle can tell us; crun (and runc >= 1.2) must agree with us
        assert ref.out == "x86_64\n00000000\n"
    else:
        assert mine.out == ref.out


def _start_hooks_edit(hook_script: str):
    def edit(spec):
        spec["root"]["readonly"] = False
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        spec["process"]["env"].append("IN_PROGRAM=1")
        spec["hooks"] = {"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", hook_script], "env": ["HOOK_ENV=h"]}]}
    return edit


def test_start_container_hook(builtin, oracle, make_bundle):
    """The hook runs in the container (path, root, user, caps) before the
    program, with the state on stdin; both runtimes give the same view.
    (The state differs by design: runc gives the pid inside the container's
    pid namespace, we the host's as the runtime spec's state defines it.)"""
    hook = ("sed 's/.*\"status\": *\"\\([a-z]*\\)\".*/\\1/' > /tmp/h; "
            "echo >> /tmp/h; "
            "{ id; echo $HOOK_ENV $IN_PROGRAM; grep CapEff /proc/self/status; "
            "hostname; pwd; } >> /tmp/h")
    program = ["sh", "-c", "cat /tmp/h; echo program"]
    b = make_bundle(program, _start_hooks_edit(hook))
    (b.rootfs / "tmp").chmod(0o1777)    # the hook runs as the container user
    mine, ref = both(builtin, oracle, b)
    assert mine.code == ref.code == 0, (mine.err, ref.err)
    # the status the hook sees: "created" from runc and us (the program has
    # not run yet); crun 1.8 says "starting"
    assert mine.out.splitlines()[0] == "created"
    assert ref.out.splitlines()[0] in ("created", "starting")
    assert mine.out.splitlines()[1:] == ref.out.splitlines()[1:]
    assert mine.out.splitlines()[1:3] == ["uid=1000 gid=1000", "h"]


def test_failing_start_container_hook(builtin, oracle, make_bundle):
    """A failing hook stops the container before its program runs: runc's
    `run` exits 1 naming the hook; ours fails start (the CLI's run exits 1)."""
    from crio_native.errors import FailedPrecondition

    b = make_bundle(["sh", "-c", "echo program"], _start_hooks_edit("exit 7"))
    with pytest.raises(FailedPrecondition,
                       match=r"startContainer hook #0 \(/bin/sh\): exit status 7"):
        builtin.run(b)
    ref = oracle.run(b)
    assert ref.code != 0 and "program" not in ref.out
    if oracle.name == "runc":
        assert "error running hook #0" in ref.err and "exit status 7" in ref.err
