"""The entry point: a registry of subcommands wired into one parser.

Each subcommand is a module of this package with ``register(subparsers,
prog, common)`` (adds its parser, sets ``run``) and ``run(args)`` (does the
work, returns the exit status); ``COMMANDS`` lists them in ``--help`` order.
``run_command`` gives one subcommand a parser of its own, for the scripts of
``tflite/``.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_basis.cli import bench, compress, demo, export, options, profile, report
from keras_basis.cli.io_helpers import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_TO_DO,
    CLIError,
    NothingToDo,
    error_text,
    import_modules,
    quiet_environment,
    quiet_native_stderr,
    quiet_python_logs,
)

PROG = "keras-basis"
COMMANDS = {module.NAME: module for module in (compress, report, export, bench, profile, demo)}
DESCRIPTION = (
    "Compress Keras 3 CNNs with learned filter bases (Li et al., ICCV 2019) "
    "and export them to TFLite (LiteRT)."
)
EXAMPLES = (
    "demo --output-dir demo-output",
    "compress model.keras small.keras --ratio 0.3",
    "report small.keras --plot spectra.png",
    "export small.keras small.tflite --quantize int8 --calibration-dir images/",
    "bench model.tflite small.tflite",
    "profile model.keras --quantize int8 --out table.json",
)
EXIT_STATUS = (
    "exit status: 0 done; 1 error (one line on stderr); 2 usage error; 3 nothing to do "
    "(compress found no layer to compress: nothing saved); 130 interrupted (Ctrl-C)"
)


class _Version(argparse.Action):
    """``--version``: imports the package version only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from keras_basis import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit(0)


def _common():
    common = options.Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks and TensorFlow's log lines",
    )
    return common


def build_parser():
    """The ``keras-basis`` parser with every subcommand of ``COMMANDS``."""
    parser = options.Parser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=options.examples(PROG, *EXAMPLES) + "\n\n" + EXIT_STATUS,
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.Parser)
    sub.required = True
    common = [_common()]
    for name, module in COMMANDS.items():
        module.register(sub, f"{PROG} {name}", common)
    return parser


class _Standalone:
    """Stands in for ``add_subparsers()`` so a command's parser is the top level."""

    def __init__(self, prog):
        self.prog = prog
        self.parser = None

    def add_parser(self, name, **kwargs):
        kwargs.pop("help", None)
        self.parser = options.Parser(prog=self.prog, **kwargs)
        self.parser.set_defaults(command=name)
        return self.parser


def _load_libraries(args):
    """Import Keras, TensorFlow and keras_basis quietly, then the ``--import`` modules.

    TensorFlow's native start-up lines go to a scratch file (fd 2) under
    ``QUIET_ENV``; the user's environment is restored before their modules run.
    """
    with quiet_environment(enabled=not args.debug):
        import keras  # noqa: F401  (loads the backend, TensorFlow by default)

        import keras_basis  # noqa: F401
    if not args.debug:
        quiet_python_logs()
    import_modules(getattr(args, "imports", None))


def _execute(args, label):
    """Run ``args.run`` with one-line errors; returns the exit status."""
    try:
        with quiet_native_stderr(enabled=not args.debug):
            _load_libraries(args)
            return args.run(args)
    except NothingToDo as err:
        print(f"{label}: nothing to do: {err}", file=sys.stderr)
        return EXIT_NOTHING_TO_DO
    except CLIError as err:
        print(f"{label}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.debug:
            raise
        print(f"{label}: error: {error_text(err)}", file=sys.stderr)
        return EXIT_ERROR


def _guarded(label, start):
    """``start()`` (parse and execute), with Ctrl-C at any point one line, status 130."""
    try:
        return start()
    except KeyboardInterrupt:
        try:
            print(f"{label}: interrupted", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        return EXIT_INTERRUPTED


def main(argv=None):
    """Entry point of ``keras-basis``; returns the exit status.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success, 1 on an error (one line on stderr), 2 on a usage error,
        3 when there is nothing to do (``compress`` found no layer to
        compress), 130 when interrupted (Ctrl-C, at any time).

    Example:

    >>> main(["report", "model.keras"])
    0
    """

    def start():
        args = build_parser().parse_args(argv)
        return _execute(args, f"{PROG} {args.command}")

    return _guarded(PROG, start)


def run_command(name, argv=None, *, prog=None):
    """Run subcommand ``name`` with a parser of its own (usage ``prog ...``).

    The scripts of ``tflite/`` are this call, so their flags are the
    subcommand's, spelled the same.

    Args:
        name: a key of ``COMMANDS`` (``"export"``, ``"bench"``, ...).
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the program name in usage, examples and errors (default the
            script's file name).

    Returns:
        the exit status, as :func:`main`.

    Example:

    >>> sys.exit(run_command("export", prog="tflite/convert.py"))
    """
    prog = prog or os.path.basename(sys.argv[0])

    def start():
        args = command_parser(name, prog).parse_args(argv)
        return _execute(args, prog)

    return _guarded(prog, start)


def command_parser(name, prog):
    """The parser of subcommand ``name`` alone, as its top level (usage ``prog ...``).

    Args:
        name: a key of ``COMMANDS``.
        prog: the program name shown in usage and examples.

    Returns:
        an ``argparse.ArgumentParser`` with the subcommand's flags.
    """
    if name not in COMMANDS:
        raise ValueError(
            f"Invalid value for argument `name`. Expected one of {sorted(COMMANDS)}. "
            f"Received name={name!r}."
        )
    standalone = _Standalone(prog)
    COMMANDS[name].register(standalone, prog, [_common()])
    return standalone.parser
