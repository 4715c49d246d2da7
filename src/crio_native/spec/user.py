"""process.user: who the container runs as, from the request's run_as_* fields
or the image's USER, resolved against the rootfs's /etc/passwd and /etc/group
(Kubernetes' rules), plus supplemental groups under Merge or Strict policy."""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

MAX_ID = 2**32 - 2      # (uid_t)-1 is "no id"
SC = "linux.security_context"


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def parse_passwd(text: str) -> list[PasswdEntry]:
    """passwd(5) lines; malformed lines are skipped as glibc does."""
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 7 or line.startswith("#"):
            continue
        try:
            out.append(PasswdEntry(parts[0], int(parts[2]), int(parts[3]), parts[5]))
        except ValueError:
            continue
    return out


def parse_group(text: str) -> list[GroupEntry]:
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 4 or line.startswith("#"):
            continue
        try:
            members = tuple(m for m in parts[3].split(",") if m)
            out.append(GroupEntry(parts[0], int(parts[2]), members))
        except ValueError:
            continue
    return out


def read_in_rootfs(rootfs: str, path: str, limit: int = 4 * 1024 * 1024) -> str:
    """A file of the image, with symlinks resolved inside `rootfs` so an image
    cannot point /etc/passwd at the host's.  "" when absent or unreadable."""
    if not rootfs:
        return ""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            resolved = resolved[:-1]
            continue
        if part == ".":
            continue
        here = os.path.join(rootfs, *resolved, part)
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                return ""
            target = os.readlink(here)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    try:
        with open(os.path.join(rootfs, *resolved), "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES):
            return ""
        raise


@dataclass(frozen=True)
class UserDB:
    passwd: tuple[PasswdEntry, ...] = ()
    group: tuple[GroupEntry, ...] = ()

    @classmethod
    def from_rootfs(cls, rootfs: str) -> "UserDB":
        return cls(tuple(parse_passwd(read_in_rootfs(rootfs, "/etc/passwd"))),
                   tuple(parse_group(read_in_rootfs(rootfs, "/etc/group"))))

    def user_by_name(self, name: str) -> PasswdEntry | None:
        return next((p for p in self.passwd if p.name == name), None)

    def user_by_uid(self, uid: int) -> PasswdEntry | None:
        return next((p for p in self.passwd if p.uid == uid), None)

    def group_by_name(self, name: str) -> GroupEntry | None:
        return next((g for g in self.group if g.name == name), None)

    def groups_of(self, name: str) -> list[int]:
        return [g.gid for g in self.group if name in g.members]


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    name: str = ""      # the passwd name, for /etc/group membership
    home: str = ""


def _numeric(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        return value if value <= MAX_ID else None
    return None


def _image_error(user: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"{RPC}: image config User {user!r}: {reason}")


def resolve_image_user(spec_user: str, db: UserDB) -> ResolvedUser:
    """USER as the image spec allows it: name, uid, uid:gid, name:group, ..."""
    if not spec_user:
        root = db.user_by_uid(0)
        return ResolvedUser(0, root.gid if root else 0, root.name if root else "root",
                            root.home if root else "/root")
    user_part, _, group_part = spec_user.partition(":")
    uid = _numeric(user_part)
    entry = db.user_by_uid(uid) if uid is not None else db.user_by_name(user_part)
    if uid is None:
        if entry is None:
            raise _image_error(spec_user, f"no user {user_part!r} in the image's /etc/passwd")
        uid = entry.uid
    gid = entry.gid if entry else 0
    if group_part:
        gid = _group_id(group_part, db, spec_user)
    return ResolvedUser(uid, gid, entry.name if entry else "", entry.home if entry else "")


def _group_id(group: str, db: UserDB, spec_user: str) -> int:
    gid = _numeric(group)
    if gid is not None:
        return gid
    entry = db.group_by_name(group)
    if entry is None:
        raise _image_error(spec_user, f"no group {group!r} in the image's /etc/group")
    return entry.gid


def resolve_user(inputs: SpecInputs, db: UserDB) -> ResolvedUser:
    """run_as_user / run_as_username override the image's USER; run_as_group
    overrides the group and needs one of them (as CRI-O insists)."""
    sc = inputs.security
    has_group = sc.HasField("run_as_group")
    if sc.HasField("run_as_user"):
        uid = sc.run_as_user.value
        if not 0 <= uid <= MAX_ID:
            raise invalid(f"{SC}.run_as_user", f"{uid} is not a valid uid")
        entry = db.user_by_uid(uid)
        user = ResolvedUser(uid, entry.gid if entry else 0, entry.name if entry else "",
                            entry.home if entry else "")
    elif sc.run_as_username:
        entry = db.user_by_name(sc.run_as_username)
        if entry is None:
            raise invalid(f"{SC}.run_as_username",
                          f"no user {sc.run_as_username!r} in the image's /etc/passwd")
        user = ResolvedUser(entry.uid, entry.gid, entry.name, entry.home)
    else:
        if has_group:
            raise invalid(f"{SC}.run_as_group", "needs run_as_user or run_as_username")
        return resolve_image_user(str(inputs.image.get("User") or ""), db)
    if has_group:
        gid = sc.run_as_group.value
        if not 0 <= gid <= MAX_ID:
            raise invalid(f"{SC}.run_as_group", f"{gid} is not a valid gid")
        user = ResolvedUser(user.uid, gid, user.name, user.home)
    return user


def supplemental_groups(inputs: SpecInputs, user: ResolvedUser, db: UserDB) -> list[int]:
    """Primary gid first (as containerd lists it), then /etc/group membership
    (Merge only), then the request's groups; duplicates dropped."""
    sc = inputs.security
    groups = [user.gid]
    if sc.supplemental_groups_policy == api_pb2.Merge and user.name:
        groups += db.groups_of(user.name)
    elif sc.supplemental_groups_policy not in (api_pb2.Merge, api_pb2.Strict):
        raise invalid(f"{SC}.supplemental_groups_policy",
                      f"unknown policy {sc.supplemental_groups_policy}")
    for i, gid in enumerate(sc.supplemental_groups):
        if not 0 <= gid <= MAX_ID:
            raise invalid(f"{SC}.supplemental_groups[{i}]", f"{gid} is not a valid gid")
        groups.append(gid)
    return list(dict.fromkeys(groups))


def with_user(build: SpecBuild, inputs: SpecInputs) -> None:
    db = UserDB.from_rootfs(inputs.rootfs)
    user = resolve_user(inputs, db)
    build.process["user"] = {"uid": user.uid, "gid": user.gid,
                             "additionalGids": supplemental_groups(inputs, user, db)}
    env = build.process.setdefault("env", [])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home or '/'}")
