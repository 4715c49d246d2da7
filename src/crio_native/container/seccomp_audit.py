"""The syscall audit stream (`[runtime] seccomp_audit = true`): every
syscall a container's seccomp profile denies or logs is attributed to its
pod, container and image, counted
(container_runtime_crio_native_seccomp_denials_total{syscall, container})
and logged as a structured line.

The daemon is the filter's agent (container/seccomp_notifier.py): the
profile's refusing rules notify instead (spec.seccomp.notifying_section),
its SCMP_ACT_LOG rules too, and each notification is answered at once with
the errno the profile gave (or, for a logged call, lets it go on).  The
kernel's own SECCOMP_RET_LOG lines go to the audit log, which a daemon in a
container or on a node without auditd cannot read back with the pid ->
container attribution intact; the notify fd is per container, so the
attribution is exact.  Cost: a refused call becomes a round trip to the
daemon (two context switches and a Python handler, some 20-50 us) instead
of a return from the filter; allowed calls cost nothing more.  A denial
storm never waits on a log write: lines are rate-limited per container
(token bucket), the counter counts them all, and the answer is sent
whatever happens to the line."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from crio_native.logsetup import fields
from crio_native.metrics import hooks as metrics_hooks
from crio_native.spec import annotations as spec_annotations

log = logging.getLogger(__name__)

# A container may log this many denials at once, then one a second; what
# the bucket drops is counted and said in the next line that goes out.
BURST = 10
RATE = 1.0
_LOG_ACTIONS = {"SCMP_ACT_LOG"}
# spec annotation: what the agent answers, kept for a restarted daemon
ANSWERS_ANNOTATION = "io.crio-native.seccomp-audit.answers"


@dataclass
class Auditor:
    """One container's audit: who it is, and its log bucket."""
    container_id: str
    container: str
    pod: str
    namespace: str
    image: str           # as ImageService reports it: name@sha256:<manifest digest>
    image_id: str        # sha256:<config digest>
    burst: int = BURST
    rate: float = RATE
    clock: Any = time.monotonic
    tokens: float = -1.0          # the bucket starts full
    last: float = -1.0
    suppressed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def observe(self, syscall: str) -> None:
        """One refused or logged call: counted always, logged if the bucket
        has a token."""
        metrics = metrics_hooks.current
        if metrics is not None:
            metrics.observe_seccomp_denial(syscall, self.container)
        with self._lock:
            now = self.clock()
            if self.last >= 0:
                self.tokens = min(float(self.burst),
                                  self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens < 1:
                self.suppressed += 1
                return
            self.tokens -= 1
            suppressed, self.suppressed = self.suppressed, 0
        log.warning("seccomp audit: syscall '%s' denied or logged in container %s (%s/%s %s)",
                    syscall, self.container_id, self.namespace, self.pod, self.container,
                    extra=fields(id=self.container_id, syscall=syscall, container=self.container,
                                 pod=self.pod, namespace=self.namespace, image=self.image,
                                 image_id=self.image_id,
                                 suppressed_since_last=suppressed))

    def close(self) -> None:
        with self._lock:
            suppressed, self.suppressed = self.suppressed, 0
        if suppressed:
            log.warning("seccomp audit: %d more lines of container %s were rate-limited",
                        suppressed, self.container_id,
                        extra=fields(id=self.container_id, suppressed=suppressed))


def auditor_from_spec(container_id: str, spec: dict[str, Any],
                      image_id: str = "") -> Auditor:
    """The attribution, from the spec's io.kubernetes.cri.* annotations (so
    a restarted daemon can build it again from the bundle)."""
    notes = spec.get("annotations") or {}
    return Auditor(container_id=container_id,
                   container=str(notes.get(spec_annotations.CONTAINER_NAME, "")),
                   pod=str(notes.get(spec_annotations.SANDBOX_NAME, "")),
                   namespace=str(notes.get(spec_annotations.SANDBOX_NAMESPACE, "")),
                   image=str(notes.get(spec_annotations.IMAGE_NAME, "")),
                   image_id=image_id)


def with_logged(section: dict[str, Any], answers: dict[str, int],
                syscall_names: list[str], cont: int) -> dict[str, Any]:
    """`section` (already notifying for what it refuses) with its
    SCMP_ACT_LOG rules notifying too, answered `cont` (go on).  A LOG
    default gets a notifying rule for each name no rule names."""
    out = dict(section)
    rules = []
    named: set[str] = set()
    for rule in section.get("syscalls") or []:
        names = list(rule.get("names") or [])
        named.update(names)
        if rule.get("action") not in _LOG_ACTIONS:
            rules.append(rule)
            continue
        rules.append({**rule, "action": "SCMP_ACT_NOTIFY"})
        for n in names:
            answers.setdefault(n, cont)
    if section.get("defaultAction") in _LOG_ACTIONS:
        from crio_native.linux.seccomp import NOTIFY_REFUSED
        rest = sorted(set(syscall_names) - named - set(NOTIFY_REFUSED))
        if rest:
            rules.append({"names": rest, "action": "SCMP_ACT_NOTIFY"})
            answers.update({n: cont for n in rest})
    out["syscalls"] = rules
    return out


def encode_answers(answers: dict[str, int]) -> str:
    """The most common answer, and the others by name (compact JSON)."""
    counts = Counter(answers.values())
    common = counts.most_common(1)[0][0] if counts else 1
    rest = {n: a for n, a in sorted(answers.items()) if a != common}
    return json.dumps({"default": common, "answers": rest}, separators=(",", ":"))


def decode_answers(text: str, fallback: int) -> tuple[dict[str, int], int]:
    try:
        data = json.loads(text)
        answers = {str(k): int(v) for k, v in (data.get("answers") or {}).items()}
        return answers, int(data.get("default", fallback))
    except (ValueError, TypeError, AttributeError):
        log.warning("seccomp audit: unreadable %s annotation", ANSWERS_ANNOTATION)
        return {}, fallback
