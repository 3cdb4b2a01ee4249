"""Argument types and the option groups shared by the subcommands.

Every flag that two commands (or a command and a script of ``tflite/``) have
in common is added here, by one function, so it is spelled, typed and
documented the same everywhere (pip's ``cmdoptions.py`` habit).
"""

from __future__ import annotations

import argparse

QUANTIZE_CHOICES = ("none", "float16", "dynamic", "int8")
ALLOCATION_CHOICES = ("error", "uniform")
OBJECTIVE_CHOICES = ("params", "macs", "latency")
XNNPACK_CHOICES = ("on", "off", "both")


def one_line(text):
    """``text`` with every run of white space (newlines included) as one space."""
    return " ".join(str(text).split())


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class Explicit(argparse.Action):
    """Store the value and remember, in ``namespace.explicit``, that it was given.

    Lets a command tell a value typed on the command line from the default
    shown in ``--help`` (the demo's ``--quick`` only changes the others).
    """

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        explicit = set(getattr(namespace, "explicit", None) or ())
        namespace.explicit = explicit | {self.dest}


# ---------------------------------------------------------------- value types
def ratio(text):
    """A number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], received {text!r}")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], received {text}")
    return value


def positive_int(text):
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def non_negative_int(text):
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, received {text!r}")
    return value


def splits(text):
    """``'auto'`` or a positive integer."""
    if text == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a positive integer, received {text!r}"
        )


def _list_of(item, what):
    def parse(text):
        try:
            values = tuple(item(t.strip()) for t in text.split(",") if t.strip())
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}: {err}")
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, received {text!r}")
        return values

    return parse


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}")


def latency_mode(text):
    """``QUANTIZE:THREADS`` (``int8:4``) -> ``("int8", 4)``."""
    quantize, _, threads = text.partition(":")
    try:
        count = positive_int(threads)
    except argparse.ArgumentTypeError:
        count = None
    if quantize not in ("float32", "int8") or count is None:
        raise argparse.ArgumentTypeError(
            f"expected float32:THREADS or int8:THREADS (e.g. int8:1), received {text!r}")
    return quantize, count


ratio_list = _list_of(ratio, "ratios")
mode_list = _list_of(latency_mode, "modes")
thread_list = _list_of(positive_int, "thread counts")
number_list = _list_of(_number, "numbers (one, or one per channel)")


def image_size(text):
    """``HxW`` or ``N`` (square) -> ``(H, W)``."""
    parts = text.lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        h = w = 0
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected HxW or N (e.g. 224x224), received {text!r}")
    return h, w


def on_off(text):
    """``'on'`` -> True, ``'off'`` -> False."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected 'on' or 'off', received {text!r}")
    return text == "on"


# ------------------------------------------------------------ parser helpers
def examples(prog, *lines):
    """The ``examples:`` epilog; each line is the arguments after ``prog``."""
    return "examples:\n" + "\n".join(f"  {prog} {line}".rstrip() for line in lines)


