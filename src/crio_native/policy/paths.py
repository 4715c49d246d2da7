"""Which parts of `spec` and `pod` the rules read, so that a container's spec
is turned into CEL values once, and only as far as some rule can look.

Turning a spec into the evaluator's values costs far more than evaluating
five rules over it (about 1.6 us per string: RuntimeDefault's seccomp profile
alone is ~1 ms), so the gate hands the evaluator a copy pruned to the paths
the rules name.

The paths come from a scan of the expression's tokens, made to err on the
side of keeping: every `spec` or `pod` token (whatever it refers to: a
macro's variable of that name, `.spec` of some other value) starts a chain
of `.field` selections; the chain stops at anything else (an index, a method
call, an operator, `.?`), and the value where it stops is kept whole.  Only
two forms keep less, because what they read is known exactly:
  - `has(chain)` reads whether the last field is present: the field is kept
    with a null value;
  - `size(chain)` / `chain.size()` reads a list's length: a list is kept as
    a list of as many zeros (any other value is kept whole).
A value that another chain reads in full or below is kept as that chain
needs (marks only add up).  A map is pruned to the fields named below it; a
value that is not a map where a chain selects a field of it is kept whole, so
an expression that fails on it fails the same way.  A value reached through
a macro's variable (`m` in `spec.mounts.exists(m, m.source == "/")`) lies
below a macro's receiver, which is always kept whole."""
from __future__ import annotations

import re
from typing import Any, Iterable

PRESENT, SIZE, FULL = 1, 2, 3      # what a path's last field must keep, weakest first

ROOTS = ("spec", "pod")

_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR])(?:\"\"\".*?\"\"\"|'''.*?'''|"[^"\n]*"|'[^'\n]*')
             |[bB]?(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
                     |"(?:\\.|[^\\"\n])*"|'(?:\\.|[^\\'\n])*'))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][0-9A-Za-z_]*)
  | (?P<punct>.)
""", re.VERBOSE | re.DOTALL)


class Paths:
    """A tree of field names, each node marked with what it must keep
    (0: only the marked fields below it)."""

    __slots__ = ("mark", "fields")

    def __init__(self) -> None:
        self.mark = 0
        self.fields: dict[str, Paths] = {}

    def add(self, path: Iterable[str], mark: int) -> None:
        node = self
        for name in path:
            node = node.fields.setdefault(name, Paths())
        node.mark = max(node.mark, mark)

    def merge(self, other: "Paths") -> None:
        self.mark = max(self.mark, other.mark)
        for name, child in other.fields.items():
            self.fields.setdefault(name, Paths()).merge(child)

    def as_dict(self) -> Any:
        """For tests and logs: a field's mark, or {field: ...} below it (with
        its own mark under "" when it has one)."""
        if not self.fields:
            return self.mark
        out: dict[str, Any] = {name: child.as_dict() for name, child in self.fields.items()}
        if self.mark:
            out[""] = self.mark
        return out


def tokens(expression: str) -> list[tuple[str, str]] | None:
    """(kind, text) of each token but spaces and comments; None when the text
    does not tokenize (then nothing is pruned)."""
    out = []
    for m in _TOKEN.finditer(expression):
        kind = m.lastgroup or "punct"
        if kind == "space":
            continue
        if kind == "punct" and m.group() in "\"'":
            return None         # an unterminated string
        out.append((kind, m.group()))
    return out


def referenced(expression: str) -> dict[str, Paths]:
    """Per root (`spec`, `pod`), the paths this expression can read."""
    roots = {name: Paths() for name in ROOTS}
    toks = tokens(expression)
    if toks is None:
        for node in roots.values():
            node.mark = FULL
        return roots

    def text(i: int) -> str:
        return toks[i][1] if 0 <= i < len(toks) else ""

    def is_ident(i: int) -> bool:
        return 0 <= i < len(toks) and toks[i][0] == "ident"

    for i, (kind, word) in enumerate(toks):
        if kind != "ident" or word not in roots:
            continue
        path: list[str] = []
        j = i + 1
        while text(j) == "." and is_ident(j + 1) and text(j + 2) != "(":
            path.append(text(j + 1))
            j += 2
        roots[word].add(path, _mark(path, i, j, text))
    return roots


def _mark(path: list[str], start: int, end: int, text: Any) -> int:
    """What the chain from token `start` to `end` (exclusive) reads of its
    last field."""
    if not path:
        return FULL
    if text(end) == "." and text(end + 1) == "size" and text(end + 2) == "(" \
            and text(end + 3) == ")":
        return SIZE
    call = text(start - 2)
    if text(start - 1) == "(" and text(start - 3) != "." and text(end) == ")":
        if call == "has":
            return PRESENT
        if call == "size":
            return SIZE
    return FULL


def prune(value: Any, node: Paths) -> Any:
    """`value` keeping what `node` marks (see the module's doc)."""
    if node.mark == FULL:
        return value
    if node.fields:
        if not isinstance(value, dict) or node.mark == SIZE:
            return value
        return {name: prune(value[name], child) for name, child in node.fields.items()
                if name in value}
    if node.mark == SIZE:
        return [0] * len(value) if isinstance(value, list) else value
    return None                 # PRESENT: has() reads the key only


def inputs(paths: dict[str, Paths], values: dict[str, Any]) -> dict[str, Any]:
    """The rules' variables, each pruned to what some rule reads (one that
    no rule reads: an empty map)."""
    out = {}
    for name, value in values.items():
        node = paths.get(name)
        if node is None or node.mark or node.fields:
            out[name] = value if node is None else prune(value, node)
        else:
            out[name] = {}
    return out


def union(each: Iterable[dict[str, Paths]]) -> dict[str, Paths]:
    out = {name: Paths() for name in ROOTS}
    for roots in each:
        for name, node in roots.items():
            out[name].merge(node)
    return out
