"""The final-spec policy gate: CEL rules over each container's finished OCI
spec and its pod, loaded from `[policy] files` (rules.py) and applied by
CreateContainer just before the bundle is written (gate.py)."""
from crio_native.policy.gate import Decision, PolicyGate, pod_input
from crio_native.policy.rules import AUDIT, DENY, Rule, compile_rule, load_rules

__all__ = ["AUDIT", "DENY", "Decision", "PolicyGate", "Rule", "compile_rule", "load_rules",
           "pod_input"]
