import os

MS_RDONLY: int
MS_NOSUID: int
MS_NODEV: int
MS_NOEXEC: int
MS_REMOUNT: int
MS_BIND: int
MS_REC: int
MS_PRIVATE: int
MS_SLAVE: int
MS_SHARED: int

def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str],
          fstype: str | None, flags: int = ..., data: str | None = ...) -> None: ...
def unmount(target: str | os.PathLike[str]) -> None: ...
def idmapped_tree(path: str | os.PathLike[str], userns_path: str | os.PathLike[str],
                  recursive: bool = ...) -> int: ...
