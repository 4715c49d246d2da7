"""Which seccomp profile a container gets, as CRI-O chooses: a privileged
container's runtime.privileged_seccomp_profile; the seccomp-profile
annotations (pod per container, pod /POD, image plain, /<name>, /POD) only
where the request leaves the container unconfined and the handler allows
them; and the notifier's rewrite of a profile (spec.seccomp.notifying_section)."""
from __future__ import annotations

import json

import pytest

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec import seccomp
from crio_native.spec.inputs import new_build
from tests.unit.test_spec_support import base_config, base_sandbox, config_with, make_inputs

SP = api_pb2.SecurityProfile
SC = "linux__security_context"
KEY = seccomp.PROFILE_ANNOTATION
# A profile no built-in one looks like: everything allowed but one syscall.
MARKED = {"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def daemon(prefixes=(), **runtime) -> Config:
    cfg = Config()
    cfg.runtime.runtimes["builtin"].allowed_annotations = list(prefixes)
    for k, v in runtime.items():
        setattr(cfg.runtime, k, v)
    return cfg


def section(cfg=None, pod_annotations=None, image_annotations=None, prefixes=(KEY,),
            caps=("CAP_CHOWN",), seccomp_artifact=None, **runtime):
    b = new_build()
    b.process["capabilities"] = {"bounding": list(caps)}
    inputs = make_inputs(cfg or base_config(), daemon=daemon(prefixes, **runtime),
                         sandbox=base_sandbox(annotations=dict(pod_annotations or {})),
                         image_annotations=dict(image_annotations or {}),
                         seccomp_artifact=seccomp_artifact)
    seccomp.with_seccomp(b, inputs)
    return b.linux.get("seccomp")


def is_marked(sec) -> bool:
    return sec is not None and sec["defaultAction"] == "SCMP_ACT_ALLOW" \
        and sec["syscalls"] == MARKED["syscalls"]


def unconfined():
    return config_with(**{f"{SC}__seccomp": SP(profile_type=SP.Unconfined)})


def runtime_default():
    return config_with(**{f"{SC}__seccomp": SP(profile_type=SP.RuntimeDefault)})


PRIV = config_with(**{f"{SC}__privileged": True,
                      f"{SC}__seccomp": SP(profile_type=SP.RuntimeDefault)})


# ---- privileged_seccomp_profile ----------------------------------------------------

def test_privileged_runs_unconfined_without_the_key():
    assert section(PRIV) is None


def test_privileged_gets_the_configured_profile(tmp_path):
    path = tmp_path / "priv.json"
    path.write_text(json.dumps(MARKED))
    assert is_marked(section(PRIV, privileged_seccomp_profile=str(path)))


def test_privileged_profile_wins_over_annotations(tmp_path):
    path = tmp_path / "priv.json"
    path.write_text(json.dumps(MARKED))
    other = json.dumps({"defaultAction": "SCMP_ACT_LOG"})
    sec = section(PRIV, pod_annotations={f"{KEY}/app": other},
                  privileged_seccomp_profile=str(path))
    assert is_marked(sec)


def test_privileged_profile_only_for_privileged(tmp_path):
    path = tmp_path / "priv.json"
    path.write_text(json.dumps(MARKED))
    assert section(unconfined(), privileged_seccomp_profile=str(path)) is None
    assert section(runtime_default(), privileged_seccomp_profile=str(path))["defaultAction"] \
        == "SCMP_ACT_ERRNO"


def test_privileged_profile_missing_is_failed_precondition(tmp_path):
    with pytest.raises(FailedPrecondition, match="runtime.privileged_seccomp_profile: no such"):
        section(PRIV, privileged_seccomp_profile=str(tmp_path / "nope.json"))


def test_privileged_profile_must_be_absolute():
    cfg = Config()
    cfg.runtime.privileged_seccomp_profile = "rel.json"
    with pytest.raises(Exception, match="runtime.privileged_seccomp_profile"):
        cfg.validate()


# ---- the seccomp-profile annotations ------------------------------------------------

@pytest.mark.parametrize("where, key", [
    ("pod", f"{KEY}/app"), ("pod", f"{KEY}/POD"),
    ("image", KEY), ("image", f"{KEY}/app"), ("image", f"{KEY}/POD"),
])
def test_annotation_profile_used_when_unconfined(where, key):
    anns = {key: json.dumps(MARKED)}
    kw = {"pod_annotations": anns} if where == "pod" else {"image_annotations": anns}
    assert is_marked(section(unconfined(), **kw))
    assert is_marked(section(base_config(), **kw))      # no profile at all: also unconfined


def test_annotation_ignored_when_the_request_names_a_profile():
    anns = {f"{KEY}/app": json.dumps(MARKED)}
    sec = section(runtime_default(), pod_annotations=anns, image_annotations={KEY: anns[f"{KEY}/app"]})
    assert sec["defaultAction"] == "SCMP_ACT_ERRNO"


def test_annotation_of_another_container_ignored():
    assert section(unconfined(), pod_annotations={f"{KEY}/other": json.dumps(MARKED)}) is None
    assert section(unconfined(), image_annotations={f"{KEY}/other": json.dumps(MARKED)}) is None


@pytest.mark.parametrize("pod, image, wins", [
    ({f"{KEY}/app": "A", f"{KEY}/POD": "B"}, {KEY: "C"}, "A"),
    ({f"{KEY}/POD": "B"}, {KEY: "C", f"{KEY}/app": "D"}, "B"),
    ({}, {KEY: "C", f"{KEY}/app": "D", f"{KEY}/POD": "E"}, "C"),
    ({}, {f"{KEY}/app": "D", f"{KEY}/POD": "E"}, "D"),
])
def test_annotation_precedence(pod, image, wins):
    """CRI-O's order: pod's container, pod's POD, image plain, image
    container, image POD."""
    def profile(tag):
        return json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_ERRNO",
                                         "errnoRet": ord(tag)}]})
    sec = section(unconfined(), pod_annotations={k: profile(v) for k, v in pod.items()},
                  image_annotations={k: profile(v) for k, v in image.items()})
    assert sec["syscalls"][0]["errnoRet"] == ord(wins)


