import os

PROG_TYPE_CGROUP_DEVICE: int
CGROUP_DEVICE: int
F_ALLOW_MULTI: int
INSN_SIZE: int
LOG_SIZE: int
MAX_ATTACHED: int

def prog_load(prog_type: int, insns: bytes, license: str, name: str = ...) -> int: ...
def cgroup_attach(prog_fd: int, cgroup: str | os.PathLike[str], attach_type: int,
                  flags: int = ...) -> None: ...
def cgroup_query(cgroup: str | os.PathLike[str], attach_type: int) -> list[int]: ...
def cgroup_detach(cgroup: str | os.PathLike[str], attach_type: int, prog_id: int) -> None: ...
