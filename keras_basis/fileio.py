"""Atomic file writes: the one helper every writer in keras-basis uses.

A file is written to a collision-free temporary name in the target's folder
(``tempfile.mkstemp``: unique per process and call), flushed and fsync'ed, given
the usual permissions (0666 minus the umask, not mkstemp's 0600) and moved onto
the target with ``os.replace``. A failure at any point leaves the target as it
was and removes the temporary file. Temporary names start with ``.`` + the
target's name + ``.kbtmp-``, then the writer's host tag and process id, and keep its
suffix; ``clean_stale_temps`` removes ones left by a killed process: at once when
that process was on this host and is gone, else once older than an hour (so a
live concurrent writer is never touched).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import tempfile
import time

__all__ = ["TEMP_MARK", "atomic_write", "clean_stale_temps", "write_bytes", "write_text"]

TEMP_MARK = ".kbtmp-"
STALE_AFTER_S = 3600.0


def _host_tag():
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_prefix(path):
    return f".{path.name}{TEMP_MARK}"


def _own_prefix(path):
    """Temp prefix of this process: target, mark, host tag and pid."""
    return f"{_temp_prefix(path)}{_host_tag()}-{os.getpid()}-"


def _writer_gone(tmp, path):
    """Whether ``tmp`` was made by a process of this host that no longer exists."""
    rest = tmp.name[len(_temp_prefix(path)):].split("-")
    if len(rest) < 3 or rest[0] != _host_tag() or not rest[1].isdigit():
        return False  # another host, or an older name: only the age rule applies
    pid = int(rest[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: the process exists
        return False
    return False


def clean_stale_temps(path, older_than_s=STALE_AFTER_S):
    """Remove temp files of ``path`` left by killed writers; returns their paths.

    Only files named like this module's temporaries for this target are
    removed: those whose writer (named in the temp name) ran on this host and
    no longer exists, and any older than ``older_than_s`` seconds.
    """
    path = pathlib.Path(path)
    removed = []
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    try:
        candidates = list(folder.glob(f"{_temp_prefix(path)}*"))
    except OSError:
        return removed
    now = time.time()
    for tmp in candidates:
        try:
            if _writer_gone(tmp, path) or now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass
    return removed


def _fsync_file(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then move the temp file onto ``path``.

    Args:
        path: the target file (its folder must exist).
        write: a callable that writes the whole file at the path it is given
            (e.g. ``model.save``, ``fig.savefig``); its suffix is kept so
            suffix-checking writers accept it.

    Returns:
        ``pathlib.Path(path)``.

    Raises:
        Whatever ``write`` or the file system raises, with the target unchanged
        and no temp file left; an ``OSError`` names the target path.
    """
    path = pathlib.Path(path)
    clean_stale_temps(path)
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    # The suffix is kept: writers such as model.save insist on it.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_own_prefix(path), suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None:
            text = err.strerror if err.strerror else (str(err) or type(err).__name__)
            args = (f"{text} (writing {path})",)
            raise type(err)(*((err.errno,) + args if err.errno is not None else args)) from err
        raise
    finally:
        if os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass
    return path


def write_bytes(path, content):
    """Write ``content`` (bytes) to ``path`` atomically; returns the path."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(content)

    return atomic_write(path, write)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))
