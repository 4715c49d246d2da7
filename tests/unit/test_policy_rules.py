"""Policy rules: loading and compiling (parse, name check, type probe), the
errors that name file and rule, evaluation by the gate (deny, audit, fail
closed), the counter, and the shipped starter set against specs built by the
real spec builder (each rule fires on a spec that breaks it, never on a plain
one)."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import ConfigError, FailedPrecondition
from crio_native.metrics import hooks
from crio_native.metrics.collectors import DaemonMetrics
from crio_native.policy import AUDIT, DENY, PolicyGate, load_rules, pod_input
from crio_native.spec import build_container_spec
from tests.unit.test_spec_support import base_sandbox, config_with, make_inputs

STARTER = Path(__file__).resolve().parents[2] / "contrib" / "policy" / "hardened.yaml"
SC = "linux__security_context__"
RUNTIME_DEFAULT, UNCONFINED = 0, 1


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def rule_yaml(name: str = "r", expression: str = "true", action: str = "deny",
              message: str = "m") -> str:
    return (f"- name: {name}\n  action: {action}\n  message: {message}\n"
            f"  expression: '{expression}'\n")


# ---- loading -------------------------------------------------------------------------

def test_rules_load_in_file_order_with_their_fields(tmp_path):
    a = write(tmp_path, "a.yaml", rule_yaml("one", "true", "deny", "nope") +
              rule_yaml("two", "false", "audit", "look"))
    b = write(tmp_path, "b.yaml", rule_yaml("three"))
    rules = load_rules([str(tmp_path / "*.yaml")])
    assert [(r.name, r.action, r.message, r.source) for r in rules] == [
        ("one", DENY, "nope", a), ("two", AUDIT, "look", a), ("three", DENY, "m", b)]


def test_message_defaults_to_the_name_and_an_empty_file_has_no_rules(tmp_path):
    write(tmp_path, "a.yaml", "- name: quiet\n  action: audit\n  expression: 'true'\n")
    write(tmp_path, "b.yaml", "")
    rules = load_rules([str(tmp_path / "*.yaml")])
    assert [(r.name, r.message) for r in rules] == [("quiet", "quiet")]


def test_a_glob_matching_nothing_loads_nothing_but_a_missing_plain_file_is_an_error(tmp_path):
    assert load_rules([str(tmp_path / "*.yaml")]) == []
    with pytest.raises(ConfigError) as e:
        load_rules([str(tmp_path / "absent.yaml")])
    assert "absent.yaml" in str(e.value) and "no such file" in str(e.value)


BAD_RULES = [
    ("parse", rule_yaml("broken", "spec.process &&& true"), "does not parse"),
    ("unknown name", rule_yaml("stray", "specs.process.terminal"), "unknown name 'specs'"),
    ("unknown function", rule_yaml("fn", "lower(pod.name) == \"a\""), "unknown function lower"),
    ("unknown method", rule_yaml("meth", "pod.name.lower() == \"a\""), "unknown method .lower"),
    ("macro variable outside", rule_yaml("scope", "spec.mounts.exists(m, true) && m.type == \"x\""),
     "unknown name 'm'"),
    ("type error", rule_yaml("types", "1 + \"a\" == 2"), "does not type-check"),
    ("string vs int", rule_yaml("cmp", "spec.process.user.uid == \"0\""), "does not type-check"),
    ("not a boolean", rule_yaml("value", "spec.hostname"), "not a boolean"),
    ("bad action", rule_yaml("act", action="block"), "action: must be deny or audit"),
    ("unknown key", "- name: extra\n  action: deny\n  expression: 'true'\n  when: x\n",
     "unknown keys when"),
    ("no expression", "- name: empty\n  action: deny\n", "expression: must be a CEL string"),
]


@pytest.mark.parametrize("text,reason", [b[1:] for b in BAD_RULES], ids=[b[0] for b in BAD_RULES])
def test_a_rule_that_does_not_compile_names_file_and_rule(tmp_path, text, reason):
    path = write(tmp_path, "bad.yaml", rule_yaml("fine") + text)
    with pytest.raises(ConfigError) as e:
        load_rules([path])
    message = str(e.value)
    assert message.startswith(f"{path}: policy.files: ")
    assert reason in message
    bad_name = text.split("name: ", 1)[1].split("\n", 1)[0]
    assert f"rule {bad_name!r}" in message


@pytest.mark.parametrize("text,reason", [
    ("- [unclosed\n", "not valid YAML"),
    ("name: x\n", "must be a YAML list of rules"),
    ("- just a string\n", "rule 0: must be a mapping"),
    ("- name: ''\n  action: deny\n  expression: 'true'\n", "rule 0: name: must be a non-empty"),
])
def test_a_file_that_is_not_a_list_of_rules_is_named(tmp_path, text, reason):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError) as e:
        load_rules([path])
    assert str(e.value).startswith(path) and reason in str(e.value)


def test_rule_names_are_unique_across_files(tmp_path):
    a = write(tmp_path, "a.yaml", rule_yaml("same"))
    b = write(tmp_path, "b.yaml", rule_yaml("same"))
    with pytest.raises(ConfigError) as e:
        load_rules([a, b])
    assert str(e.value).startswith(b) and f"already used in {a}" in str(e.value)


def test_a_rule_reading_a_field_the_sample_lacks_still_compiles(tmp_path):
    # a missing key is data, not a type error: has() guards it at run time
    path = write(tmp_path, "a.yaml", rule_yaml("deep", "spec.linux.intelRdt.closID == \"x\""))
    assert [r.name for r in load_rules([path])] == ["deep"]


def test_policy_files_must_be_absolute():
    config = Config()
    config.policy.files = ["policy/*.yaml"]
    with pytest.raises(ConfigError, match=r"policy.files\[0\]: must be an absolute path"):
        config.validate()


# ---- the gate ------------------------------------------------------------------------

def plain_spec(**changes) -> dict:
    return build_container_spec(make_inputs(config_with(
        **{f"{SC}seccomp__profile_type": RUNTIME_DEFAULT, **changes}))).spec


def pod(**changes) -> dict:
    return pod_input(base_sandbox(**changes))


@pytest.fixture
def metrics():
    m = DaemonMetrics()
    hooks.install(m)
    yield m
    hooks.install(None)


def count(m: DaemonMetrics, rule: str, action: str) -> float:
    value = m.registry.get_sample_value(
        "container_runtime_crio_native_policy_decisions_total", {"rule": rule, "action": action})
    return value or 0.0


def test_a_deny_rule_refuses_naming_rule_and_message_and_counts(tmp_path, metrics):
    path = write(tmp_path, "p.yaml", rule_yaml("no-web", "pod.name == \"web\"", "deny",
                                               "web pods are closed"))
    gate = PolicyGate.from_files([path])
    with pytest.raises(FailedPrecondition) as e:
        gate.check(plain_spec(), pod(), "app")
    assert "denied by policy rule 'no-web': web pods are closed" in str(e.value)
    assert "'app'" in str(e.value) and "default/web" in str(e.value)
    assert count(metrics, "no-web", "deny") == 1
    gate.check(plain_spec(), pod(name="api"), "app")     # does not fire
    assert count(metrics, "no-web", "deny") == 1


def test_an_audit_rule_lets_through_and_counts(tmp_path, metrics, caplog):
    path = write(tmp_path, "p.yaml", rule_yaml("look", "pod.namespace == \"default\"",
                                               "audit", "seen"))
    gate = PolicyGate.from_files([path])
    gate.check(plain_spec(), pod(), "app")
    gate.check(plain_spec(), pod(), "app")
    assert count(metrics, "look", "audit") == 2
    assert any("policy audit: seen" in r.getMessage() for r in caplog.records)


def test_every_rule_runs_and_all_denials_are_named(tmp_path, metrics):
    path = write(tmp_path, "p.yaml", rule_yaml("d1") + rule_yaml("a1", action="audit") +
                 rule_yaml("d2", message="second"))
    with pytest.raises(FailedPrecondition) as e:
        PolicyGate.from_files([path]).check(plain_spec(), pod(), "app")
    assert "'d1'" in str(e.value) and "'d2': second" in str(e.value)
    assert count(metrics, "a1", "audit") == 1


def test_a_rule_that_cannot_be_evaluated_fails_closed_for_deny_open_for_audit(tmp_path,
                                                                              metrics):
    expr = "spec.linux.intelRdt.closID == \"x\""      # no intelRdt in the spec
    audit = PolicyGate.from_files([write(tmp_path, "a.yaml", rule_yaml("ra", expr, "audit"))])
    audit.check(plain_spec(), pod(), "app")
    assert count(metrics, "ra", "error") == 1
    deny = PolicyGate.from_files([write(tmp_path, "d.yaml", rule_yaml("rd", expr, "deny"))])
    with pytest.raises(FailedPrecondition, match="'rd': it could not be evaluated"):
        deny.check(plain_spec(), pod(), "app")
    assert count(metrics, "rd", "error") == 1


def test_no_rules_no_work():
    assert PolicyGate().evaluate(plain_spec(), pod()) == []


def test_replace_swaps_the_rules(tmp_path):
    gate = PolicyGate.from_files([write(tmp_path, "a.yaml", rule_yaml("x"))])
    gate.replace([])
    gate.check(plain_spec(), pod(), "app")


# ---- the starter set -----------------------------------------------------------------

@pytest.fixture(scope="module")
def starter() -> PolicyGate:
    return PolicyGate.from_files([str(STARTER)])


def fired(gate: PolicyGate, spec: dict, pod_doc: dict) -> set[str]:
    decisions = gate.evaluate(spec, pod_doc)
    assert not [d for d in decisions if d.error], [d.error for d in decisions]
    return {d.rule.name for d in decisions}


def host_network_sandbox():
    return base_sandbox(network_mode=2, pins={"ipc": "/run/crio-native/ns/ipc/p1",
                                              "uts": "/run/crio-native/ns/uts/p1"})


def mount(host_path: str, container_path: str = "/host") -> api_pb2.Mount:
    return api_pb2.Mount(container_path=container_path, host_path=host_path)


def test_the_starter_set_has_five_rules(starter):
    assert [r.name for r in starter.rules] == [
        "no-privileged-outside-kube-system", "no-host-root-or-runtime-socket",
        "seccomp-not-unconfined", "no-cap-sys-admin", "audit-host-namespaces"]


def test_no_starter_rule_fires_on_a_plain_container(starter):
    assert fired(starter, plain_spec(), pod()) == set()


BREAKING = [
    ("no-privileged-outside-kube-system", {f"{SC}privileged": True,
                                          f"{SC}seccomp__profile_type": RUNTIME_DEFAULT}),
    ("no-host-root-or-runtime-socket", {"mounts": [mount("/")]}),
    ("no-host-root-or-runtime-socket", {"mounts": [mount("/run/crio-native/crio-native.sock")]}),
    ("no-host-root-or-runtime-socket", {"mounts": [mount("/var/run/containerd/containerd.sock")]}),
    ("no-host-root-or-runtime-socket", {"mounts": [mount("/var/run/docker.sock")]}),
    ("no-host-root-or-runtime-socket", {"mounts": [mount("/run")]}),
    ("seccomp-not-unconfined", {f"{SC}seccomp__profile_type": UNCONFINED}),
    ("no-cap-sys-admin", {f"{SC}capabilities__add_capabilities": ["CAP_SYS_ADMIN"]}),
]


@pytest.mark.parametrize("rule,changes", BREAKING,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(BREAKING)])
def test_each_starter_rule_fires_on_a_spec_that_breaks_it(starter, rule, changes):
    spec = plain_spec(**changes)
    assert rule in fired(starter, spec, pod())


def test_privileged_means_every_rule_about_it_but_kube_system_is_trusted(starter):
    spec = plain_spec(**{f"{SC}privileged": True, f"{SC}seccomp__profile_type": UNCONFINED})
    assert fired(starter, spec, pod()) == {"no-privileged-outside-kube-system",
                                           "seccomp-not-unconfined", "no-cap-sys-admin"}
    assert fired(starter, spec, pod(namespace="kube-system")) == set()


def test_harmless_host_paths_do_not_fire(starter):
    spec = plain_spec(mounts=[mount("/var/log", "/a"), mount("/run/secrets", "/b"),
                                mount("/data/run", "/c")])
    assert fired(starter, spec, pod()) == set()


def test_the_audit_rule_fires_for_host_network(starter, metrics):
    spec = build_container_spec(make_inputs(
        config_with(**{f"{SC}seccomp__profile_type": RUNTIME_DEFAULT}),
        sandbox=host_network_sandbox())).spec
    assert fired(starter, spec, pod()) == {"audit-host-namespaces"}
    starter.check(spec, pod(), "app")          # audit only: let through
    assert count(metrics, "audit-host-namespaces", "audit") == 1


@pytest.mark.parametrize("profile,fires", [
    ({"defaultAction": "SCMP_ACT_ALLOW"}, True),
    ({"defaultAction": "SCMP_ACT_LOG", "syscalls": []}, True),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}, False),
    ({"defaultAction": "SCMP_ACT_ERRNO"}, False),
])
def test_an_allow_everything_profile_is_unconfined(starter, profile, fires):
    spec = plain_spec()
    spec["linux"]["seccomp"] = profile
    assert ("seccomp-not-unconfined" in fired(starter, spec, pod())) == fires


def test_the_evaluator_loads_without_the_cel_packages_command_line():
    # `import cel` also imports its REPL (typer, rich, prompt_toolkit): ~200 ms, ~30 MB
    import subprocess
    import sys

    code = ("import sys; from crio_native.policy.rules import evaluator;"
            "assert evaluator().compile('1 == 1').execute({}) is True;"
            "print(sorted(m for m in ('cel', 'cel.cli', 'typer', 'rich', 'prompt_toolkit')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
