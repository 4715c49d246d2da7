"""The launch plan's wire format, Python side.  src/_native/plan.h is the
reference: magic "CRNPLAN1", then records of (u16 type, u16 0, u32 length,
payload), integers in host byte order, strings NUL-terminated."""
from __future__ import annotations

import struct
from enum import IntEnum
from typing import Iterable, NamedTuple

MAGIC = b"CRNPLAN1"


class Rec(IntEnum):
    NS_NEW = 1
    NS_JOIN = 2
    ID_MAP = 3
    ROOTFS = 10
    ROOT_PROPAGATION = 11
    ROOT_READONLY = 12
    MOUNT = 13
    DEVICE = 14
    SYMLINK = 15
    MASK = 16
    READONLY_PATH = 17
    HOSTNAME = 20
    DOMAINNAME = 21
    RLIMIT = 22
    OOM_SCORE_ADJ = 23
    UMASK = 24
    USER = 25
    CAPS = 26
    NO_NEW_PRIVS = 27
    CWD = 28
    ARG = 29
    ENV = 30
    SECCOMP = 31
    BARRIER = 32
    CGROUP_PROCS = 33
    CGROUP_INTO = 34
    SYSCTL = 35
    HOOK_PAUSE = 36
    CONTROLLING_TTY = 37
    SELINUX_LABEL = 40
    PERSONALITY = 41
    START_HOOK = 42
    START_RESULT = 43
    CONSOLE = 44
    SECCOMP_LISTENER = 45
    NO_PIVOT = 60               # rootfs/mount records: 60 and up
    MOUNT_LABEL = 61
    CHROOT = 62
    APPARMOR = 70               # LSM records: 70 and up
    LANDLOCK = 71
    LANDLOCK_PATH = 72
    LANDLOCK_PORT = 73


# Field letters as in plan.h: I u32, i s32, Q u64, s string, b bytes, G u32 list.
LAYOUTS: dict[Rec, str] = {
    Rec.NS_NEW: "I", Rec.NS_JOIN: "Is", Rec.ID_MAP: "IIII", Rec.ROOTFS: "s",
    Rec.ROOT_PROPAGATION: "Q", Rec.ROOT_READONLY: "", Rec.MOUNT: "QQIssss",
    Rec.DEVICE: "IIIIIs", Rec.SYMLINK: "ss", Rec.MASK: "s", Rec.READONLY_PATH: "s",
    Rec.HOSTNAME: "s", Rec.DOMAINNAME: "s", Rec.RLIMIT: "IQQ", Rec.OOM_SCORE_ADJ: "i",
    Rec.UMASK: "I", Rec.USER: "IIG", Rec.CAPS: "QQQQQI", Rec.NO_NEW_PRIVS: "",
    Rec.CWD: "s", Rec.ARG: "s", Rec.ENV: "s", Rec.SECCOMP: "Ib", Rec.BARRIER: "s",
    Rec.CGROUP_PROCS: "s", Rec.CGROUP_INTO: "s", Rec.SYSCTL: "ss", Rec.HOOK_PAUSE: "",
    Rec.CONTROLLING_TTY: "", Rec.SELINUX_LABEL: "s", Rec.PERSONALITY: "I",
    Rec.START_HOOK: "IIsb", Rec.START_RESULT: "s", Rec.CONSOLE: "",
    Rec.SECCOMP_LISTENER: "sb",
    Rec.NO_PIVOT: "", Rec.MOUNT_LABEL: "s", Rec.CHROOT: "s",
    Rec.APPARMOR: "s", Rec.LANDLOCK: "IQQQ", Rec.LANDLOCK_PATH: "Qs", Rec.LANDLOCK_PORT: "QQ",
}

# plan.h: CRN_HOOK_MAX_STRS, CRN_START_STATE_MAX
HOOK_MAX_STRS = 256
START_STATE_MAX = 256 * 1024

# enum crn_mount_kind
MOUNT_FS = 0
MOUNT_BIND = 1
MOUNT_DEST_FILE = 0x100
MOUNT_RRO = 0x200
MOUNT_LABEL_XATTR = 0x400
MOUNT_IDMAP = 0x800          # through the joined user namespace (KEP-127)

# plan.h: CRN_LABEL_MAX
LABEL_MAX = 4096


class Record(NamedTuple):
    type: Rec
    fields: tuple

    def __repr__(self) -> str:
        return f"{self.type.name}{self.fields!r}"


def rec(type_: Rec, *fields) -> Record:
    return Record(type_, tuple(fields))


def _pack_field(letter: str, value) -> bytes:
    if letter == "I":
        return struct.pack("=I", value)
    if letter == "i":
        return struct.pack("=i", value)
    if letter == "Q":
        return struct.pack("=Q", value)
    if letter == "s":
        data = value.encode() if isinstance(value, str) else bytes(value)
        if b"\0" in data:
            raise ValueError(f"string field contains NUL: {value!r}")
        return data + b"\0"
    if letter == "b":
        return bytes(value)
    if letter == "G":
        return struct.pack(f"=I{len(value)}I", len(value), *value)
    raise ValueError(letter)


def encode_record(r: Record) -> bytes:
    layout = LAYOUTS[r.type]
    if len(layout) != len(r.fields):
        raise ValueError(f"{r.type.name}: expects {len(layout)} fields, got {len(r.fields)}")
    payload = b"".join(_pack_field(letter, v) for letter, v in zip(layout, r.fields))
    return struct.pack("=HHI", r.type, 0, len(payload)) + payload


def encode(records: Iterable[Record]) -> bytes:
    return MAGIC + b"".join(encode_record(r) for r in records)


def _unpack_fields(layout: str, payload: bytes) -> tuple:
    out, pos = [], 0
    for letter in layout:
        if letter in "Ii":
            out.append(struct.unpack_from("=" + letter, payload, pos)[0])
            pos += 4
        elif letter == "Q":
            out.append(struct.unpack_from("=Q", payload, pos)[0])
            pos += 8
        elif letter == "s":
            end = payload.index(b"\0", pos)
            out.append(payload[pos:end].decode(errors="surrogateescape"))
            pos = end + 1
        elif letter == "b":
            out.append(payload[pos:])
            pos = len(payload)
        elif letter == "G":
            (n,) = struct.unpack_from("=I", payload, pos)
            out.append(tuple(struct.unpack_from(f"={n}I", payload, pos + 4)))
            pos += 4 + 4 * n
    if pos != len(payload):
        raise ValueError("trailing bytes in record")
    return tuple(out)


def decode(buf: bytes) -> list[Record]:
    """The records of a plan, in buffer order (for tests and debugging)."""
    if not buf.startswith(MAGIC):
        raise ValueError("bad plan magic")
    out, pos = [], len(MAGIC)
    while pos < len(buf):
        type_, _zero, length = struct.unpack_from("=HHI", buf, pos)
        payload = buf[pos + 8:pos + 8 + length]
        t = Rec(type_)
        out.append(Record(t, _unpack_fields(LAYOUTS[t], payload)))
        pos += 8 + length
    return out