@pytest.mark.parametrize("where", ["pod", "image"])
def test_annotation_needs_allowed_annotations(where, caplog):
    anns = {f"{KEY}/app": json.dumps(MARKED)}
    kw = {"pod_annotations": anns} if where == "pod" else {"image_annotations": anns}
    with caplog.at_level("INFO"):
        assert section(unconfined(), prefixes=(), **kw) is None
    assert "allowed_annotations" in caplog.text


def test_bad_pod_annotation_is_invalid_argument_naming_it():
    with pytest.raises(InvalidArgument, match=f"pod annotation {KEY}/app: not a seccomp"):
        section(unconfined(), pod_annotations={f"{KEY}/app": "{nope"})
    with pytest.raises(InvalidArgument, match="defaultAction"):
        section(unconfined(), pod_annotations={f"{KEY}/app": '{"defaultAction": "X"}'})


def test_bad_image_annotation_is_failed_precondition():
    with pytest.raises(FailedPrecondition, match=f"annotation {KEY}: not a seccomp"):
        section(unconfined(), image_annotations={KEY: "{nope"})


def test_artifact_reference_without_a_fetcher_is_refused_with_a_reason():
    with pytest.raises(InvalidArgument, match="OCI artifact references"):
        section(unconfined(), pod_annotations={f"{KEY}/POD": "quay.io/org/profile:v1"})


def test_artifact_reference_is_fetched():
    """CRI-O's form: the value names an OCI artifact holding the profile."""
    asked = []

    def fetch(ref: str) -> bytes:
        asked.append(ref)
        return json.dumps(MARKED).encode()
    sec = section(unconfined(), pod_annotations={f"{KEY}/POD": " quay.io/org/profile:v1"},
                  seccomp_artifact=fetch)
    assert is_marked(sec) and asked == ["quay.io/org/profile:v1"]


