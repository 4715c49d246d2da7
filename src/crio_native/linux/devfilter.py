"""OCI device cgroup rules as a cgroup v2 device filter: an eBPF program of
type BPF_PROG_TYPE_CGROUP_DEVICE, as runc's and crun's devicefilter make.

cgroup v2 has no devices controller; the kernel runs the programs attached
to the group (BPF_CGROUP_DEVICE) on every open and mknod of a device node
and refuses the access when one returns 0.  This module only decides the
instructions (pure, no I/O); `crio_native._native.bpf` loads and attaches.

Semantics are the OCI spec's and runc's: the rules apply in order, so the
LAST rule that matches an access decides it (the program tests them in
reverse and returns at the first match), and an access no rule matches is
denied.  A rule's type `a` (or none) matches block and char devices; an
absent or -1 major/minor matches any number; `access` is a subset of "rwm"
(absent means "rwm") and the rule matches an access only when every
requested bit is in it.  Rules before one that matches everything (`a`,
both numbers wild, "rwm") can never decide anything and are left out, so
the program never holds unreachable code (the verifier refuses that)."""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from crio_native.errors import InvalidArgument

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
# access_type is (access << 16) | type.
CTX_ACCESS_TYPE, CTX_MAJOR, CTX_MINOR = 0, 4, 8
DEV_BLOCK, DEV_CHAR = 1, 2                      # BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4        # BPF_DEVCG_ACC_*
TYPE_BITS = {"b": DEV_BLOCK, "c": DEV_CHAR}
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

# The few eBPF opcodes the program uses (linux/bpf_common.h + bpf.h).
LDX_MEM_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W:  dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54    # BPF_ALU | BPF_AND | BPF_K:  dst = (u32)(dst & imm)
ALU32_RSH_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K:  dst = (u32)dst >> imm
ALU32_MOV_K = 0xB4    # BPF_ALU | BPF_MOV | BPF_K:  dst = (u32)imm
ALU32_MOV_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X:  dst = (u32)src
JMP_JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K:  if dst != imm: pc += off
JMP_JNE_X = 0x5D      # BPF_JMP | BPF_JNE | BPF_X:  if dst != src: pc += off
JMP_EXIT = 0x95       # BPF_JMP | BPF_EXIT:         return r0

R0, R1, R2, R3, R4, R5 = range(6)
# Registers the prologue fills (R1 holds the ctx pointer until then and is
# a scratch register after it).
REG_TYPE, REG_ACCESS, REG_MAJOR, REG_MINOR, REG_TMP = R2, R3, R4, R5, R1

MAX_NUMBER = 2**31 - 1   # an immediate is a signed 32-bit value


@dataclass(frozen=True)
class Insn:
    """One struct bpf_insn."""
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self, byteorder: str = sys.byteorder) -> bytes:
        # u8 code; u8 dst_reg:4, src_reg:4 (bitfield order follows the
        # byte order); s16 off; s32 imm
        if byteorder == "little":
            return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)
        return struct.pack(">BBhi", self.code, (self.dst << 4) | self.src, self.off, self.imm)


INSN_SIZE = 8


@dataclass(frozen=True)
class DeviceRule:
    allow: bool
    type: str                  # "a", "b" or "c"
    major: int | None          # None: any
    minor: int | None
    access: int                # ACC_* bits

    @property
    def matches_everything(self) -> bool:
        return (self.type == "a" and self.major is None and self.minor is None
                and self.access == ALL_ACCESS)


def _number(value: Any, where: str) -> int | None:
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NUMBER:
        raise InvalidArgument(f"{where}: want a device number from 0 to {MAX_NUMBER}, "
                              f"or -1 (any), not {value!r}")
    return value


def rule_from_oci(rule: Any, where: str) -> DeviceRule:
    """A validated DeviceRule from one OCI linux.resources.devices entry;
    `where` names it in errors (`config.json: linux.resources.devices[2]`)."""
    if not isinstance(rule, dict):
        raise InvalidArgument(f"{where}: must be an object")
    dtype = rule.get("type") or "a"
    access = rule.get("access") or "rwm"
    if dtype not in ("a", "b", "c"):
        raise InvalidArgument(f"{where}.type: {dtype!r}: want a, b or c")
    if not isinstance(access, str) or not set(access) <= set(ACCESS_BITS):
        raise InvalidArgument(f"{where}.access: {access!r}: want a subset of \"rwm\"")
    bits = 0
    for ch in access:
        bits |= ACCESS_BITS[ch]
    return DeviceRule(bool(rule.get("allow")), dtype, _number(rule.get("major"), f"{where}.major"),
                      _number(rule.get("minor"), f"{where}.minor"), bits)


def _prologue() -> list[Insn]:
    return [
        Insn(LDX_MEM_W, REG_TYPE, R1, CTX_ACCESS_TYPE),
        Insn(ALU32_AND_K, REG_TYPE, imm=0xFFFF),
        Insn(LDX_MEM_W, REG_ACCESS, R1, CTX_ACCESS_TYPE),
        Insn(ALU32_RSH_K, REG_ACCESS, imm=16),
        Insn(LDX_MEM_W, REG_MAJOR, R1, CTX_MAJOR),
        Insn(LDX_MEM_W, REG_MINOR, R1, CTX_MINOR),
    ]


def _verdict(allow: bool) -> list[Insn]:
    return [Insn(ALU32_MOV_K, R0, imm=1 if allow else 0), Insn(JMP_EXIT)]


def _rule_block(rule: DeviceRule) -> list[Insn]:
    """Tests that jump past the block when the access does not match (offset
    filled in below: -1 marks "to the end"), then the verdict."""
    tests: list[Insn] = []
    if rule.type != "a":
        tests.append(Insn(JMP_JNE_K, REG_TYPE, off=-1, imm=TYPE_BITS[rule.type]))
    if rule.access != ALL_ACCESS:
        # every requested bit must be in the rule: (access & rule) == access
        tests += [Insn(ALU32_MOV_X, REG_TMP, REG_ACCESS),
                  Insn(ALU32_AND_K, REG_TMP, imm=rule.access),
                  Insn(JMP_JNE_X, REG_TMP, REG_ACCESS, off=-1)]
    if rule.major is not None:
        tests.append(Insn(JMP_JNE_K, REG_MAJOR, off=-1, imm=rule.major))
    if rule.minor is not None:
        tests.append(Insn(JMP_JNE_K, REG_MINOR, off=-1, imm=rule.minor))
    block = tests + _verdict(rule.allow)
    end = len(block)
    return [Insn(i.code, i.dst, i.src, end - n - 1, i.imm) if i.off == -1 else i
            for n, i in enumerate(block)]


def instructions(rules: Sequence[DeviceRule]) -> list[Insn]:
    """The program for `rules` (in spec order): last match wins, else deny."""
    out = _prologue()
    for rule in reversed(rules):
        out += _rule_block(rule)
        if rule.matches_everything:
            return out        # the rules before it are unreachable
    return out + _verdict(False)


def encode(insns: Sequence[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def program_from_rules(rules: Sequence[Any], field: str = "linux.resources.devices") -> bytes:
    """struct bpf_insn[] bytes for a list of OCI device rules (dicts)."""
    parsed = [rule_from_oci(r, f"config.json: {field}[{i}]") for i, r in enumerate(rules)]
    return encode(instructions(parsed))
