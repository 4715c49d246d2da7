"""The cgroup v2 device filter: OCI device rules -> eBPF instructions.  The
program's shape is checked, and a small interpreter for the few eBPF ops it
uses runs it over (type, access, major, minor) to check the decisions.  The
kernel's verifier and the real filter are exercised by the integration
tests (tests/integration/test_device_filter.py, in the pure v2 VM).  No root."""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

from crio_native.errors import InvalidArgument
from crio_native.linux import cgroups as cg
from crio_native.linux import devfilter as df

BLOCK, CHAR = df.DEV_BLOCK, df.DEV_CHAR
M, R, W = df.ACC_MKNOD, df.ACC_READ, df.ACC_WRITE
U32 = 0xFFFFFFFF
U64 = 2**64 - 1


# ---- a tiny eBPF interpreter ---------------------------------------------------

def decode(program: bytes) -> list[tuple[int, int, int, int, int]]:
    assert len(program) % 8 == 0 and program
    out = []
    for i in range(0, len(program), 8):
        code, regs, off, imm = struct.unpack("<BBhi" if sys.byteorder == "little" else ">BBhi",
                                             program[i:i + 8])
        dst, src = (regs & 0xF, regs >> 4) if sys.byteorder == "little" else (regs >> 4, regs & 0xF)
        out.append((code, dst, src, off, imm))
    return out


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Execute the program on a struct bpf_cgroup_dev_ctx; returns r0."""
    ctx = struct.pack("=III", (access << 16) | dev_type, major, minor)
    insns = decode(program)
    regs = [0] * 11
    regs[1] = "ctx"  # the only pointer the program may load through
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps < 100_000 and 0 <= pc < len(insns), f"pc {pc} out of the program"
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == df.LDX_MEM_W:
            assert regs[src] == "ctx" and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("=I", ctx, off)[0]
        elif code == df.ALU32_AND_K:
            regs[dst] = (regs[dst] & imm) & U32
        elif code == df.ALU32_RSH_K:
            regs[dst] = (regs[dst] & U32) >> imm
        elif code == df.ALU32_MOV_K:
            regs[dst] = imm & U32
        elif code == df.ALU32_MOV_X:
            assert regs[src] != "ctx"
            regs[dst] = regs[src] & U32
        elif code == df.JMP_JNE_K:
            if regs[dst] != imm & U64:  # imm is sign-extended to 64 bits
                pc += off
        elif code == df.JMP_JNE_X:
            if regs[dst] != regs[src]:
                pc += off
        elif code == df.JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc - 1}")


def allowed(rules, dev_type, access, major, minor) -> bool:
    return run(df.program_from_rules(rules), dev_type, access, major, minor) == 1


# ---- structure -----------------------------------------------------------------

def test_insn_encoding():
    assert df.Insn(df.LDX_MEM_W, 2, 1, 4, 0).encode("little") == \
        bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert df.Insn(df.JMP_JNE_K, 4, 0, 3, 195).encode("little") == \
        bytes([0x55, 0x04, 3, 0, 195, 0, 0, 0])
    assert df.Insn(df.ALU32_MOV_K, 0, imm=1).encode("big") == bytes([0xB4, 0, 0, 0, 0, 0, 0, 1])


def test_program_shape():
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    insns = decode(df.program_from_rules(rules))
    # prologue: type, access, major, minor out of the ctx
    assert [(c, d, s, o) for c, d, s, o, _ in insns[:6]] == [
        (df.LDX_MEM_W, 2, 1, 0), (df.ALU32_AND_K, 2, 0, 0), (df.LDX_MEM_W, 3, 1, 0),
        (df.ALU32_RSH_K, 3, 0, 0), (df.LDX_MEM_W, 4, 1, 4), (df.LDX_MEM_W, 5, 1, 8)]
    assert insns[1][4] == 0xFFFF and insns[3][4] == 16
    # the allow rule (tested first): type, access subset, major, minor, verdict
    block = insns[6:14]
    assert [i[0] for i in block] == [df.JMP_JNE_K, df.ALU32_MOV_X, df.ALU32_AND_K, df.JMP_JNE_X,
                                     df.JMP_JNE_K, df.JMP_JNE_K, df.ALU32_MOV_K, df.JMP_EXIT]
    assert block[0][4] == CHAR and block[2][4] == R | W and block[4][4] == 1 and block[5][4] == 3
    assert (block[1][1], block[1][2]) == (1, 3) and (block[3][1], block[3][2]) == (1, 3)
    assert (block[6][0], block[6][4]) == (df.ALU32_MOV_K, 1)
    # every test jumps exactly to the end of its block
    for n in (0, 3, 4, 5):
        assert n + 1 + block[n][3] == len(block)
    # the deny-all rule ends the program: no default verdict after it
    assert insns[14:] == [(df.ALU32_MOV_K, 0, 0, 0, 0), (df.JMP_EXIT, 0, 0, 0, 0)]


def test_every_jump_lands_inside_and_the_program_ends_in_exit():
    rules = [{"allow": True, "type": "b", "access": "m"},
             {"allow": False, "type": "c", "major": 4, "access": "w"},
             {"allow": True, "minor": 7}] + cg.DEFAULT_DEVICE_RULES
    insns = decode(df.program_from_rules(rules))
    assert insns[-1][0] == df.JMP_EXIT
    for n, (code, _d, _s, off, _i) in enumerate(insns):
        if code in (df.JMP_JNE_K, df.JMP_JNE_X):
            assert off > 0 and n + 1 + off < len(insns)
    # no default-allow rule: the program ends with "deny"
    assert insns[-2] == (df.ALU32_MOV_K, 0, 0, 0, 0)


def test_rules_before_a_match_all_rule_are_left_out():
    tail = [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    alone = df.program_from_rules([{"allow": False, "access": "rwm"}] + tail)
    more = df.program_from_rules([{"allow": True, "type": "c", "major": 9, "access": "r"},
                                  {"allow": False}] + tail)
    assert alone == more


def test_privileged_allow_all_is_one_verdict():
    insns = decode(df.program_from_rules([{"allow": True, "access": "rwm"}]))
    assert insns[6:] == [(df.ALU32_MOV_K, 0, 0, 0, 1), (df.JMP_EXIT, 0, 0, 0, 0)]


# ---- decisions -----------------------------------------------------------------

DENY_ALL = {"allow": False, "access": "rwm"}
STANDARD = [DENY_ALL] + cg.DEFAULT_DEVICE_RULES


@pytest.mark.parametrize("dev,want", [
    ((CHAR, R | W, 1, 3), True),        # /dev/null
    ((CHAR, R, 1, 5), True),            # /dev/zero
    ((CHAR, R | W, 136, 4), True),      # a pty: minor wildcard
    ((CHAR, R | W, 5, 2), True),        # /dev/ptmx
    ((CHAR, R, 1, 11), False),          # /dev/kmsg
    ((BLOCK, R, 8, 0), False),          # /dev/sda
    ((CHAR, M, 195, 255), True),        # mknod of any char device
    ((BLOCK, M, 8, 0), True),           # ... and any block device
    ((CHAR, M | R, 195, 255), False),   # but not reading it
    ((CHAR, R, 195, 255), False),
    ((BLOCK, R, 1, 3), False),          # the type counts: b 1:3 is not /dev/null
])
def test_standard_rules(dev, want):
    assert allowed(STANDARD, *dev) is want


def test_allowing_a_device():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 195, "minor": 255, "access": "rw"}] \
        + cg.DEFAULT_DEVICE_RULES
    assert allowed(rules, CHAR, R, 195, 255)
    assert allowed(rules, CHAR, R | W, 195, 255)
    assert not allowed(rules, CHAR, R, 195, 0)
    assert not allowed(rules, BLOCK, R, 195, 255)


@pytest.mark.parametrize("rules,dev,want", [
    # last match wins: a later deny overrides an earlier allow ...
    ([{"allow": True, "type": "c", "major": 10, "access": "rwm"},
      {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "rwm"}],
     (CHAR, R, 10, 200), False),
    ([{"allow": True, "type": "c", "major": 10, "access": "rwm"},
      {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "rwm"}],
     (CHAR, R, 10, 229), True),
    # ... and a later allow an earlier deny
    ([{"allow": False, "type": "c", "major": 10, "minor": 200},
      {"allow": True, "type": "c", "major": 10}],
     (CHAR, W, 10, 200), True),
    # a deny-all at the end beats everything before it
    ([{"allow": True, "type": "c", "major": 1, "minor": 3}, DENY_ALL], (CHAR, R, 1, 3), False),
    # nothing matches: denied
    ([{"allow": True, "type": "c", "major": 1, "minor": 3}], (CHAR, R, 1, 5), False),
    ([], (CHAR, R, 1, 3), False),
])
def test_last_match_wins(rules, dev, want):
    assert allowed(rules, *dev) is want


@pytest.mark.parametrize("rule_access,asked,want", [
    ("r", R, True), ("r", W, False), ("r", R | W, False), ("rw", R | W, True),
    ("rw", W, True), ("rw", M, False), ("m", M, True), ("wm", R, False),
    ("rwm", R | W | M, True), ("", R | W, True),  # absent access means rwm
])
def test_access_subsets(rule_access, asked, want):
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 4, "minor": 1, "access": rule_access}]
    assert allowed(rules, CHAR, asked, 4, 1) is want


@pytest.mark.parametrize("rule,dev,want", [
    ({"type": "c", "major": -1, "minor": 7}, (CHAR, R, 99, 7), True),
    ({"type": "c", "major": None, "minor": 7}, (CHAR, R, 99, 8), False),
    ({"type": "c", "major": 99}, (CHAR, R, 99, 12345), True),
    ({"type": "b", "major": 8, "minor": -1}, (BLOCK, R, 8, 16), True),
    ({"type": "a", "major": 7, "minor": 0}, (BLOCK, R, 7, 0), True),
    ({"type": "a", "major": 7, "minor": 0}, (CHAR, R, 7, 0), True),
    ({"major": 7, "minor": 0}, (CHAR, R, 7, 1), False),
    ({"type": "c"}, (CHAR, W, 2**20 - 1, 2**20 - 1), True),
    ({"type": "c"}, (BLOCK, W, 1, 1), False),
])
def test_wildcards(rule, dev, want):
    assert allowed([DENY_ALL, {"allow": True, "access": "rwm", **rule}], *dev) is want


def test_allow_all_for_privileged():
    rules = [{"allow": True, "access": "rwm"}] + cg.DEFAULT_DEVICE_RULES
    for dev in ((CHAR, R | W | M, 195, 255), (BLOCK, R | W, 8, 0), (CHAR, R, 1, 11)):
        assert allowed(rules, *dev)


def test_deny_only_list_denies_what_it_names_and_everything_else():
    # no rule ever allows: like runc's filter, nothing matched means deny
    rules = [{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwm"}]
    assert not allowed(rules, CHAR, R, 1, 11)
    assert not allowed(rules, CHAR, R, 1, 3)


# ---- errors and the cgroup plan ------------------------------------------------

@pytest.mark.parametrize("rule,match", [
    ("a", r"devices\[0\]: must be an object"),
    ({"type": "x"}, r"devices\[0\]\.type: 'x'"),
    ({"access": "rx"}, r"devices\[0\]\.access"),
    ({"major": 2**31}, r"devices\[0\]\.major"),
    ({"minor": -2}, r"devices\[0\]\.minor"),
    ({"minor": "1"}, r"devices\[0\]\.minor"),
])
def test_bad_rules_name_the_field(rule, match):
    with pytest.raises(InvalidArgument, match=r"linux\.resources\." + match):
        df.program_from_rules([rule])


def pure():
    return [(cg.Hierarchy(Path("/sys/fs/cgroup"), 2, frozenset({"cpu", "memory", "pids"})), "/")]


HYBRID_WITH_DEVICES = """\
30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""


