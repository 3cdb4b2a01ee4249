"""``keras-basis compress``: replace Conv2D layers by basis pairs and save the model."""

from __future__ import annotations

import re
import warnings

from keras_basis.cli import options
from keras_basis.cli.io_helpers import (
    CLIError,
    NothingToDo,
    calibration,
    check_input_file,
    check_keras_file,
    check_output_file,
    image_files,
    load_model,
    save_model,
)

NAME = "compress"
SUMMARY = "replace Conv2D layers by basis + coefficient pairs and save the new model"
DESCRIPTION = (
    "Replace the Conv2D layers of a trained Keras model by split-basis pairs\n"
    "(BasisConv2D + 1x1 Conv2D), initialised from the trained kernels, save the\n"
    "result as a .keras file and print the per-layer report. Give --ratio or\n"
    "--num-basis. Fine-tune the saved model with model.fit before export.\n"
    "Exit status 3 (nothing saved) when no layer can be compressed, e.g. a model\n"
    "without Conv2D layers."
)
EXAMPLES = (
    "model.keras small.keras --ratio 0.3",
    "model.keras small.keras --num-basis 16 --splits 2",
    "model.keras small.keras --ratio 0.5 --layers 'block[23]_.*'",
    "model.keras small.keras --ratio 0.25 --share stage",
    "model.keras small.keras --ratio 0.3 --init data --calibration-dir images/",
)


def register(subparsers, prog, common=()):
    """Add the ``compress`` subcommand to ``subparsers``; returns its parser."""
    p = options.add_command(
        subparsers, NAME, summary=SUMMARY, description=DESCRIPTION, examples_=EXAMPLES,
        prog=prog, common=common,
    )
    p.add_argument("input", metavar="IN.keras", help="trained Keras model")
    p.add_argument("output", metavar="OUT.keras", help="where to save the compressed model")
    options.add_size_args(
        p,
        required=True,
        ratio_help="the budget, a fraction (0, 1] of the original's cost; --objective "
        "says which cost",
        num_basis_help="basis filters m per layer",
        splits_help="channel splits s per layer, or 'auto' (Eq. 13 of the paper)",
    )
    p.add_argument(
        "--share",
        metavar="MODE",
        help="share bases across layers: 'block' (convs flowing into the same merge, e.g. "
        "a residual Add), 'stage' (same input resolution), 'network' (one basis per kernel "
        "size, sliced), or explicit groups 'conv1,conv2;conv3,conv4' (default: no sharing)",
    )
    options.add_objective_arg(p)
    options.add_allocation_arg(p)
    p.add_argument(
        "--init",
        default="svd",
        choices=("svd", "random", "data"),
        help="svd: truncated SVD of the trained kernels; random: from scratch; "
        "data: SVD then refit on calibration images (needs --calibration-dir) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--layers",
        metavar="PATTERN",
        nargs="+",
        help="layers to compress: names or regular expressions (default: every Conv2D "
        "where it saves parameters)",
    )
    options.add_load_args(p)
    options.add_image_args(p)
    p.set_defaults(run=run)
    return p


def layers_argument(patterns):
    """Plain names -> a list (unknown names are errors); else one regular expression."""
    if all(re.fullmatch(r"[\w\-/]+", p) for p in patterns):
        return list(patterns)
    for p in patterns:
        try:
            re.compile(p)
        except re.error as err:
            raise CLIError(f"--layers: {p!r} is not a valid regular expression: {err}")
    return patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns)


def share_argument(text):
    """'block' / 'stage' / 'network', or explicit groups 'a,b;c,d' -> [[a, b], [c, d]]."""
    if "," in text or ";" in text:
        groups = [[n.strip() for n in g.split(",") if n.strip()] for g in text.split(";")]
        return [g for g in groups if g]
    return text


def run(args):
    """Compress ``args.input`` into ``args.output``; returns the exit status."""
    src = check_keras_file(args.input)
    dst = check_output_file(args.output, ".keras", source=src, name="OUT.keras")
    layers = layers_argument(args.layers) if args.layers else None
    if args.init == "data" and not args.calibration_dir:
        raise CLIError("--init data needs calibration images: pass --calibration-dir DIR")
    if args.calibration_dir:
        image_files(args.calibration_dir)
    import keras_basis

    model = load_model(src, safe_mode=args.safe_mode)
    kwargs = dict(splits=args.splits, init=args.init)
    if args.ratio is not None:
        kwargs["ratio"] = args.ratio
        if args.objective is not None:
            kwargs["objective"] = args.objective
        if args.objective == "params":
            kwargs["allocation"] = args.allocation
        if args.latency_table:
            if args.objective != "latency":
                raise CLIError("--latency-table needs --objective latency")
            kwargs["latency_table"] = check_input_file(args.latency_table, ".json")
        if args.latency_modes:
            if args.objective != "latency":
                raise CLIError("--latency-modes needs --objective latency")
            kwargs["latency_modes"] = list(args.latency_modes)
    else:
        kwargs["num_basis"] = args.num_basis
    if layers:
        kwargs["layers"] = layers
    if args.share:
        kwargs["share"] = share_argument(args.share)
    if args.init == "data":
        kwargs["calibration_data"] = calibration(model, args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = keras_basis.compress(model, **kwargs)
    for w in caught:
        text = str(w.message)
        if text.startswith("compress: nothing was compressed"):
            raise NothingToDo(
                f"{args.input}: {text.split(': ', 1)[1]} Nothing saved to {args.output}."
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    keras_basis.report(small, reference=model)
    save_model(small, dst)
    print(f"saved {dst} ({dst.stat().st_size:,} bytes)")
    return 0
