"""The recorder's learn-mode section and recorded profile, and the audit
stream's section rewrite and rate limit (no root)."""
from __future__ import annotations

import logging

import pytest

from crio_native.container import seccomp_audit, seccomp_recorder
from crio_native.container.seccomp_notifier import CONTINUE, native_syscall_names
from crio_native.linux import seccomp as linux_seccomp
from crio_native.metrics import hooks as metrics_hooks
from crio_native.metrics.collectors import DaemonMetrics
from crio_native.spec.seccomp import notifying_section

NAMES = ["read", "write", "sendmsg", "execve", "vmsplice", "unshare"]


def test_learning_section_notifies_all_but_the_runtime_window():
    section = seccomp_recorder.learning_section("/run/x/sock", NAMES, "x86_64")
    assert section["defaultAction"] == "SCMP_ACT_ALLOW"
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    (rule,) = section["syscalls"]
    assert rule["action"] == "SCMP_ACT_NOTIFY"
    assert rule["names"] == ["execve", "read", "unshare", "vmsplice"]
    assert section["listenerPath"] == "/run/x/sock"


def test_learning_section_over_every_native_name_compiles_with_a_listener():
    names = list(native_syscall_names())
    assert "execve" in names and len(names) > 250
    filt = linux_seccomp.compile_filter(
        seccomp_recorder.learning_section("/run/x/sock", names, "x86_64"))
    assert filt.listener_path == "/run/x/sock"
    assert filt.flags & linux_seccomp.FLAG_NEW_LISTENER


def test_recorded_profile_is_sorted_errno_by_default_and_keeps_the_window():
    profile = seccomp_recorder.recorded_profile({"read", "execve", "syscall#999"}, "aarch64")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert profile["syscalls"] == [{"names": ["execve", "read", "sendmsg", "write"],
                                    "action": "SCMP_ACT_ALLOW"}]
    linux_seccomp.compile_filter(seccomp_recorder.recorded_profile({"read"}))


@pytest.mark.parametrize("default", ["SCMP_ACT_ERRNO", "SCMP_ACT_LOG"])
def test_audit_section_notifies_refused_and_logged_calls(default):
    section = {"defaultAction": default,
               "syscalls": [{"names": ["read", "write", "execve"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["unshare"], "action": "SCMP_ACT_LOG"},
                            {"names": ["vmsplice"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 13}]}
    notifying, answers = notifying_section(section, "/run/x/sock", NAMES)
    out = seccomp_audit.with_logged(notifying, answers, NAMES, CONTINUE)
    actions = {n: r["action"] for r in out["syscalls"] for n in r["names"]}
    assert actions["read"] == "SCMP_ACT_ALLOW" and actions["unshare"] == "SCMP_ACT_NOTIFY"
    assert actions["vmsplice"] == "SCMP_ACT_NOTIFY"
    assert answers["vmsplice"] == 13 and answers["unshare"] == CONTINUE
    # the runtime's own window is never notified, whatever the default
    assert actions.get("sendmsg") != "SCMP_ACT_NOTIFY" and "sendmsg" not in answers
    # the rest of this architecture's names follow the default through the agent
    assert actions["unshare"] == "SCMP_ACT_NOTIFY"
    linux_seccomp.compile_filter(out)
    assert out["defaultAction"] == default


def test_audit_counts_every_call_and_rate_limits_lines(caplog, monkeypatch):
    metrics = DaemonMetrics()
    monkeypatch.setattr(metrics_hooks, "current", metrics)
    now = [100.0]
    auditor = seccomp_audit.Auditor("c" * 64, "app", "web", "ns", "img@sha256:1", "sha256:2",
                                    burst=3, rate=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=seccomp_audit.__name__):
        for _ in range(50):
            auditor.observe("vmsplice")
        assert len(caplog.records) == 3
        now[0] += 2.0                       # two tokens back
        for _ in range(5):
            auditor.observe("vmsplice")
        assert len(caplog.records) == 5
        assert caplog.records[3].fields["suppressed_since_last"] == 47
        auditor.close()
    assert "3 more lines" in caplog.records[-1].getMessage()
    value = metrics.registry.get_sample_value(
        "container_runtime_crio_native_seccomp_denials_total",
        {"syscall": "vmsplice", "container": "app"})
    assert value == 55


def test_auditor_from_spec_reads_the_attribution():
    spec = {"annotations": {"io.kubernetes.cri.container-name": "app",
                            "io.kubernetes.cri.sandbox-name": "web",
                            "io.kubernetes.cri.sandbox-namespace": "ns",
                            "io.kubernetes.cri.image-name": "r/i@sha256:1"}}
    a = seccomp_audit.auditor_from_spec("id", spec, "sha256:2")
    assert (a.container, a.pod, a.namespace, a.image, a.image_id) == \
        ("app", "web", "ns", "r/i@sha256:1", "sha256:2")


def test_answers_survive_the_spec_annotation():
    answers = {"vmsplice": 13, "unshare": CONTINUE, "a": 1, "b": 1, "c": 1}
    text = seccomp_audit.encode_answers(answers)
    rest, default = seccomp_audit.decode_answers(text, 99)
    assert default == 1 and rest == {"unshare": CONTINUE, "vmsplice": 13}
    assert seccomp_audit.decode_answers("not json", 7) == ({}, 7)


def test_relisten_of_an_audited_container_keeps_answers_and_attribution(tmp_path):
    from crio_native.container import seccomp_notifier as sn
    notifier = sn.SeccompNotifier(tmp_path, lambda cid, msg: None)
    cid = "d" * 64
    spec = {"annotations": {"io.kubernetes.cri.container-name": "app",
                            seccomp_audit.ANSWERS_ANNOTATION:
                                seccomp_audit.encode_answers({"a": 1, "b": 1, "unshare": CONTINUE})},
            "linux": {"seccomp": {"listenerPath": notifier.path_for(cid),
                                  "listenerMetadata": sn.METADATA_PREFIX + sn.AUDIT_ACTION}}}
    try:
        sn.relisten(notifier, cid, spec)
        watch = notifier._watches[cid]
        assert watch.quiet and watch.observe is not None and not watch.stop
        assert watch.answers == {"unshare": CONTINUE} and watch.default_errno == 1
    finally:
        notifier.close()


def test_filters_differing_only_in_their_agent_compile_once(monkeypatch):
    calls = []
    real = linux_seccomp._compile_filter
    monkeypatch.setattr(linux_seccomp, "_compile_filter",
                        lambda section: calls.append(1) or real(section))
    sections = [seccomp_recorder.learning_section(f"/run/x/unique-{i}", NAMES, "x86_64")
                for i in range(3)]
    sections[2]["listenerMetadata"] = "m"
    filters = [linux_seccomp.compile_filter(s) for s in sections]
    assert len(calls) == 1
    assert [f.listener_path for f in filters] == [f"/run/x/unique-{i}" for i in range(3)]
    assert filters[2].listener_metadata == "m" and filters[0].bpf == filters[2].bpf
