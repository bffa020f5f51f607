"""The one exception type for user mistakes: its message is a single line naming the problem and the fix."""

import errno


class NeuroError(Exception):
    """A problem with the user's input (file, model, data, options), reported in one line.

    The CLI prints ``error: <message>`` and exits with status 2 instead of a traceback.
    """


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT (not caught by ``except Exception``)."""


_FIXES = {errno.ENOSPC: "free some space, then run again", errno.EACCES: "use a path you may write to",
          errno.EPERM: "use a path you may write to", errno.EROFS: "the disk is read-only: use another path",
          errno.ENOTDIR: "part of the path is a file, not a folder: fix the path",
          errno.EISDIR: "that is a folder: give a file name", errno.EEXIST: "a file stands where a folder should be: fix the path",
          errno.ENOENT: "check the path"}


def os_error(e: OSError) -> NeuroError:
    """An operating-system failure (disk full, read-only, a file where a folder should be...) as one line."""
    path = e.filename2 or e.filename  # a rename names its destination second
    where = f" ({path})" if path else ""
    what = " ".join(str(e.strerror or e).split())
    return NeuroError(f"{what}{where}: {_FIXES.get(e.errno, 'check the path and the disk')}")
