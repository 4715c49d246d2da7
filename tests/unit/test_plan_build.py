"""Plan building: OCI config -> records, one varied field per case, and
invalid configs -> InvalidArgument naming the field.  No root needed."""
from __future__ import annotations

import copy
import re
import stat
from pathlib import Path

import pytest

from crio_native.errors import InvalidArgument, Unimplemented
from crio_native.linux import mounts as m
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.plan import HostFacts, build_plan, plan_records
from crio_native.runtime.builtin.records import Rec

HOST = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=False)
BASE = {
    "ociVersion": "1.2.0",
    "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"},
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "hostdir").mkdir()
    (tmp_path / "hostfile").write_text("x")
    return tmp_path


def build(bundle, edit=None, host=HOST):
    spec = copy.deepcopy(BASE)
    if edit:
        edit(spec)
    return plan_records(spec, bundle, host=host)


def of(records, kind):
    return [x.fields for x in records if x.type == kind]


def test_base_plan_order(bundle):
    recs = build(bundle)
    kinds = [x.type for x in recs]
    assert kinds[0] == Rec.NS_NEW
    assert kinds.index(Rec.ROOTFS) < kinds.index(Rec.MOUNT) < kinds.index(Rec.DEVICE) \
        < kinds.index(Rec.SYMLINK) < kinds.index(Rec.ARG)
    assert of(recs, Rec.NS_NEW) == [(0x00020000 | 0x20000000,)]
    assert of(recs, Rec.ROOTFS) == [(str((bundle / "rootfs").resolve()),)]
    assert of(recs, Rec.ARG) == [("sh",)] and of(recs, Rec.ENV) == [("PATH=/bin",)]
    assert of(recs, Rec.USER) == [(0, 0, ())]
    assert of(recs, Rec.CWD) == [("/",)]
    assert ("/dev/null", ) == of(recs, Rec.DEVICE)[0][-1:]


def _set(path, value):
    def edit(spec):
        obj = spec
        for key in path[:-1]:
            obj = obj.setdefault(key, {})
        obj[path[-1]] = value
    return edit


# (edit, record type, expected fields of the records of that type)
CASES = [
    pytest.param(_set(["linux", "namespaces"], [{"type": "mount"}, {"type": "uts"}]),
                 Rec.NS_NEW, [(0x00020000 | 0x04000000,)], id="uts-ns"),
    pytest.param(_set(["linux", "namespaces"], [{"type": "mount"},
                                                {"type": "network", "path": "/run/netns/x"},
                                                {"type": "user", "path": "/proc/1/ns/user"}]),
                 Rec.NS_JOIN, [(0x10000000, "/proc/1/ns/user"), (0x40000000, "/run/netns/x")],
                 id="join-user-first"),
    pytest.param(_set(["process", "user"], {"uid": 5, "gid": 6, "additionalGids": [7, 8],
                                            "umask": 0o27}),
                 Rec.USER, [(5, 6, (7, 8))], id="user"),
    pytest.param(_set(["process", "user"], {"umask": 0o27}), Rec.UMASK, [(0o27,)], id="umask"),
    pytest.param(_set(["process", "cwd"], "/work"), Rec.CWD, [("/work",)], id="cwd"),
    pytest.param(_set(["process", "noNewPrivileges"], True), Rec.NO_NEW_PRIVS, [()], id="nnp"),
    pytest.param(_set(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]),
                 Rec.RLIMIT, [(7, 10, 20)], id="rlimit"),
    pytest.param(_set(["process", "oomScoreAdj"], 500), Rec.OOM_SCORE_ADJ, [(500,)], id="oom"),
    pytest.param(_set(["process", "oomScoreAdj"], -500), Rec.OOM_SCORE_ADJ, [(0,)],
                 id="oom-clamped-without-cap-sys-resource"),
    pytest.param(_set(["process", "capabilities"],
                      {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
                       "ambient": ["CAP_NET_RAW"]}),
                 Rec.CAPS, [(1 << 5 | 1, 1 << 5, 0, 0, 1 << 13, 40)], id="caps"),
    pytest.param(_set(["root", "readonly"], True), Rec.ROOT_READONLY, [()], id="ro-root"),
    pytest.param(_set(["linux", "rootfsPropagation"], "rslave"), Rec.ROOT_PROPAGATION,
                 [(m.MS_SLAVE | m.MS_REC,)], id="rootfs-propagation"),
    pytest.param(_set(["linux", "maskedPaths"], ["/proc/kcore"]), Rec.MASK, [("/proc/kcore",)],
                 id="masked"),
    pytest.param(_set(["linux", "readonlyPaths"], ["/proc/sys"]), Rec.READONLY_PATH,
                 [("/proc/sys",)], id="readonly"),
    pytest.param(_set(["mounts"], [{"destination": "/d", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "ro", "mode=755", "rprivate"]}]),
                 Rec.MOUNT, [(m.MS_NOSUID | m.MS_RDONLY, m.MS_PRIVATE | m.MS_REC, r.MOUNT_FS,
                              "tmpfs", "/d", "tmpfs", "mode=755")], id="tmpfs"),
    pytest.param(_set(["mounts"], [{"destination": "/d", "type": "devpts", "source": "devpts",
                                    "options": ["newinstance", "ptmxmode=0666"]}]),
                 Rec.MOUNT, [(0, 0, r.MOUNT_FS, "devpts", "/d", "devpts",
                              "newinstance,ptmxmode=0666")], id="devpts"),
]


