"""``keras-basis demo``: train, compress, fine-tune, export and benchmark, offline."""

from __future__ import annotations

from keras_basis.cli import options
from keras_basis.cli.io_helpers import check_output_dir

NAME = "demo"
SUMMARY = "train, compress, fine-tune, export and benchmark a small CNN (offline)"
DESCRIPTION = (
    "Train a small CNN on the 1,797 handwritten digits that ship with\n"
    "scikit-learn (8x8 images upsampled to 16x16; fixed 80/20 split), compress it\n"
    "at several ratios, fine-tune each briefly, export float32 and int8 .tflite\n"
    "files and print one table: parameters, FLOPs, file bytes and size ratio, test\n"
    "accuracy in Keras and in TFLite, batch-1 latency and its ratio to the original\n"
    "(the files of one format timed round-robin). Writes the .tflite files,\n"
    "the models, results.md/results.json and accuracy_vs_size.png to --output-dir.\n"
    "No download; a few minutes on 2 CPU cores."
)
EXAMPLES = (
    "--output-dir demo-output",
    "--quick --output-dir /tmp/demo",
    "--ratios 0.5,0.2 --finetune-epochs 5",
    "--objective latency --ratios 0.5",
)
# Flags that override a DemoConfig field when given (the others come from
# DemoConfig() or, with --quick, DemoConfig.quick()).
OVERRIDES = ("ratios", "epochs", "finetune_epochs", "threads", "objective", "allocation",
             "seed")


def register(subparsers, prog, common=()):
    """Add the ``demo`` subcommand to ``subparsers``; returns its parser."""
    from keras_basis.demo import DemoConfig

    d = DemoConfig()
    q = DemoConfig.quick()
    p = options.add_command(
        subparsers, NAME, summary=SUMMARY, description=DESCRIPTION, examples_=EXAMPLES,
        prog=prog, common=common,
    )
    p.add_argument(
        "--output-dir",
        default=d.output_dir,
        metavar="DIR",
        help="where to write the results (default: %(default)s)",
    )
    p.add_argument(
        "--ratios",
        type=options.ratio_list,
        default=d.ratios,
        action=options.Explicit,
        metavar="R[,R...]",
        help=f"operating points (default: {','.join(f'{r:g}' for r in d.ratios)})",
    )
    p.add_argument(
        "--epochs", type=options.positive_int, default=d.epochs, action=options.Explicit,
        metavar="N", help="baseline epochs (default: %(default)s)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=options.positive_int,
        default=d.finetune_epochs,
        action=options.Explicit,
        metavar="N",
        help="fine-tuning epochs per operating point (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=options.positive_int,
        default=d.threads,
        action=options.Explicit,
        metavar="N",
        help="TFLite threads for the latency column (default: %(default)s)",
    )
    options.add_objective_arg(p, action=options.Explicit, table=False)
    options.add_allocation_arg(p, default=d.allocation, action=options.Explicit)
    p.add_argument(
        "--seed", type=int, default=d.seed, action=options.Explicit,
        help="random seed (default: %(default)s)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny settings for a smoke test, under a minute: ratios "
        f"{','.join(f'{r:g}' for r in q.ratios)}, {q.epochs} epochs, {q.finetune_epochs} "
        f"fine-tuning epoch(s), {q.latency_runs} timed runs (flags given explicitly win)",
    )
    p.set_defaults(run=run)
    return p


def config_from_args(args):
    """The ``DemoConfig`` that ``args`` asks for."""
    from keras_basis.demo import DemoConfig

    config = DemoConfig.quick() if args.quick else DemoConfig()
    given = getattr(args, "explicit", None) or set()
    changes = {k: getattr(args, k) for k in OVERRIDES if k in given or not args.quick}
    return config.replace(output_dir=args.output_dir, **changes)


def run(args):
    """Run the demo; returns the exit status."""
    from keras_basis import demo

    config = config_from_args(args)
    check_output_dir(config.output_dir)
    demo.run(config)
    return 0
