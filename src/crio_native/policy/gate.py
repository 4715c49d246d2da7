"""Applying the rules to one container: every rule is evaluated against the
finished spec and its pod; an `audit` rule that fires is logged and counted,
a `deny` rule that fires refuses the container with FAILED_PRECONDITION
naming the rule and its message.

A rule that cannot be evaluated for this container (it reads a field the
spec lacks without `has()`, say) is logged and counted with action "error";
a `deny` rule then refuses the container (fail closed: a gate that opens on
its own errors is no gate), an `audit` rule lets it through."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from crio_native.errors import FailedPrecondition
from crio_native.logsetup import fields
from crio_native.metrics import hooks as metrics_hooks
from crio_native.policy.paths import Paths, union
from crio_native.policy.rules import AUDIT, DENY, Rule, RuleError, activation_for, load_rules

if TYPE_CHECKING:
    from crio_native.sandbox.record import SandboxRecord

log = logging.getLogger(__name__)

ERROR = "error"     # the metric's action label for a rule that could not be evaluated


@dataclass(frozen=True)
class Decision:
    """A rule that fired (or failed) for one container."""

    rule: Rule
    error: str = ""

    @property
    def denies(self) -> bool:
        return self.rule.action == DENY


def pod_input(sandbox: SandboxRecord) -> dict[str, Any]:
    """What a rule sees as `pod`."""
    return {"name": sandbox.name, "namespace": sandbox.namespace, "uid": sandbox.uid,
            "labels": dict(sandbox.labels), "annotations": dict(sandbox.annotations)}


def _state_of(rules: Sequence[Rule]) -> tuple[tuple[Rule, ...], dict[str, Paths]]:
    return tuple(rules), union(r.paths for r in rules)


def _count(rule: str, action: str) -> None:
    if metrics_hooks.current is not None:
        metrics_hooks.current.observe_policy(rule, action)


class PolicyGate:
    """The compiled rules of `[policy] files`; replace() swaps them whole (a
    reload), so a check in progress sees one set or the other.  Each check
    turns the spec and pod into CEL values once, for all the rules, pruned to
    the paths some rule reads (paths.py)."""

    def __init__(self, rules: Sequence[Rule] = ()):
        self._state = _state_of(rules)
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, patterns: Sequence[str]) -> "PolicyGate":
        """Compile every rule now: a ConfigError names the file and the rule."""
        return cls(load_rules(patterns))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._state[0]

    @property
    def paths(self) -> dict[str, Paths]:
        """What of spec and pod the rules read, together."""
        return self._state[1]

    def replace(self, rules: Sequence[Rule]) -> None:
        state = _state_of(rules)
        with self._lock:
            self._state = state

    def evaluate(self, spec: dict[str, Any], pod: dict[str, Any]) -> list[Decision]:
        """The rules that fire for this spec and pod, and those that failed."""
        rules, paths = self._state
        if not rules:
            return []
        activation = activation_for(spec, pod, paths)
        out = []
        for rule in rules:
            try:
                if rule.evaluate(activation):
                    out.append(Decision(rule))
            except RuleError as e:
                out.append(Decision(rule, error=e.reason))
        return out

    def check(self, spec: dict[str, Any], pod: dict[str, Any], container: str,
              rpc: str = "CreateContainer") -> None:
        """Log and count what fired; FailedPrecondition if a deny rule did."""
        denied = []
        for d in self.evaluate(spec, pod):
            where = fields(rule=d.rule.name, action=d.rule.action, container=container,
                           pod=f"{pod.get('namespace')}/{pod.get('name')}", file=d.rule.source)
            if d.error:
                log.error("policy rule could not be evaluated: %s", d.error, extra=where)
                _count(d.rule.name, ERROR)
            elif d.rule.action == AUDIT:
                log.warning("policy audit: %s", d.rule.message, extra=where)
                _count(d.rule.name, AUDIT)
            else:
                log.warning("policy denied: %s", d.rule.message, extra=where)
                _count(d.rule.name, DENY)
            if d.denies:
                denied.append(d)
        if denied:
            raise FailedPrecondition(f"{rpc}: container {container!r} in pod "
                                     f"{pod.get('namespace')}/{pod.get('name')}: "
                                     + "; ".join(map(_denial, denied)))


def _denial(d: Decision) -> str:
    if d.error:
        return (f"denied by policy rule {d.rule.name!r}: it could not be evaluated "
                f"({d.error}), and a deny rule fails closed")
    return f"denied by policy rule {d.rule.name!r}: {d.rule.message}"