@pytest.mark.parametrize("edit,kind,expected", CASES)
def test_one_field(bundle, edit, kind, expected):
    assert of(build(bundle, edit), kind) == expected


def test_cap_unknown_to_kernel_is_skipped(bundle):
    old_kernel = HostFacts(last_cap=39, oom_score_adj=0, can_lower_oom=False)
    edit = _set(["process", "capabilities"], {"bounding": ["CAP_CHECKPOINT_RESTORE", "CAP_KILL"]})
    assert of(build(bundle, edit, old_kernel), Rec.CAPS) == [(1 << 5, 0, 0, 0, 0, 39)]


def test_oom_lowered_with_cap_sys_resource(bundle):
    privileged = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=True)
    edit = _set(["process", "oomScoreAdj"], -500)
    assert of(build(bundle, edit, privileged), Rec.OOM_SCORE_ADJ) == [(-500,)]


def test_hostname_with_uts(bundle):
    def edit(spec):
        spec["hostname"] = "h1"
        spec["linux"]["namespaces"].append({"type": "uts"})
    assert of(build(bundle, edit), Rec.HOSTNAME) == [("h1",)]


def test_userns_id_maps(bundle):
    def edit(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 2000, "size": 5}]
    assert of(build(bundle, edit), Rec.ID_MAP) == [(0, 0, 1000, 10), (1, 0, 2000, 5)]


def test_bind_mounts(bundle):
    def edit(spec):
        spec["mounts"] = [
            {"destination": "/a", "type": "bind", "source": "hostdir", "options": ["rbind", "ro"]},
            {"destination": "/b", "source": str(bundle / "hostfile"), "options": ["bind"]}]
    assert of(build(bundle, edit), Rec.MOUNT) == [
        (m.MS_BIND | m.MS_REC | m.MS_RDONLY, 0, r.MOUNT_BIND, str(bundle / "hostdir"), "/a", "", ""),
        (m.MS_BIND, 0, r.MOUNT_BIND | r.MOUNT_DEST_FILE, str(bundle / "hostfile"), "/b", "", "")]


def test_devices(bundle):
    def edit(spec):
        spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                     "fileMode": 0o600, "uid": 1, "gid": 2}]
    devs = of(build(bundle, edit), Rec.DEVICE)
    assert (stat.S_IFCHR | 0o600, 10, 229, 1, 2, "/dev/fuse") in devs
    assert len(devs) == 7


def test_symlinks_ptmx_only_with_devpts(bundle):
    def edit(spec):
        spec["mounts"].append({"destination": "/dev/pts", "type": "devpts", "source": "devpts"})
    assert ("pts/ptmx", "/dev/ptmx") not in of(build(bundle), Rec.SYMLINK)
    assert ("pts/ptmx", "/dev/ptmx") in of(build(bundle, edit), Rec.SYMLINK)