def test_pure_v2_plan_carries_the_program():
    resources = {"devices": [DENY_ALL]}
    plan = cg.plan_cgroups("c", resources, pure(), {"": "/"})
    assert plan.writes == []
    assert plan.device_program == df.program_from_rules([DENY_ALL] + cg.DEFAULT_DEVICE_RULES)


def test_no_rules_no_program():
    assert cg.plan_cgroups("c", {"pids": {"limit": 5}}, pure(), {"": "/"}).device_program is None


def test_v1_devices_controller_gets_the_lines_not_a_program():
    hs = [(cg.Hierarchy(h.mountpoint, h.version, frozenset() if h.version == 2 else h.controllers),
           root) for h, root in cg.host_hierarchies(HYBRID_WITH_DEVICES)]
    plan = cg.plan_cgroups("c", {"devices": [DENY_ALL]}, hs, {"": "/", "devices": "/",
                                                                "memory": "/"})
    assert plan.device_program is None
    assert plan.writes[0] == (Path("/sys/fs/cgroup/devices/c/devices.deny"), "a")
    assert len(plan.writes) == 1 + len(cg.DEFAULT_DEVICE_RULES)


class FakeBpf:
    """Stands in for crio_native._native.bpf: records calls, can fail one."""
    PROG_TYPE_CGROUP_DEVICE, CGROUP_DEVICE, F_ALLOW_MULTI = 15, 6, 2

    def __init__(self, attached=(), fail=None):
        self.attached = list(attached)
        self.calls = []
        self.fail = fail

    def _maybe_fail(self, what):
        if self.fail == what:
            raise PermissionError(1, f"bpf {what}: Operation not permitted")

    def prog_load(self, prog_type, insns, license, name=""):
        self.calls.append(("load", prog_type, license))
        self._maybe_fail("BPF_PROG_LOAD")
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # closed by the caller

    def cgroup_attach(self, fd, group, attach_type, flags=0):
        self.calls.append(("attach", str(group), flags))
        self._maybe_fail("BPF_PROG_ATTACH")
        self.attached.append(1000 + len(self.attached))

    def cgroup_query(self, group, attach_type):
        return list(self.attached)

    def cgroup_detach(self, group, attach_type, prog_id):
        self.calls.append(("detach", prog_id))
        self.attached.remove(prog_id)


