"""Atomic file writes: a temporary file beside the target, then a rename (checkpoints, records).

A failed or killed write never leaves a half-written file under the target's name: the
previous file, or none, stays until the rename.  The temporary file,
``.<name>.vmonf-tmp-<host>-<pid>-<random>``, is removed when the write fails; one that a killed
process left is removed by the next write into that folder.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> write_atomically(path, lambda file: file.write(b"all or nothing"))
>>> path.read_text(), [p.name for p in path.parent.iterdir()]
('all or nothing', ['note.txt'])
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["STALE_TEMPORARY_SECONDS", "write_atomically"]

#: A temporary file not modified for this long is stale whoever wrote it (a write is continuous).
STALE_TEMPORARY_SECONDS = 3600.0
#: Marks the temporary files of :func:`write_atomically`.
_TMP_MARK = ".vmonf-tmp-"
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _writer_is_gone(host: str, pid: int) -> bool:
    """True when process ``pid`` of this host no longer exists (POSIX; elsewhere we cannot tell)."""
    if host != _HOST or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, run by another user
        return False
    return False


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files that killed writes left in ``folder``.

    A temporary file is stale when the process named in it (host and pid) is gone, or when it has
    not been modified for :data:`STALE_TEMPORARY_SECONDS` (a reused pid, or a write from another
    machine on a shared file system).  A write in progress keeps its file: its process is alive
    and it is writing.  Files that do not carry the ``.vmonf-tmp-`` mark are never touched.
    """
    now = time.time()
    for tmp in folder.glob(f".*{_TMP_MARK}*"):
        owner = tmp.name.rsplit(_TMP_MARK, 1)[1].rsplit(
            "-", 2
        )  # host (may hold "-"), pid, random
        gone = (
            len(owner) == 3
            and owner[1].isdigit()
            and _writer_is_gone(owner[0], int(owner[1]))
        )
        try:
            if gone or now - tmp.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                tmp.unlink()
        except OSError:  # removed meanwhile by another write, or not ours to remove
            continue


def _new_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: 0o666 minus the umask."""
    umask = os.umask(0o022)  # the only way to read the umask is to set it...
    os.umask(umask)  # ...and put it back
    return 0o666 & ~umask


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file is flushed to disk before the rename and gets the permissions of a normally
    created file.  Temporary files of killed writes in the folder are removed first (see the
    module's docstring); on any failure this write's own is removed and the error raised.
    """
    path = Path(path)
    folder = path.parent
    _remove_stale_temporaries(folder)
    handle, tmp = tempfile.mkstemp(
        dir=folder, prefix=f".{path.name}{_TMP_MARK}{_HOST}-{os.getpid()}-"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, _new_file_mode())  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
