"""The ``keras-basis`` command line (also ``python -m keras_basis``).

Subcommands: ``compress``, ``report``, ``export``, ``bench`` and ``demo``, one
module each (``register`` adds its parser, ``run`` does the work); ``app``
wires them, ``options`` holds the flags they share, ``io_helpers`` the file,
model and image loading. Run ``keras-basis COMMAND --help`` for the options
and examples of each.

Errors are printed as one line on stderr with a non-zero exit status
(``--debug`` shows the traceback and TensorFlow's own log lines instead).
"""

from keras_basis.cli.app import COMMANDS, PROG, build_parser, command_parser, main, run_command
from keras_basis.cli.io_helpers import CLIError

__all__ = [
    "CLIError", "COMMANDS", "PROG", "build_parser", "command_parser", "main", "run_command",
]