@pytest.fixture
def fake_bpf(monkeypatch):
    import crio_native._native as pkg

    def install(**kw):
        fake = FakeBpf(**kw)
        monkeypatch.setattr(pkg, "bpf", fake, raising=False)
        monkeypatch.setitem(sys.modules, "crio_native._native.bpf", fake)
        return fake
    return install


def test_replace_attaches_then_detaches_the_old(fake_bpf):
    fake = fake_bpf(attached=[7, 8])
    cg.replace_device_filter(Path("/sys/fs/cgroup/c"), b"\0" * 8)
    assert fake.calls == [("load", 15, "Apache"), ("attach", "/sys/fs/cgroup/c", 2),
                          ("detach", 7), ("detach", 8)]
    assert fake.attached == [1002]


@pytest.mark.parametrize("what", ["BPF_PROG_LOAD", "BPF_PROG_ATTACH"])
def test_bpf_failure_names_the_field(fake_bpf, what):
    fake = fake_bpf(attached=[7], fail=what)
    with pytest.raises(cg.FailedPrecondition, match=r"linux\.resources\.devices: .*" + what):
        cg.replace_device_filter(Path("/sys/fs/cgroup/c"), b"\0" * 8)
    assert fake.attached == [7]  # the old filter stays when the new one is not in
