"""Policy rules: YAML files of `{name, expression, action, message}`, each
expression CEL over `spec` (the finished OCI spec) and `pod` (name,
namespace, uid, labels, annotations).

Two CEL implementations, each for what it does well: cel-python (`celpy`,
pure Python) checks a rule when it is compiled: its parse tree gives the
name check below, and its evaluation is stricter about types than the CEL
spec's (it refuses `1 == "1"`, which the spec calls false), which the probe
uses.  The rule is then compiled by `common-expression-language` (`cel`, a
Rust interpreter) and that program is what runs for each container.

A rule is compiled once, when the daemon starts (and again on a reload):
  1. parsed as CEL;
  2. checked: every free name is `spec` or `pod` (a macro's bound variable
     inside its macro), every function and method one CEL defines;
  3. evaluated once against a plain sample container, by both: the result
     must be a boolean, or an error that only a missing map key or list index
     caused (the rule reads a field the sample does not have, which `has()`
     guards at run time); any other error (`1 + "a"`, a string compared with
     an int, a function the Rust evaluator lacks) is a type error.
A failure of any step is a ConfigError naming the file and the rule: the
daemon does not start with a policy it cannot apply."""
from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from crio_native.errors import ConfigError
from crio_native.policy.paths import FULL, Paths, inputs, referenced

log = logging.getLogger(__name__)

DENY = "deny"
AUDIT = "audit"
ACTIONS = (DENY, AUDIT)
RULE_KEYS = frozenset({"name", "expression", "action", "message"})
NAMES = frozenset({"spec", "pod"})
# Macros that bind a variable: receiver.m(var, expr[, expr])
BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
OTHER_FUNCTIONS = frozenset({"has", "dyn"})

# What a plain container looks like to a rule at compile time (probe step).
SAMPLE_SPEC: dict[str, Any] = {
    "ociVersion": "1.1.0",
    "hostname": "sample",
    "annotations": {"io.kubernetes.cri-o.ContainerName": "sample"},
    "process": {
        "args": ["/bin/sh"], "env": ["PATH=/usr/bin:/bin"], "cwd": "/", "terminal": False,
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "capabilities": {k: ["CAP_CHOWN", "CAP_KILL"] for k in
                         ("bounding", "effective", "permitted", "inheritable", "ambient")},
        "noNewPrivileges": False, "oomScoreAdj": 0,
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "apparmorProfile": "", "selinuxLabel": "",
    },
    "root": {"path": "/rootfs", "readonly": False},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc",
                "options": ["nosuid", "noexec", "nodev"]}],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/x"}],
        "resources": {"devices": [{"allow": False, "access": "rwm"}],
                      "memory": {"limit": 0}, "cpu": {"shares": 2}},
        "cgroupsPath": "/sample", "sysctl": {"net.ipv4.ping_group_range": "0 0"},
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]},
        "devices": [], "uidMappings": [], "gidMappings": [],
    },
}
SAMPLE_POD: dict[str, Any] = {"name": "sample", "namespace": "default", "uid": "sample-uid",
                              "labels": {"app": "sample"}, "annotations": {"a": "b"}}
# the errors of a well-typed rule that reads a field the sample lacks
DATA_ERRORS = ("no such member", "no such key", "index out of range", "KeyError",
               "IndexError")
# the same, as the Rust evaluator raises them
DATA_EXCEPTIONS = (KeyError, IndexError)


@dataclass(frozen=True)
class Rule:
    name: str
    expression: str
    action: str
    message: str
    source: str                # the file it came from
    program: Any               # cel.Program (the Rust evaluator)
    # what of spec and pod the expression can read (paths.py)
    paths: dict[str, Paths] = field(default_factory=dict, compare=False, repr=False)

    def evaluate(self, activation: Any) -> bool:
        """True when the rule fires; RuleError when it cannot be evaluated
        (or gives something other than a boolean).  `activation`: from
        activation_for()."""
        try:
            result = self.program.execute(activation)
        except Exception as e:      # KeyError, TypeError, RuntimeError...: the data's fault
            raise RuleError(self, evaluator_error_text(e), data=isinstance(
                e, DATA_EXCEPTIONS)) from None
        if not isinstance(result, bool):
            raise RuleError(self, f"gave {type(result).__name__}, not a boolean")
        return result


class RuleError(Exception):
    def __init__(self, rule: Rule, reason: str, data: bool = False):
        self.rule = rule
        self.reason = reason
        self.data = data        # a missing key or index: the rule is well typed
        super().__init__(f"rule {rule.name!r} ({rule.source}): {reason}")


