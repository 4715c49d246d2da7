"""/proc/self/mountinfo as records: one parser for every question the daemon
asks of the mount table (which mounts lie under a pod's directory, which
filesystem holds a path, where the cgroup hierarchies are, which candidate
directories are tmpfs).

A line (proc(5)): mount ID, parent ID, major:minor, root, mount point,
mount options, zero or more optional fields, a lone "-", filesystem type,
source, super options.  Paths escape space, tab, newline and backslash as
three octal digits after a backslash; they are unescaped here.  Any other
character, whitespace or not, appears as it is."""
from __future__ import annotations

import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    parent_id: int
    root: str           # the path within its filesystem that is mounted here
    mount_point: str
    options: str        # per-mount options ("rw,nosuid,...")
    fstype: str
    source: str
    super_options: str  # per-filesystem options ("rw,memory" for a v1 cgroup)


def unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (\\040 ...) decoded."""
    if "\\" not in field:
        return field
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_line(line: str) -> MountEntry | None:
    """One line as a record; None for a line that is not one (too short, no
    "-" separator after the optional fields)."""
    # Only " " separates fields: a path may hold any other whitespace
    # character (\x1f, \x85 ...) unescaped, which str.split() would cut at.
    fields = line.rstrip("\n").split(" ")
    if len(fields) < 7:
        return None
    try:
        sep = fields.index("-", 6)
    except ValueError:
        return None
    right = fields[sep + 1:] + ["", "", ""]
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return MountEntry(mount_id=mount_id, parent_id=parent_id, root=unescape(fields[3]),
                      mount_point=unescape(fields[4]), options=fields[5], fstype=right[0],
                      source=unescape(right[1]), super_options=right[2])


def parse(text: str) -> list[MountEntry]:
    """Every record of a mountinfo text, in the kernel's order (a later mount
    on the same point stacks over an earlier one)."""
    return [e for e in map(parse_line, text.splitlines()) if e is not None]


def read(path: str = MOUNTINFO) -> list[MountEntry]:
    with open(path) as f:
        return parse(f.read())


def under(entries: list[MountEntry], directory: str) -> list[str]:
    """Mount points at or below `directory`, each once, deepest first (the
    order to unmount them in)."""
    prefix = directory.rstrip("/") or "/"
    inside = prefix + "/" if prefix != "/" else "/"
    points = {e.mount_point for e in entries
              if e.mount_point == prefix or e.mount_point.startswith(inside)}
    return sorted(points, key=len, reverse=True)


def holding(entries: list[MountEntry], real_path: str) -> str:
    """The mount point of the filesystem that holds `real_path` (already
    resolved): the longest mount point that is it or a parent of it."""
    best = "/"
    for e in entries:
        mp = e.mount_point
        if (real_path == mp or real_path.startswith(mp.rstrip("/") + "/")) \
                and len(mp) > len(best):
            best = mp
    return best


def fstype_at(entries: list[MountEntry]) -> dict[str, str]:
    """mount point -> the filesystem type of the top mount on it (the last
    one listed)."""
    return {e.mount_point: e.fstype for e in entries}