def test_artifact_fetch_failure_names_the_annotation():
    def fetch(ref: str) -> bytes:
        raise FailedPrecondition(f"pulling seccomp profile artifact {ref}: not found")
    with pytest.raises(FailedPrecondition, match=f"annotation {KEY}: pulling seccomp profile "
                                                 "artifact quay.io/x/y:1: not found"):
        section(unconfined(), image_annotations={KEY: "quay.io/x/y:1"}, seccomp_artifact=fetch)
    with pytest.raises(InvalidArgument, match="artifact quay.io/x/y:1: not a seccomp profile"):
        section(unconfined(), pod_annotations={f"{KEY}/app": "quay.io/x/y:1"},
                seccomp_artifact=lambda ref: b"[]")


def test_annotation_template_rendered_for_caps():
    tmpl = {"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    sec = section(unconfined(), pod_annotations={f"{KEY}/app": json.dumps(tmpl)})
    assert [r["names"] for r in sec["syscalls"]] == [["read"]]


# ---- the notifier ----------------------------------------------------------------------

NOTIFIER = "io.kubernetes.cri-o.seccompNotifierAction"


@pytest.mark.parametrize("key", seccomp.NOTIFIER_ANNOTATIONS)
def test_notifier_action_gated(key):
    pod = base_sandbox(annotations={key: "stop"})
    assert seccomp.notifier_action(make_inputs(sandbox=pod, daemon=daemon([key]))) == "stop"
    assert seccomp.notifier_action(make_inputs(sandbox=pod, daemon=daemon([]))) is None


def test_notifying_section_of_the_default_profile():
    base = section(runtime_default())
    known = ["read", "write", "sendmsg", "vmsplice", "swapoff", "clone", "clone3", "socket"]
    out, answers = seccomp.notifying_section(base, "/run/x/sock", known)
    assert out["listenerPath"] == "/run/x/sock"
    assert out["defaultAction"] == base["defaultAction"]          # never the default
    notify = [r for r in out["syscalls"] if r["action"] == "SCMP_ACT_NOTIFY"]
    # the unnamed ones, once each; never write/sendmsg; named ones keep their rules
    assert {"vmsplice", "swapoff"} == {n for r in notify if not r.get("args") for n in r["names"]}
    # socket's EINVAL rule (NETLINK_AUDIT) notifies, and is answered EINVAL
    assert any(r["names"] == ["socket"] and r.get("args") for r in notify)
    assert answers["socket"] == 22 and answers["vmsplice"] == 1
    # clone3's ENOSYS says "fall back": it stays
    assert any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO"
               and r["errnoRet"] == 38 for r in out["syscalls"])
    assert all("errnoRet" not in r for r in notify)


def test_notifying_section_keeps_write_refused_but_not_notified():
    sec = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["write", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]}
    out, answers = seccomp.notifying_section(sec, "/s", ["write", "mkdir"])
    assert out["syscalls"] == [
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    assert answers == {"mkdir": 30}


def test_notifying_default_profile_compiles():
    from crio_native.container.seccomp_notifier import native_syscall_names
    from crio_native.linux.seccomp import FLAG_NEW_LISTENER, compile_filter

    out, answers = seccomp.notifying_section(section(runtime_default()), "/run/x/s",
                                             list(native_syscall_names()))
    filt = compile_filter(out)
    assert filt.listener_path == "/run/x/s" and filt.flags & FLAG_NEW_LISTENER
    assert answers["vmsplice"] == 1 and "read" not in answers


def test_seccomp_profile_keys_reload_at_once(tmp_path):
    from crio_native.config import load_config
    from crio_native.config.reload import apply_reload, plan_reload

    conf = tmp_path / "crio-native.conf"
    conf.write_text("")
    (tmp_path / "conf.d").mkdir()
    running = load_config(str(conf), str(tmp_path / "conf.d"), None)
    conf.write_text('[runtime]\nprivileged_seccomp_profile = "/etc/p.json"\n'
                    'seccomp_profile = "/etc/d.json"\n')
    wanted = load_config(str(conf), str(tmp_path / "conf.d"), None)
    plan = plan_reload(running.config, wanted.config)
    assert [c.key for c in plan.applied] == ["runtime.privileged_seccomp_profile",
                                             "runtime.seccomp_profile"]
    apply_reload(running, wanted, plan)
    assert running.config.runtime.privileged_seccomp_profile == "/etc/p.json"
