import os
from typing import Mapping

CLONE_NEWNS: int
CLONE_NEWCGROUP: int
CLONE_NEWUTS: int
CLONE_NEWIPC: int
CLONE_NEWUSER: int
CLONE_NEWPID: int
CLONE_NEWNET: int
CLONE_NEWTIME: int
NS_FILES: dict[str, int]

def unshare(flags: int) -> None: ...
def join(path: str | os.PathLike[str], nstype: int = ...) -> None: ...
def pin(ns_path: str | os.PathLike[str], pin_path: str | os.PathLike[str]) -> None: ...
def unpin(pin_path: str | os.PathLike[str]) -> None: ...
def create_pinned(pins: Mapping[str, str | os.PathLike[str]]) -> None: ...
def create_pinned_userns(pins: Mapping[str, str | os.PathLike[str]], uid_map: str,
                         gid_map: str) -> None: ...