def add_command(subparsers, name, *, summary, description, examples_, prog, common=()):
    """Add subcommand ``name`` with its description and examples; returns its parser."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
        parents=list(common),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(prog, *examples_),
    )


def add_size_args(p, *, required, ratio_help, num_basis_help, splits_help):
    """The ``--ratio`` / ``--num-basis`` (exclusive) and ``--splits`` options."""
    size = p.add_mutually_exclusive_group(required=required)
    size.add_argument("--ratio", type=ratio, metavar="R", help=ratio_help)
    size.add_argument("--num-basis", type=positive_int, metavar="M", help=num_basis_help)
    p.add_argument(
        "--splits",
        type=splits,
        default="auto",
        metavar="S",
        help=splits_help + " (default: %(default)s)",
    )


def add_allocation_arg(p, *, default="error", action=None):
    """``--allocation error|uniform`` (how compress spreads a ratio)."""
    p.add_argument(
        "--allocation",
        choices=ALLOCATION_CHOICES,
        default=default,
        action=action,
        help="with a ratio: 'error' spreads m to minimise the total approximation error; "
        "'uniform' keeps the ratio in every layer (default: %(default)s)",
    )


def add_objective_arg(p, *, action=None, table=True):
    """``--objective params|macs|latency`` (what a ratio budgets) and ``--latency-table``."""
    p.add_argument(
        "--objective",
        choices=OBJECTIVE_CHOICES,
        default=None,
        action=action,
        help="what --ratio budgets: 'macs' (the whole model's multiply-accumulates, pairs "
        "only where they cut a layer's MACs by half; the default of keras_basis.compress), "
        "'latency' (TFLite latency measured on this machine, or from --latency-table), "
        "'params' (the compressed layers' parameters)",
    )
    if table:
        p.add_argument(
            "--latency-table",
            metavar="TABLE.json",
            help="with --objective latency: layer timings from `keras-basis profile` (e.g. "
            "measured on a phone); missing entries are measured on this machine",
        )
        p.add_argument(
            "--latency-modes",
            type=mode_list,
            metavar="Q:T[,Q:T...]",
            help="with --objective latency: the modes whose latency the budget bounds, "
            "quantization float32 or int8 and a thread count, e.g. float32:1,int8:1 "
            "(default: the modes --latency-table holds, else float32 and int8 at 1 and 2 "
            "threads)",
        )


def add_load_args(p):
    """``--import MODULE`` and ``--safe-mode on|off``: loading a ``.keras`` file."""
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this Python module first (a dotted name importable from the current "
        "folder, or a .py file), so that the custom layers it registers with "
        "keras.saving.register_keras_serializable can be loaded; repeatable "
        "(default: none)",
    )
    p.add_argument(
        "--safe-mode",
        type=on_off,
        default="on",
        metavar="{on,off}",
        help="Keras safe_mode when loading the model ('off' allows Lambda layers; only for "
        "files you trust) (default: %(default)s)",
    )


def add_image_args(p):
    """The calibration image group: folder, count, normalisation and input size."""
    g = p.add_argument_group(
        "calibration images",
        "a folder of images, resized to the model's input size and normalised as "
        "x = pixel / 255 * SCALE + OFFSET",
    )
    g.add_argument(
        "--calibration-dir",
        metavar="DIR",
        help="folder of images (searched recursively; .png .jpg .bmp .gif .tif .webp)",
    )
    g.add_argument(
        "--num-calibration",
        type=positive_int,
        default=200,
        metavar="N",
        help="use at most N images, evenly spaced over the sorted file list "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--scale",
        type=number_list,
        default=(1.0,),
        metavar="S[,S...]",
        help="one value, or one per channel (default: 1.0)",
    )
    g.add_argument(
        "--offset",
        type=number_list,
        default=(0.0,),
        metavar="O[,O...]",
        help="one value, or one per channel (default: 0.0); for x = (pixel/255 - mean) / "
        "std pass --scale 1/std --offset -mean/std",
    )
    g.add_argument(
        "--image-size",
        type=image_size,
        metavar="HxW",
        help="input size when the model's is not fixed (e.g. 224x224; default: the "
        "model's); export also converts at this size",
    )


def add_bench_args(p):
    """Latency options: threads, runs, warm-up and the XNNPACK delegate."""
    p.add_argument(
        "--threads",
        type=thread_list,
        default=(1,),
        metavar="N[,N...]",
        help="interpreter threads, comma-separated (default: 1)",
    )
    p.add_argument(
        "--runs", type=positive_int, default=100, metavar="N",
        help="timed runs (default: %(default)s)",
    )
    p.add_argument(
        "--warmup", type=positive_int, default=10, metavar="N",
        help="untimed runs first (default: %(default)s)",
    )
    p.add_argument(
        "--xnnpack",
        choices=XNNPACK_CHOICES,
        default="on",
        help="XNNPACK delegate: on, off (builtin kernels only) or both (default: %(default)s)",
    )
    p.add_argument(
        "--no-xnnpack",
        dest="xnnpack",
        action="store_const",
        const="off",
        help="same as --xnnpack off",
    )
