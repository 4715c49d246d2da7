"""Our RuntimeDefault allows no syscall CRI-O's default denies: for every
architecture and every capability its rules depend on, the names our
rendered profile allows are a subset of those CRI-O's allows in the same
case, and a name CRI-O allows only for some argument values we allow only
under argument conditions too.  CRI-O's list is a recorded fact
(tests/fixtures/crio_default_seccomp_allowed.txt says where it comes from)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from crio_native.spec import seccomp, seccomp_default

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "crio_default_seccomp_allowed.txt"
MACHINES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
            "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE",
            "riscv64": "SCMP_ARCH_RISCV64"}


@dataclass(frozen=True)
class Rule:
    name: str
    needs: frozenset[str]      # +CAP
    unless: frozenset[str]     # -CAP
    arches: frozenset[str]     # @ARCH (empty: any)
    args: bool

    def applies(self, caps: set[str], arch: str) -> bool:
        return self.needs <= caps and not self.unless & caps \
            and (not self.arches or arch in self.arches)


def crio_rules() -> list[Rule]:
    out = []
    for line in FIXTURE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, *quals = line.split()
        out.append(Rule(name, frozenset(q[1:] for q in quals if q[0] == "+"),
                        frozenset(q[1:] for q in quals if q[0] == "-"),
                        frozenset(q[1:] for q in quals if q[0] == "@"), "(args)" in quals))
    return out


CRIO = crio_rules()


def ours_allowed(caps: set[str], machine: str) -> dict[str, bool]:
    """name -> whether every allow rule for it has argument conditions."""
    section = seccomp.render_template(seccomp_default.template(), sorted(caps), machine)
    out: dict[str, bool] = {}
    for rule in section["syscalls"]:
        if rule["action"] != "SCMP_ACT_ALLOW":
            continue
        for name in rule["names"]:
            out[name] = out.get(name, True) and bool(rule.get("args"))
    return out


def crio_allowed(caps: set[str], arch: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for rule in CRIO:
        if rule.applies(caps, arch):
            out[rule.name] = out.get(rule.name, True) and rule.args
    return out


def capability_cases() -> list[frozenset[str]]:
    """No capability, each capability either profile names, and all of them."""
    named = set()
    for entry in seccomp_default.template()["syscalls"]:
        for side in ("includes", "excludes"):
            named |= set((entry.get(side) or {}).get("caps") or [])
    for rule in CRIO:
        named |= rule.needs | rule.unless
    return [frozenset()] + [frozenset([c]) for c in sorted(named)] + [frozenset(named)]


def test_fixture_is_crio_list():
    """The fixture parsed: a few facts of CRI-O's default a reader can check."""
    names = {r.name for r in CRIO}
    assert len(CRIO) > 380
    assert {"keyctl", "pivot_root", "read", "ptrace"} <= names
    assert not {"vmsplice", "userfaultfd", "kexec_load", "add_key"} & names
    (unshare,) = [r for r in CRIO if r.name == "unshare"]
    assert unshare.needs == {"CAP_SYS_ADMIN"}


@pytest.mark.parametrize("machine", sorted(MACHINES))
@pytest.mark.parametrize("caps", capability_cases(), ids=lambda c: "+".join(sorted(c)) or "none")
def test_our_allowed_set_is_within_crios(machine, caps):
    ours = ours_allowed(set(caps), machine)
    theirs = crio_allowed(set(caps), MACHINES[machine])
    assert sorted(set(ours) - set(theirs)) == []
    # CRI-O allows these only for some argument values: so do we
    assert sorted(n for n, only_args in theirs.items()
                  if only_args and n in ours and not ours[n]) == []


@pytest.mark.parametrize("caps", [frozenset(), frozenset(["CAP_SYS_PTRACE"]),
                                  frozenset(["CAP_SYS_ADMIN"])])
def test_what_we_deny_beyond_crio(caps):
    """Kept out although CRI-O allows them: the kernel keyring (not
    namespaced), and mounts and namespaces without CAP_SYS_ADMIN."""
    ours = ours_allowed(set(caps), "x86_64")
    assert not {"keyctl", "vmsplice", "userfaultfd"} & set(ours)
    if "CAP_SYS_ADMIN" not in caps:
        assert not {"mount", "pivot_root", "setns", "umount2"} & set(ours)
    else:
        assert {"mount", "pivot_root", "setns"} <= set(ours)