def test_sysctls(bundle):
    def edit(spec):
        spec["linux"]["namespaces"] += [{"type": "network"}, {"type": "ipc"}]
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "4096",
                                   "fs.mqueue.msg_max": "20"}
    assert of(build(bundle, edit), Rec.SYSCTL) == [
        ("net/ipv4/ip_forward", "1"), ("kernel/shmmax", "4096"), ("fs/mqueue/msg_max", "20")]


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward", "kernel.pid_max", "vm.swappiness",
                                 "net..x", "net.a/b"])
def test_sysctl_outside_own_namespace(bundle, key):
    with pytest.raises(InvalidArgument, match=f"^config.json: linux.sysctl.{key}: "):
        build(bundle, _set(["linux", "sysctl"], {key: "1"}))


def test_barrier(bundle):
    spec = copy.deepcopy(BASE)
    recs = plan_records(spec, bundle, host=HOST, barrier="/run/x/exec.fifo")
    assert of(recs, Rec.BARRIER) == [("/run/x/exec.fifo",)]


INVALID = [
    (_set(["linux", "namespaces"], [{"type": "mount"}, {"type": "nope"}]),
     "linux.namespaces[1].type"),
    (_set(["linux", "namespaces"], [{"type": "mount"}, {"type": "mount"}]),
     "linux.namespaces[1].type"),
    # no mount namespace of its own: the base spec's mounts would change ours
    (_set(["linux", "namespaces"], [{"type": "pid"}]), "mounts"),
    (_set(["linux", "namespaces"], [{"type": "mount"}, {"type": "network", "path": "rel"}]),
     "linux.namespaces[1].path"),
    (_set(["root", "path"], "missing"), "root.path"),
    (_set(["root", "path"], ""), "root.path"),
    (_set(["process", "args"], []), "process.args"),
    (_set(["process", "args"], [""]), "process.args[0]"),
    (_set(["process", "env"], ["NOEQUALS"]), "process.env[0]"),
    (_set(["process", "cwd"], "relative"), "process.cwd"),
    (_set(["process", "user"], {"uid": -1}), "process.user.uid"),
    (_set(["process", "user"], {"additionalGids": ["x"]}), "process.user.additionalGids[0]"),
    (_set(["process", "oomScoreAdj"], 5000), "process.oomScoreAdj"),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 5, "hard": 1}]),
     "process.rlimits[0]"),
    (_set(["process", "capabilities"], {"effective": ["CAP_NOPE"]}),
     "process.capabilities.effective[0]"),
    (_set(["hostname"], "h"), "hostname"),
    (_set(["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000, "size": 10}]),
     "linux.uidMappings[0]"),
    (_set(["mounts"], [{"destination": "rel", "type": "tmpfs"}]), "mounts[0].destination"),
    (_set(["mounts"], [{"destination": "/a/../b", "type": "tmpfs"}]), "mounts[0].destination"),
    (_set(["mounts"], [{"destination": "/a", "type": "ext4", "source": "/dev/sda"}]),
     "mounts[0].type"),
    (_set(["mounts"], [{"destination": "/a", "type": "bind", "source": "nope"}]),
     "mounts[0].source"),
    (_set(["linux", "rootfsPropagation"], "sideways"), "linux.rootfsPropagation"),
    (_set(["linux", "maskedPaths"], ["proc/kcore"]), "linux.maskedPaths[0]"),
    (_set(["linux", "devices"], [{"path": "/dev/x", "type": "z"}]), "linux.devices[0].type"),
]


@pytest.mark.parametrize("edit,field", INVALID, ids=[f for _, f in INVALID])
def test_invalid_names_field(bundle, edit, field):
    with pytest.raises(InvalidArgument) as exc:
        build(bundle, edit)
    assert str(exc.value).startswith(f"config.json: {field}: ")


def test_symlink_escape_names_field(bundle):
    (bundle / "rootfs" / "up").symlink_to("../../..")
    with pytest.raises(InvalidArgument, match=r"^config.json: mounts\[0\].destination: .*outside"):
        build(bundle, _set(["mounts"], [{"destination": "/up/x", "type": "tmpfs"}]))


def test_absolute_symlink_is_inside(bundle):
    (bundle / "rootfs" / "abs").symlink_to("/etc")
    build(bundle, _set(["mounts"], [{"destination": "/abs/x", "type": "tmpfs"}]))


@pytest.mark.parametrize("field,value", [
    ("process.terminal", True), ("linux.intelRdt", {"closID": "x"})])
def test_unimplemented_sections_fail_loudly(bundle, field, value):
    with pytest.raises(Unimplemented, match=field.replace(".", r"\.")):
        build(bundle, _set(field.split("."), value))


def test_create_hooks_add_a_pause_point(bundle):
    assert of(build(bundle), Rec.HOOK_PAUSE) == []
    for kind in ("prestart", "createRuntime", "createContainer"):
        recs = build(bundle, _set(["hooks"], {kind: [{"path": "/bin/true"}]}))
        kinds = [x.type for x in recs]
        assert kinds.count(Rec.HOOK_PAUSE) == 1
    recs = build(bundle, _set(["hooks"], {"poststart": [{"path": "/bin/true"}]}))
    assert of(recs, Rec.HOOK_PAUSE) == []


@pytest.mark.parametrize("hooks,field", [
    ({"poststart": [{"path": "rel"}]}, "hooks.poststart[0].path"),
    ({"poststop": [{"path": "/x", "timeout": 0}]}, "hooks.poststop[0].timeout"),
    ({"sometime": []}, "hooks.sometime"),
    ({"createRuntime": [{"path": "/x", "args": "notalist"}]}, "hooks.createRuntime[0].args"),
])
def test_invalid_hooks(bundle, hooks, field):
    with pytest.raises(InvalidArgument, match=f"^config.json: {field.replace('[', '.').replace(']', '.')}"):
        build(bundle, _set(["hooks"], hooks))


def test_encode_decode_roundtrip(bundle):
    recs = build(bundle, _set(["process", "user"], {"uid": 1, "gid": 2, "additionalGids": [3]}))
    buf = build_plan(copy.deepcopy(BASE), bundle, host=HOST)
    assert buf.startswith(r.MAGIC)
    assert r.decode(r.encode(recs)) == recs


def test_encode_rejects_nul_in_string():
    with pytest.raises(ValueError):
        r.encode([r.rec(Rec.ARG, "a\0b")])


def test_mount_options_parse():
    o = m.parse_mount_options(["ro", "rw", "nodev", "rbind", "rslave", "size=1m", "exec"])
    assert (o.flags, o.propagation, o.data) == (m.MS_NODEV | m.MS_BIND | m.MS_REC,
                                                m.MS_SLAVE | m.MS_REC, "size=1m")


CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "ro"]}


