"""``keras-basis report``: the per-layer table of a model, and its spectra plot."""

from __future__ import annotations

import pathlib

from keras_basis.cli import options
from keras_basis.cli.io_helpers import (
    CLIError,
    check_input_file,
    check_keras_file,
    check_output_file,
    load_model,
)

NAME = "report"
SUMMARY = "print the per-layer table of a model (original or compressed)"
DESCRIPTION = (
    "Print the per-layer table of a Keras model: for a compressed model its\n"
    "basis pairs (c, n, kernel, s, p, m, parameters and FLOPs before and after,\n"
    "approximation error against --reference); for an original model the\n"
    "candidate Conv2D layers (Eq. 13 split, rank, m keeping 90%%/99%% energy).\n"
    "With --plot, draw each layer's singular-value spectrum of its split matrix\n"
    "with m marked: a compressed model's m (spectrum of the --reference kernel,\n"
    "else of the kernel the pair computes); for an original model the m that\n"
    "--ratio or --num-basis would choose, else the m keeping 90%% and 99%%."
)
EXAMPLES = (
    "small.keras",
    "small.keras --reference model.keras --plot spectra.png",
    "model.keras --plot spectra.png",
    "model.keras --ratio 0.3 --plot spectra.png",
)


def register(subparsers, prog, common=()):
    """Add the ``report`` subcommand to ``subparsers``; returns its parser."""
    p = options.add_command(
        subparsers, NAME, summary=SUMMARY, description=DESCRIPTION, examples_=EXAMPLES,
        prog=prog, common=common,
    )
    p.add_argument("model", metavar="MODEL.keras")
    p.add_argument(
        "--reference",
        metavar="ORIGINAL.keras",
        help="compressed models: the original model, for the approximation error of the "
        "current weights and for the spectra of the original kernels",
    )
    p.add_argument("--plot", metavar="FILE.png", help="save the spectra plot here")
    options.add_size_args(
        p,
        required=False,
        ratio_help="original models: mark the m that compress --ratio would choose",
        num_basis_help="original models: mark this m",
        splits_help="original models: channel splits for the spectra ('auto' = Eq. 13)",
    )
    options.add_objective_arg(p)
    options.add_load_args(p)
    p.set_defaults(run=run)
    return p


def run(args):
    """Print the report of ``args.model`` (and save the plot); returns the exit status."""
    src = check_keras_file(args.model)
    ref = check_keras_file(args.reference) if args.reference else None
    if args.plot:
        check_output_file(args.plot, ".png", source=src, name="--plot")
    import keras_basis
    from keras_basis import plots, transform

    model = load_model(src, safe_mode=args.safe_mode)
    reference = load_model(ref, safe_mode=args.safe_mode) if ref else None
    keras_basis.report(model, reference=reference)
    if args.plot:
        budget = {}
        if args.ratio is not None and args.objective is not None:
            budget["objective"] = args.objective
            if args.latency_table:
                budget["latency_table"] = check_input_file(args.latency_table, ".json")
            if args.latency_modes:
                budget["latency_modes"] = list(args.latency_modes)
        entries = transform.spectra(
            model, reference, ratio=args.ratio, num_basis=args.num_basis, splits=args.splits,
            **budget,
        )
        if not entries:
            raise CLIError(f"{args.model}: no Conv2D or basis layers to plot")
        plots.plot_spectra(entries, args.plot, title=pathlib.Path(args.model).name)
        print(f"saved {args.plot} ({len(entries)} layers)")
    return 0
