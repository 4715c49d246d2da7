"""linux.seccomp: profile choice, the default profile's conditional rules,
Localhost files and their errors, and that the result compiles."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec import capabilities, seccomp, seccomp_default
from crio_native.spec.inputs import new_build
from tests.unit.test_spec_support import base_config, config_with, make_inputs

SP = api_pb2.SecurityProfile
SC = "linux__security_context"
CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "seccomp" / "crio-native-default.json"
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_KILL"]


def run(cfg=None, caps=DEFAULT_CAPS, **kw):
    """The seccomp section for `cfg` (RuntimeDefault when None)."""
    cfg = profile(SP.RuntimeDefault) if cfg is None else cfg
    b = new_build()
    b.process["capabilities"] = {"bounding": list(caps)}
    seccomp.with_seccomp(b, make_inputs(cfg, **kw))
    return b.linux.get("seccomp")


def profile(kind, ref=""):
    return config_with(**{f"{SC}__seccomp": SP(profile_type=kind, localhost_ref=ref)})


def allowed(section) -> set[str]:
    return {n for r in section["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def rules_for(section, name):
    return [r for r in section["syscalls"] if name in r["names"]]


@pytest.mark.parametrize("cfg, confined", [
    (base_config(), False),                                 # unset: unconfined (CRI-O 1.36)
    (profile(SP.RuntimeDefault), True),
    (profile(SP.Unconfined), False),
    (config_with(**{f"{SC}__seccomp_profile_path": "runtime/default"}), True),
    (config_with(**{f"{SC}__seccomp_profile_path": "docker/default"}), True),
    (config_with(**{f"{SC}__seccomp_profile_path": "unconfined"}), False),
    (config_with(**{f"{SC}__privileged": True}), False),
])
def test_profile_choice(cfg, confined):
    assert (run(cfg) is not None) is confined


def test_unset_profile_is_runtime_default_when_configured():
    daemon = Config()
    daemon.runtime.seccomp_use_default_when_empty = True
    assert run(base_config(), daemon=daemon) is not None


def test_default_profile_shape():
    section = run()
    assert section["defaultAction"] == "SCMP_ACT_ERRNO"
    assert section["defaultErrnoRet"] == 1
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(section)
    assert {"read", "write", "openat", "execve", "exit_group", "futex"} <= names
    assert not {"keyctl", "add_key", "request_key", "unshare", "mount", "kexec_load",
                "io_uring_setup", "init_module", "bpf", "reboot"} & names
    assert all(set(r) <= {"names", "action", "args", "errnoRet"} for r in section["syscalls"])


@pytest.mark.parametrize("machine, arches", [
    ("aarch64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
    ("s390x", ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]),
    ("ppc64le", ["SCMP_ARCH_PPC64LE"]),
])
def test_architectures_follow_the_machine(machine, arches):
    assert run(machine=machine)["architectures"] == arches


@pytest.mark.parametrize("machine, present, absent", [
    ("x86_64", "modify_ldt", "arm_fadvise64_64"),
    ("aarch64", "arm_fadvise64_64", "modify_ldt"),
])
def test_arch_specific_syscalls(machine, present, absent):
    names = allowed(run(machine=machine))
    assert present in names and absent not in names


@pytest.mark.parametrize("cap, syscalls", [
    ("CAP_SYS_ADMIN", ["mount", "unshare", "setns", "umount2", "sethostname"]),
    ("CAP_SYS_PTRACE", ["kcmp", "process_madvise"]),
    ("CAP_SYS_MODULE", ["init_module", "finit_module"]),
    ("CAP_SYS_TIME", ["settimeofday", "clock_settime"]),
    ("CAP_SYS_CHROOT", ["chroot"]),
    ("CAP_SYS_BOOT", ["reboot"]),
    ("CAP_BPF", ["bpf"]),
    ("CAP_PERFMON", ["perf_event_open"]),
    ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
])
def test_capability_conditional_rules(cap, syscalls):
    without = allowed(run())
    with_cap = allowed(run(caps=DEFAULT_CAPS + [cap]))
    for name in syscalls:
        assert name not in without and name in with_cap


def test_clone_without_sys_admin_is_limited_to_no_namespace_flags():
    section = run()
    (clone,) = rules_for(section, "clone")
    assert clone["args"] == [{"index": 0, "value": seccomp_default.CLONE_NAMESPACE_FLAGS,
                              "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = rules_for(section, "clone3")
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)


def test_clone_with_sys_admin_is_unconditional():
    section = run(caps=["CAP_SYS_ADMIN"])
    assert all(not r.get("args") and r["action"] == "SCMP_ACT_ALLOW"
               for r in rules_for(section, "clone") + rules_for(section, "clone3"))


def test_clone_argument_index_on_s390():
    (clone,) = rules_for(run(machine="s390x"), "clone")
    assert clone["args"][0]["index"] == 1


def test_personality_only_harmless_values():
    rules = rules_for(run(), "personality")
    values = sorted(r["args"][0]["value"] for r in rules)
    assert values == sorted(seccomp_default.PERSONALITY_ALLOWED)
    assert all(len(r["args"]) == 1 and r["args"][0]["op"] == "SCMP_CMP_EQ" for r in rules)


def test_default_profile_compiles_with_libseccomp():
    from crio_native.linux.seccomp import compile_filter

    for caps in ([], capabilities.ALL_CAPS):
        section = seccomp.render_template(seccomp_default.template(), caps, "x86_64")
        assert len(compile_filter(section).bpf) > 0


def test_contrib_copy_is_in_sync():
    assert json.loads(CONTRIB.read_text()) == seccomp_default.template()


# ---- Localhost and configured profiles --------------------------------------

OCI_PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.mark.parametrize("ref_prefix", ["", "localhost/"])
def test_localhost_profile(tmp_path, ref_prefix):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(OCI_PROFILE))
    section = run(profile(SP.Localhost, ref_prefix + str(path)))
    assert section == {"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_legacy_localhost_path(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(OCI_PROFILE))
    cfg = config_with(**{f"{SC}__seccomp_profile_path": f"localhost/{path}"})
    assert run(cfg)["defaultAction"] == "SCMP_ACT_ALLOW"


def test_localhost_template_is_rendered(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(seccomp_default.template()))
    assert run(profile(SP.Localhost, str(path))) == run()


@pytest.mark.parametrize("content, reason", [
    (None, "no such profile"),
    ("{not json", "not valid JSON"),
    ("[]", "not a JSON object"),
    (json.dumps({"defaultAction": "SCMP_ACT_MAYBE"}), "defaultAction"),
    (json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": []}]}),
     r"syscalls\[0\]\.names"),
    (json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                 "syscalls": [{"names": ["read"], "action": "go"}]}), r"syscalls\[0\]\.action"),
])
def test_localhost_errors_name_path_and_field(tmp_path, content, reason):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    pattern = rf"config\.linux\.security_context\.seccomp\.localhost_ref: .*{reason}"
    with pytest.raises(InvalidArgument, match=pattern) as err:
        run(profile(SP.Localhost, str(path)))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("cfg, field", [
    (profile(SP.Localhost, "relative.json"), r"seccomp\.localhost_ref"),
    (profile(SP.Localhost, ""), r"seccomp\.localhost_ref"),
    (config_with(**{f"{SC}__seccomp_profile_path": "bogus"}), "seccomp_profile_path"),
])
def test_bad_references(cfg, field):
    with pytest.raises(InvalidArgument, match=field):
        run(cfg)


def test_configured_default_profile_replaces_ours(tmp_path):
    path = tmp_path / "site.json"
    path.write_text(json.dumps(OCI_PROFILE))
    daemon = Config()
    daemon.runtime.seccomp_profile = str(path)
    assert run(daemon=daemon)["defaultAction"] == "SCMP_ACT_ALLOW"
    daemon.runtime.seccomp_profile = str(tmp_path / "missing.json")
    with pytest.raises(FailedPrecondition, match="runtime.seccomp_profile"):
        run(daemon=daemon)


def test_containers_share_the_default_profiles_syscall_name_strings():
    """Every container keeps its spec (ContainerManager.spec_of): the default
    profile's names are one set of strings for all of them (docs/memory.md),
    in lists of their own, so changing one container's rules changes no other's."""
    a, b = run(), run()
    assert a == b
    names_a, names_b = a["syscalls"][0]["names"], b["syscalls"][0]["names"]
    assert len(names_a) > 100
    assert names_a is not names_b
    assert all(x is y for x, y in zip(names_a, names_b))
    names_a.append("not_a_syscall")
    assert "not_a_syscall" not in run()["syscalls"][0]["names"]
