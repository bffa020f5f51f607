"""One writer per results folder: an exclusive ``flock`` on ``<folder>/.neuro-lock``, held for a whole run.

The kernel drops the lock when its holder exits, however it exits (a crash or SIGKILL included), so a
lock never goes stale; the file keeps the last holder's pid, host and start time for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from neuro.baselines.system import utc_now
from neuro.errors import NeuroError

LOCK_NAME = ".neuro-lock"


@contextlib.contextmanager
def hold(folder):
    """Hold ``folder``'s lock (creating the folder) until the block ends; a NeuroError naming the holder if
    another process has it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _take(fd, folder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_free(folder) -> None:
    """Fail at once, writing nothing, if another process holds ``folder``'s lock now."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _take(fd, Path(folder))
    finally:
        os.close(fd)


def _take(fd: int, folder: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        raise NeuroError(f"results folder {folder} is in use by another run ({holder}): wait for it to end, "
                         "or write into another folder") from None