def error_text(error: BaseException) -> str:
    """celpy's error args hold nested tuples of messages: the innermost text."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, BaseException):
            for a in value.args:
                walk(a)
        elif isinstance(value, tuple):
            for a in value:
                walk(a)
        elif isinstance(value, str):
            parts.append(value)
    walk(error)
    return "; ".join(parts) or repr(error)


def evaluator_error_text(error: Exception) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, KeyError):
        return f"no such key: {text}"
    if isinstance(error, IndexError):
        return f"index out of range: {text}"
    return text or type(error).__name__


_CEL: Any = None
_CEL_LOCK = threading.Lock()        # the extension initialises once per process


def evaluator() -> Any:
    """The `cel` package's Rust extension module.  Loaded by itself: the
    package's __init__ also imports its command-line REPL (typer, rich,
    prompt_toolkit), about 200 ms and 30 MB the daemon has no use for.  A
    later `import cel` finds the module in sys.modules and uses it."""
    global _CEL
    if _CEL is not None:
        return _CEL
    with _CEL_LOCK:
        module = sys.modules.get("cel.cel")
        if module is None:
            package = importlib.util.find_spec("cel")       # finds; runs nothing
            spec = importlib.machinery.PathFinder.find_spec(
                "cel.cel", list(package.submodule_search_locations or ())) \
                if package is not None else None
            if spec is None or spec.loader is None:
                import cel
                module = cel
            else:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules["cel.cel"] = module
        _CEL = module
    return _CEL


_ENVIRONMENT: Any = None


def environment() -> Any:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        import celpy

        _ENVIRONMENT = celpy.Environment()
    return _ENVIRONMENT


def known_functions() -> frozenset[str]:
    from celpy import evaluation

    return frozenset(n for n in evaluation.base_functions if n[0].isalpha()) | \
        OTHER_FUNCTIONS | BINDING_MACROS


# ---- static check -------------------------------------------------------------------

def _token(node: Any) -> str | None:
    from lark import Token

    return str(node) if isinstance(node, Token) else None


def _bound_name(expr: Any) -> str | None:
    """The variable of a macro (`c` in `l.exists(c, ...)`): the expr is a bare ident."""
    from lark import Tree

    node = expr
    while isinstance(node, Tree) and node.data != "ident":
        kids = [k for k in node.children if isinstance(k, Tree)]
        if len(kids) != 1 or len(node.children) != 1:
            return None
        node = kids[0]
    if isinstance(node, Tree) and node.data == "ident":
        return _token(node.children[0])
    return None


def check_names(tree: Any, functions: frozenset[str]) -> list[str]:
    """Problems with the names in a parsed expression: unknown variables,
    functions or methods."""
    from lark import Tree

    problems: list[str] = []

    def walk(node: Any, bound: frozenset[str]) -> None:
        if not isinstance(node, Tree):
            return
        kids = node.children
        if node.data in ("ident", "dot_ident"):
            name = _token(kids[-1])
            if name is not None and name not in NAMES and name not in bound:
                problems.append(f"unknown name {name!r} (a rule sees only spec and pod)")
            return
        if node.data in ("ident_arg", "dot_ident_arg"):
            fn = _token(kids[0])
            if fn is not None and fn not in functions:
                problems.append(f"unknown function {fn}()")
            for k in kids[1:]:
                walk(k, bound)
            return
        if node.data == "member_dot_arg":
            receiver, method = kids[0], _token(kids[1])
            walk(receiver, bound)
            args = kids[2].children if len(kids) > 2 and isinstance(kids[2], Tree) else []
            if method is not None and method not in functions:
                problems.append(f"unknown method .{method}()")
            if method in BINDING_MACROS and args:
                var = _bound_name(args[0])
                if var is None:
                    problems.append(f".{method}() needs a variable name as its first argument")
                    return
                for a in args[1:]:
                    walk(a, bound | {var})
                return
            for a in args:
                walk(a, bound)
            return
        if node.data == "member_dot":
            walk(kids[0], bound)     # the field name is a token, not a variable
            return
        for k in kids:
            walk(k, bound)

    walk(tree, frozenset())
    return problems


# ---- compile ------------------------------------------------------------------------

def activation_for(spec: dict[str, Any], pod: dict[str, Any],
                   paths: dict[str, Paths] | None = None) -> Any:
    """The variables of one evaluation as the Rust evaluator's values, made
    once for all the rules: spec and pod pruned to `paths` (everything when
    None)."""
    values = {"spec": spec, "pod": pod}
    return evaluator().Context(variables=values if paths is None else inputs(paths, values))


def compile_rule(doc: Any, source: str, index: int) -> Rule:
    """One rule from its YAML mapping; ConfigError naming file and rule."""
    where = f"rule {index}"
    if not isinstance(doc, dict):
        raise ConfigError("policy.files", f"{where}: must be a mapping with name, expression, "
                          "action and message", source)
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("policy.files", f"{where}: name: must be a non-empty string", source)
    where = f"rule {name!r}"
    unknown = sorted(set(doc) - RULE_KEYS)
    if unknown:
        raise ConfigError("policy.files", f"{where}: unknown keys {', '.join(map(str, unknown))}"
                          " (want name, expression, action, message)", source)
    expression, action = doc.get("expression"), doc.get("action")
    message = doc.get("message", name)
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError("policy.files", f"{where}: expression: must be a CEL string", source)
    if action not in ACTIONS:
        raise ConfigError("policy.files", f"{where}: action: must be deny or audit "
                          f"(got {action!r})", source)
    if not isinstance(message, str):
        raise ConfigError("policy.files", f"{where}: message: must be a string", source)
    checked = _check_expression(expression, where, source)
    rule = Rule(name=name, expression=expression, action=action, message=message,
                source=source, program=_compile_program(expression, where, source),
                paths=referenced(expression))
    _probe(rule, checked, where)
    return _checked_paths(rule)


def _check_expression(expression: str, where: str, source: str) -> Any:
    """Parse and check names with cel-python: its Runner, for the probe."""
    import celpy

    env = environment()
    try:
        tree = env.compile(expression)
    except celpy.CELParseError as e:
        text = " ".join(str(e).split())
        raise ConfigError("policy.files", f"{where}: expression does not parse: {text}",
                          source) from None
    problems = check_names(tree, known_functions())
    if problems:
        raise ConfigError("policy.files", f"{where}: expression does not type-check: "
                          + "; ".join(problems), source)
    return env.program(tree)


def _compile_program(expression: str, where: str, source: str) -> Any:
    try:
        return evaluator().compile(expression)
    except ValueError as e:
        text = " ".join(str(e).split())
        raise ConfigError("policy.files", f"{where}: expression does not parse: {text}",
                          source) from None


def _probe(rule: Rule, checked: Any, where: str) -> None:
    """Evaluate against the sample with cel-python (its type errors) and with
    the Rust evaluator (what it lacks)."""
    import celpy

    reason = ""
    try:
        result = checked.evaluate({"spec": celpy.json_to_cel(SAMPLE_SPEC),
                                   "pod": celpy.json_to_cel(SAMPLE_POD)})
        if isinstance(result, celpy.CELEvalError):
            raise result
        if not isinstance(result, celpy.celtypes.BoolType):
            reason = f"gave {type(result).__name__}, not a boolean"
    except celpy.CELEvalError as e:
        text = error_text(e)
        if not any(marker in text for marker in DATA_ERRORS):
            reason = text
    if not reason:
        try:
            rule.evaluate(activation_for(SAMPLE_SPEC, SAMPLE_POD))
        except RuleError as e:
            if not e.data:
                reason = e.reason
    if reason:
        raise ConfigError("policy.files", f"{where}: expression does not type-check: "
                          f"{reason}", rule.source)


def _outcome(rule: Rule, paths: dict[str, Paths] | None) -> Any:
    try:
        return rule.evaluate(activation_for(SAMPLE_SPEC, SAMPLE_POD, paths))
    except RuleError as e:
        return type(e), e.data


def _checked_paths(rule: Rule) -> Rule:
    """A guard on paths.py: the rule gives the sample the same answer pruned
    as whole, or it is given whole values."""
    if _outcome(rule, rule.paths) == _outcome(rule, None):
        return rule
    log.warning("policy rule %s (%s): the values it reads could not be narrowed; it is "
                "given the whole spec", rule.name, rule.source)
    whole = {name: Paths() for name in rule.paths}
    for node in whole.values():
        node.mark = FULL
    return Rule(rule.name, rule.expression, rule.action, rule.message, rule.source,
                rule.program, whole)


# ---- files ----------------------------------------------------------------------------

def policy_files(patterns: Iterable[str]) -> list[str]:
    """The files the globs name, in order, each once.  A plain path that does
    not exist is an error; a glob matching nothing is logged."""
    out: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            if not glob.has_magic(pattern):
                raise ConfigError("policy.files", "no such file", pattern)
            log.warning("policy glob %s matches no file", pattern)
        for path in matches:
            if path not in out:
                out.append(path)
    return out


def rules_of_file(path: str) -> list[Rule]:
    import yaml   # only with [policy] files (daemon memory, bench daemon_rss)

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError("policy.files", f"cannot read: {e.strerror}", path) from None
    except yaml.YAMLError as e:
        text = " ".join(str(e).split())
        raise ConfigError("policy.files", f"not valid YAML: {text}", path) from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise ConfigError("policy.files", "must be a YAML list of rules", path)
    return [compile_rule(item, path, i) for i, item in enumerate(doc)]


def load_rules(patterns: Iterable[str]) -> list[Rule]:
    """Every rule of every file, compiled; rule names are unique across files."""
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in policy_files(patterns):
        for rule in rules_of_file(path):
            if rule.name in seen:
                raise ConfigError("policy.files", f"rule {rule.name!r}: name already used in "
                                  f"{seen[rule.name]}", path)
            seen[rule.name] = path
            rules.append(rule)
    return rules
