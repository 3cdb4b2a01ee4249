"""Console start-up: keep TensorFlow's native log lines off a command's terminal.

A leaf module (standard library only): ``keras_basis/__init__.py`` uses it so
that, when the process is the ``keras-basis`` command (or ``python -m
keras_basis``), TensorFlow loads quietly and a Ctrl-C during the load is one
line and exit status 130 instead of a traceback. Library users importing
``keras_basis`` from their own code are not affected.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile

__all__ = ["QUIET_ENV", "command_startup", "is_command", "quiet_environment",
           "quiet_native_stderr"]

# Environment that keeps TensorFlow's C++ (and absl/glog) logging quiet while it loads.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3", "ABSL_MIN_LOG_LEVEL": "3"}
PROG = "keras-basis"


@contextlib.contextmanager
def quiet_environment(enabled=True):
    """Set ``QUIET_ENV`` for the duration, then restore the user's variables.

    TensorFlow reads these when it loads; the user's own code (``--import``
    modules) and child processes see the environment they set.
    """
    saved = {k: os.environ.get(k) for k in QUIET_ENV}
    if enabled:
        os.environ.update(QUIET_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def quiet_native_stderr(enabled=True):
    """Send file descriptor 2 (TensorFlow's C++ logs) to a scratch file.

    Python's ``sys.stderr`` keeps writing to the terminal, so our own messages,
    warnings and progress bars stay visible.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    scratch = tempfile.TemporaryFile()
    old_stderr = sys.stderr
    os.dup2(scratch.fileno(), 2)
    sys.stderr = io.TextIOWrapper(
        os.fdopen(os.dup(saved), "wb", buffering=0), write_through=True, errors="replace"
    )
    try:
        yield
    finally:
        sys.stderr.flush()
        replacement = sys.stderr
        sys.stderr = old_stderr
        replacement.close()
        os.dup2(saved, 2)
        os.close(saved)
        scratch.close()


def is_command(argv=None):
    """Whether this process is the ``keras-basis`` command (not a library user).

    True for the console script and for ``python -m keras_basis`` (while a
    ``-m`` target is being located, ``sys.argv[0]`` is ``"-m"``), unless
    ``--debug`` is among the arguments.
    """
    argv = sys.argv if argv is None else argv
    if not argv or "--debug" in argv[1:]:
        return False
    return os.path.basename(argv[0]) == PROG or argv[0] == "-m"


@contextlib.contextmanager
def command_startup(enabled=None):
    """Load the package's dependencies quietly when the process is the command.

    Under ``is_command()``: ``QUIET_ENV`` while loading (the user's values put
    back after), TensorFlow's fd-2 lines to a scratch file, and a Ctrl-C is one
    line on stderr and exit status 130. Otherwise it does nothing.
    """
    if enabled is None:
        enabled = is_command()
    if not enabled:
        yield
        return
    try:
        with quiet_environment(), quiet_native_stderr():
            yield
    except KeyboardInterrupt:
        try:
            print(f"{PROG}: interrupted", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        raise SystemExit(130) from None