def _cg_plan(views):
    from crio_native.linux.cgroups import CgroupPlan
    return CgroupPlan(views=[(n, Path(d), v) for n, d, v in views])


def test_cgroup_mount_hybrid(bundle):
    plan = _cg_plan([("unified", "/cg/unified/c", 2), ("cpu,cpuacct", "/cg/cpu,cpuacct/c", 1),
                     ("memory", "/cg/memory/j/c", 1)])
    spec = copy.deepcopy(BASE)
    spec["mounts"] = [CGROUP_MOUNT]
    recs = plan_records(spec, bundle, host=HOST, cgroups=plan)
    ro = m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV | m.MS_RDONLY
    assert of(recs, Rec.MOUNT) == [
        (ro & ~m.MS_RDONLY, 0, r.MOUNT_FS, "tmpfs", "/sys/fs/cgroup", "tmpfs", "mode=755"),
        (ro | m.MS_BIND | m.MS_REC, 0, r.MOUNT_BIND, "/cg/cpu,cpuacct/c",
         "/sys/fs/cgroup/cpu,cpuacct", "", ""),
        (ro | m.MS_BIND | m.MS_REC, 0, r.MOUNT_BIND, "/cg/memory/j/c", "/sys/fs/cgroup/memory",
         "", "")]
    links = of(recs, Rec.SYMLINK)
    assert ("cpu,cpuacct", "/sys/fs/cgroup/cpu") in links
    assert ("cpu,cpuacct", "/sys/fs/cgroup/cpuacct") in links


