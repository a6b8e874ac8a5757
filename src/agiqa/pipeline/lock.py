"""One writer per output file: ``output_lock(out)`` holds ``OUT.lock`` for the length of a run.

The lock is ``fcntl.flock`` on ``OUT.lock``: the kernel releases it when its holder exits, however it exits, so a
run killed with ``kill -9`` leaves no lock that blocks the next one (the file may stay; it is free). The holder
writes who it is into the file, so the run that is refused can say which process holds it. Where ``fcntl`` does
not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class OutputLocked(RuntimeError):
    """Another run is writing the same output file.

    Attributes:
        holder: What the holding run wrote about itself (pid, host, start time, command), or "".
    """

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def lock_path(out: str | Path) -> Path:
    """The lock file of the output ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the lock of ``out`` inside the ``with`` block; yields the lock file.

    Raises:
        OutputLocked: Another live process holds it (the message names that process).
    """
    path = lock_path(out)
    if fcntl is None:
        yield path
        return
    fd = _acquire(path, Path(out))
    try:
        os.ftruncate(fd, 0)
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {command}\n".encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still holding it: a run waiting on this inode sees it gone and retries
        os.close(fd)


def _acquire(path: Path, out: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1000, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise OutputLocked(
                f"{out} is being written by another run ({holder or 'a process that is just starting'}); wait "
                f"for it to finish or choose another output file (the lock is {path}; it frees itself when that "
                "process exits)",
                holder,
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: take the new one
