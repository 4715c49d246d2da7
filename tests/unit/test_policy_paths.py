"""What of spec and pod a policy rule reads (policy/paths.py): the paths found
in expressions, the pruned values the gate hands the evaluator, and the one
property that matters: every rule gives the same answer (or the same kind of
error) on the pruned values as on the whole spec and pod."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.policy import PolicyGate, compile_rule, pod_input
from crio_native.policy import rules as rules_mod
from crio_native.policy.paths import FULL, PRESENT, SIZE, Paths, inputs, prune, referenced
from crio_native.policy.rules import RuleError, activation_for
from crio_native.spec import build_container_spec
from tests.unit.test_spec_support import base_sandbox, config_with, make_inputs

SC = "linux__security_context__"


def found(expression: str) -> dict:
    return {name: node.as_dict() for name, node in referenced(expression).items()}


@pytest.mark.parametrize("expression,want", [
    ("true", {"spec": 0, "pod": 0}),
    ('pod.namespace == "x"', {"spec": 0, "pod": {"namespace": FULL}}),
    ("spec.linux.namespaces.map(n, n.type)", {"spec": {"linux": {"namespaces": FULL}}, "pod": 0}),
    ("has(spec.linux.seccomp)", {"spec": {"linux": {"seccomp": PRESENT}}, "pod": 0}),
    ("size(spec.linux.maskedPaths) == 0", {"spec": {"linux": {"maskedPaths": SIZE}}, "pod": 0}),
    ("spec.process.env.size() > 1", {"spec": {"process": {"env": SIZE}}, "pod": 0}),
    # a chain that stops at an index, an operator or a bare root keeps the value whole
    ('spec.mounts[0].source == "/"', {"spec": {"mounts": FULL}, "pod": 0}),
    ('spec["process"].cwd == "/"', {"spec": FULL, "pod": 0}),
    ("[spec].size() == 1", {"spec": FULL, "pod": 0}),
    ("has(spec.a) && spec.a.b == 1 && size(spec.a) == 2",
     {"spec": {"a": {"b": FULL, "": SIZE}}, "pod": 0}),
    # `x.size(spec.a)` is not size(): kept whole; so is `.?`
    ("x.size(spec.a) == 1", {"spec": {"a": FULL}, "pod": 0}),
    ("spec.?linux.hasValue()", {"spec": FULL, "pod": 0}),
    # strings and comments are not code; a name in a string costs nothing, a
    # string that hides no code hides no reference
    ('"spec.hostname" == spec.process.cwd', {"spec": {"process": {"cwd": FULL}}, "pod": 0}),
    ("r'a\\' == spec.hostname", {"spec": {"hostname": FULL}, "pod": 0}),
    ('"a\\"b" == spec.hostname // spec.root\n', {"spec": {"hostname": FULL}, "pod": 0}),
    ("'''x'y''' == spec.hostname", {"spec": {"hostname": FULL}, "pod": 0}),
    # a macro variable named like a root only adds paths
    ("pod.labels.exists(spec, spec == 'a')", {"spec": FULL, "pod": {"labels": FULL}}),
    # what does not tokenize keeps everything
    ('spec.hostname == "abc', {"spec": FULL, "pod": FULL}),
])
def test_the_paths_an_expression_reads(expression, want):
    assert found(expression) == want


def paths(**nodes: dict) -> Paths:
    root = Paths()
    for name, node in nodes.items():
        root.fields[name] = node_of(node)
    return root


def node_of(value) -> Paths:
    node = Paths()
    if isinstance(value, dict):
        for name, child in value.items():
            if name == "":
                node.mark = child
            else:
                node.fields[name] = node_of(child)
    else:
        node.mark = value
    return node


def test_prune_keeps_what_is_marked_and_only_that():
    value = {"process": {"env": ["A=1", "B=2"], "user": {"uid": 0}, "cwd": "/"},
             "mounts": [{"source": "/x"}], "hostname": "h"}
    got = prune(value, paths(process={"env": SIZE, "user": PRESENT, "cwd": FULL}, mounts=FULL))
    assert got == {"process": {"env": [0, 0], "user": None, "cwd": "/"},
                   "mounts": [{"source": "/x"}]}
    assert got["mounts"] is value["mounts"]          # kept, not copied
    # a field asked of a value that is no map: that value is kept whole
    assert prune({"args": ["sh"]}, paths(args={"x": PRESENT})) == {"args": ["sh"]}
    # a map whose size is read keeps every key
    assert prune({"a": {"b": 1, "c": 2}}, paths(a={"b": FULL, "": SIZE})) == \
        {"a": {"b": 1, "c": 2}}
    # an absent field stays absent, so has() stays false
    assert prune({}, paths(linux={"seccomp": PRESENT})) == {}
    assert inputs({"spec": paths()}, {"spec": value, "pod": {"a": 1}}) == \
        {"spec": {}, "pod": {"a": 1}}


def spec_of(**changes) -> dict:
    return build_container_spec(make_inputs(config_with(
        **{f"{SC}seccomp__profile_type": 0, **changes}))).spec


def with_env(n: int) -> dict:
    spec = spec_of()
    spec["process"]["env"] += [f"VAR{i}=value{i}" for i in range(n)] + ["SECRET=x"]
    return spec


SPECS = {
    "plain": spec_of,
    "privileged": lambda: spec_of(**{f"{SC}privileged": True, f"{SC}seccomp__profile_type": 1}),
    "host mount": lambda: spec_of(mounts=[api_pb2.Mount(container_path="/h", host_path="/")]),
    "many env": lambda: with_env(200),
    "no seccomp": lambda: {k: v for k, v in spec_of().items() if k != "linux"} | {
        "linux": {k: v for k, v in spec_of()["linux"].items() if k != "seccomp"}},
}

EXPRESSIONS = [
    "has(spec.linux.seccomp)",
    "!has(spec.linux.seccomp) ? true : size(spec.linux.seccomp.syscalls) == 0",
    'has(spec.linux.seccomp) && spec.linux.seccomp.syscalls.exists(s, "mount" in s.names)',
    'spec.process.env.exists(e, e.startsWith("SECRET="))',
    "size(spec.process.env) > 50",
    'spec.mounts.exists(m, m.source == "/")',
    'size(spec.mounts) > 7 && spec.mounts[7].destination == "/etc/hostname"',
    '"CAP_SYS_ADMIN" in spec.process.capabilities.bounding',
    "spec.linux.maskedPaths.size() == 0",
    'spec.linux.seccomp.defaultAction == "SCMP_ACT_ERRNO"',     # fails without seccomp
    "spec.process.user.additionalGids[0] == 0",                   # fails where there are none
    'has(spec.linux.sysctl) && spec.linux.sysctl["net.ipv4.ip_forward"] == "1"',
    'pod.labels.exists(k, k == "app") || pod.annotations.size() > 3',
    'has(spec.process.user) && spec.process.user.uid == 0',
]


def outcome(rule, spec: dict, pod: dict, pruned: bool):
    try:
        return rule.evaluate(activation_for(spec, pod, rule.paths if pruned else None))
    except RuleError as e:
        return ("error", e.data)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_rule_answers_the_same_on_pruned_and_whole_values(expression):
    rule = compile_rule({"name": "r", "action": "deny", "expression": expression}, "t", 0)
    pod = pod_input(base_sandbox())
    for name, make in SPECS.items():
        spec = make()
        assert outcome(rule, spec, pod, True) == outcome(rule, spec, pod, False), name


def test_a_rule_outside_what_others_read_still_sees_its_fields():
    # the first rule alone would prune spec to linux.seccomp; the gate reads
    # what any rule reads, so the env and the mounts' index stay visible
    gate = PolicyGate([compile_rule(r, "t", i) for i, r in enumerate([
        {"name": "seccomp", "action": "audit", "expression": "!has(spec.linux.seccomp)"},
        {"name": "secret", "action": "deny",
         "expression": 'spec.process.env.exists(e, e.startsWith("SECRET="))'},
        {"name": "eighth", "action": "audit",
         "expression": 'spec.mounts[7].destination == "/etc/hostname"'},
    ])])
    assert gate.paths["spec"].as_dict() == {"linux": {"seccomp": PRESENT},
                                            "process": {"env": FULL}, "mounts": FULL}
    fired = {d.rule.name for d in gate.evaluate(with_env(200), pod_input(base_sandbox()))
             if not d.error}
    assert fired == {"secret", "eighth"}


def test_a_rule_whose_paths_miss_what_it_reads_is_given_everything(monkeypatch, caplog):
    # the guard at compile time: pruned and whole must agree on the sample
    def too_narrow(expression: str) -> dict[str, Paths]:
        return {"spec": Paths(), "pod": Paths()}

    monkeypatch.setattr(rules_mod, "referenced", too_narrow)
    rule = compile_rule({"name": "cwd", "action": "deny", "expression": 'spec.process.cwd == "/"'},
                        "t", 0)
    assert rule.paths["spec"].mark == FULL and rule.paths["pod"].mark == FULL
    assert "could not be narrowed" in caplog.text
    assert rule.evaluate(activation_for(spec_of(), {}, rule.paths)) is True


# ---- the property, over every pair of forms and a set of values ----------------------

CHAINS = ("spec", "spec.a", "spec.a.b", "pod.a")
FORMS = ("has({c}.a)", "size({c}) == 2", "{c}.size() > 1", "{c} == 'x'", "{c} == {d}",
         "'a' in {c}", "{c}.exists(v, v == 1)", "{c}.exists(v, has(v.a) && v.a == 'x')",
         "{c}.map(v, v.b).size() == 1", "{c}.filter(v, true)[0].a == 1", "{c}[0] == 1",
         "{c}['a'] == 1", "[{c}][0] == null", "{c} != null ? true : false")
TERMS = [form.format(c=c, d=d) for form in FORMS for c in CHAINS
         for d in (CHAINS[1:3] if "{d}" in form else ("",))]
VALUES = [
    {}, {"a": None}, {"a": "x"}, {"a": 1}, {"a": [1, 1]}, {"a": [1]}, {"a": [{"a": "x"}]},
    {"a": [{"a": 1, "b": 2}, {"b": 3}]}, {"a": {"a": "x"}}, {"a": {"a": 1, "b": "x"}},
    {"a": {"b": {"a": "x"}}, "b": 2}, {"a": {"b": [1, 2]}, "c": [0]},
    {"a": {"b": [{"a": "x"}]}}, {"a": {"b": 1, "c": 2}},
]


def _answer(program, variables) -> object:
    from crio_native.policy.rules import evaluator

    try:
        return program.execute(evaluator().Context(variables=variables))
    except (KeyError, IndexError):
        return "data error"
    except Exception:
        return "error"


def test_every_pair_of_forms_answers_the_same_on_pruned_and_whole_values():
    from crio_native.policy.rules import evaluator

    expressions = TERMS + [f"{x} && {y}" for x in TERMS for y in TERMS if x != y]
    differ = []
    for expression in expressions:
        program, paths = evaluator().compile(expression), referenced(expression)
        for i, value in enumerate(VALUES):
            whole = {"spec": value, "pod": VALUES[-1 - i]}
            if _answer(program, inputs(paths, whole)) != _answer(program, whole):
                differ.append((expression, value))
    assert not differ, differ[:5]