CG2 = (m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV | m.MS_RDONLY, 0, r.MOUNT_FS, "cgroup2",
       "/sys/fs/cgroup", "cgroup2", "")


@pytest.mark.parametrize("namespaces,expected", [
    (["cgroup"], CG2),
    ([], CG2),
    (["user", "cgroup"], CG2),
    (["user"], (m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV | m.MS_RDONLY | m.MS_BIND | m.MS_REC, 0,
                r.MOUNT_BIND, "/sys/fs/cgroup/c", "/sys/fs/cgroup", "", "")),
])
def test_cgroup_mount_pure_v2(bundle, namespaces, expected):
    spec = copy.deepcopy(BASE)
    spec["mounts"] = [CGROUP_MOUNT]
    spec["linux"]["namespaces"] += [{"type": t} for t in namespaces]
    if "user" in namespaces:
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    recs = plan_records(spec, bundle, host=HOST,
                        cgroups=_cg_plan([("cgroup", "/sys/fs/cgroup/c", 2)]))
    assert [f for f in of(recs, Rec.MOUNT) if f[4] == "/sys/fs/cgroup"] == [expected]


def test_cgroup_mount_without_groups_is_refused(bundle):
    with pytest.raises(InvalidArgument, match=r"mounts\[0\]: a cgroup mount"):
        build(bundle, _set(["mounts"], [CGROUP_MOUNT]))


def test_rro_marks_the_mount_for_mount_setattr():
    from crio_native.linux.mounts import MS_RDONLY, parse_mount_options

    opts = parse_mount_options(["rbind", "rro", "nosuid"])
    assert opts.recursive_ro and opts.flags & MS_RDONLY and opts.data == ""
    assert not parse_mount_options(["rbind", "ro"]).recursive_ro


@pytest.mark.parametrize("personality,persona", [
    ({"domain": "LINUX"}, 0x0),
    ({"domain": "LINUX32"}, 0x8),
    ({"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}, 0x0040008),
])
def test_personality_record(bundle, personality, persona):
    recs = build(bundle, _set(["linux", "personality"], personality))
    assert of(recs, Rec.PERSONALITY) == [(persona,)]
    kinds = [x.type for x in recs]
    # before the user switch and capabilities (seccomp may allow only some values)
    assert kinds.index(Rec.PERSONALITY) < kinds.index(Rec.USER)


@pytest.mark.parametrize("personality,field", [
    ({"domain": "LINUX64"}, "linux.personality.domain"),
    ({"domain": "LINUX", "flags": ["FAST"]}, "linux.personality.flags[0]"),
    ("LINUX32", "linux.personality"),
])
def test_bad_personality_names_field(bundle, personality, field):
    with pytest.raises(InvalidArgument, match=f"^config.json: {re.escape(field)}: "):
        build(bundle, _set(["linux", "personality"], personality))


def test_start_container_hooks_are_planned(bundle):
    hooks = [{"path": "/bin/sh", "args": ["sh", "-c", "true"], "env": ["A=1"], "timeout": 5},
             {"path": "/bin/true"}]
    spec = copy.deepcopy(BASE)
    spec["hooks"] = {"startContainer": hooks}
    recs = plan_records(spec, bundle, host=HOST, start_result="/run/x/start.result")
    assert of(recs, Rec.START_RESULT) == [("/run/x/start.result",)]
    assert of(recs, Rec.START_HOOK) == [(5, 3, "/bin/sh", b"sh\0-c\0true\0A=1\0"),
                                        (0, 1, "/bin/true", b"/bin/true\0")]
    # round-trips through the wire format the C side validates
    assert of(r.decode(r.encode(recs)), Rec.START_HOOK) == of(recs, Rec.START_HOOK)
    # no pause point: they run after start, not while create waits
    assert of(recs, Rec.HOOK_PAUSE) == []


def test_console_replaces_controlling_tty(bundle):
    spec = copy.deepcopy(BASE)
    spec["process"]["terminal"] = True
    recs = plan_records(spec, bundle, host=HOST, console=True)
    assert of(recs, Rec.CONSOLE) == [()]
    assert of(recs, Rec.CONTROLLING_TTY) == []
