"""``keras-basis report``: the per-layer table of a model, and its spectra plot."""

from __future__ import annotations

import pathlib

from keras_basis.cli import options
from keras_basis.cli.io_helpers import CLIError, check_keras_file, check_output_file, load_model

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
    options.add_load_args(p)
    p.set_defaults(run=run)
    return p


def run(args):
    """Print the report of ``args.model`` (and save the plot); returns the exit status."""
    src = check_keras_file(args.model)
    ref = check_keras_file(args.reference) if args.reference else None
    if args.plot:
        check_output_file(args.plot, ".png")
    import keras_basis
    from keras_basis import plots

    model = load_model(src, safe_mode=args.safe_mode)
    reference = load_model(ref, safe_mode=args.safe_mode) if ref else None
    keras_basis.report(model, reference=reference)
    if args.plot:
        entries = spectra_entries(
            model, reference, ratio=args.ratio, num_basis=args.num_basis, splits=args.splits
        )
        if not entries:
            raise CLIError(f"{args.model}: no Conv2D or basis layers to plot")
        plots.plot_spectra(entries, args.plot, title=pathlib.Path(args.model).name)
        print(f"saved {args.plot} ({len(entries)} layers)")
    return 0


def spectra_entries(model, reference=None, *, ratio=None, num_basis=None, splits="auto"):
    """The data behind ``--plot``: one dict per layer (see ``keras_basis.transform.spectra``).

    Args:
        model: an original or compressed ``keras.Model``.
        reference: the original model of a compressed one (its kernels' spectra).
        ratio, num_basis: original models: mark the m that ``compress`` would choose.
        splits: original models: ``"auto"`` (Eq. 13) or channel splits per layer.

    Returns:
        list of dicts ``name``, ``c``, ``n``, ``kernel``, ``s``, ``sv``,
        ``marks`` (``(m, label)`` pairs) and ``source``.
    """
    from keras_basis import transform

    if hasattr(transform, "spectra"):
        return transform.spectra(
            model, reference, ratio=ratio, num_basis=num_basis, splits=splits
        )
    return _legacy_spectra(model, reference, ratio, num_basis, splits)


def _find_layer(model, name):
    import keras

    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = _find_layer(layer, name)
            if found is not None:
                return found
    return None


def _kernel_of(layer):
    import keras

    return keras.ops.convert_to_numpy(layer.kernel)


def _legacy_spectra(model, reference, ratio, num_basis, splits):
    # The pre-transform.spectra logic, kept until that function lands.
    import keras_basis
    from keras_basis import maths

    pairs = keras_basis.basis_pairs(model)
    entries = []
    if pairs:
        for pr in pairs:
            original = _find_layer(reference, pr.name) if reference is not None else None
            if original is not None and tuple(_kernel_of(original).shape[:3]) == (
                *pr.kernel_size, pr.c
            ):
                kernel, source = _kernel_of(original), "reference kernel"
            else:
                kernel, source = pr.kernel(), "effective kernel (rank <= m)"
            entries.append(dict(
                name=pr.name, c=pr.c, n=pr.n, kernel=pr.kernel_size, s=pr.s,
                sv=maths.singular_values(kernel, pr.s), marks=[(pr.m, "")],
                source=source,
            ))
        return entries
    if ratio is not None or num_basis is not None:
        size = dict(ratio=ratio) if ratio is not None else dict(num_basis=num_basis)
        planned = keras_basis.compress(model, splits=splits, verbose=0, **size)
        what = f"ratio {ratio:g}" if ratio is not None else "--num-basis"
        for pr in keras_basis.basis_pairs(planned):
            kernel = _kernel_of(_find_layer(model, pr.name))
            entries.append(dict(
                name=pr.name, c=pr.c, n=pr.n, kernel=pr.kernel_size, s=pr.s,
                sv=maths.singular_values(kernel, pr.s),
                marks=[(pr.m, f" ({what})")], source="kernel",
            ))
        return entries
    rows = keras_basis.report(model, print_fn=None).rows
    for row in rows:
        kernel = _kernel_of(_find_layer(model, row["layer"]))
        c = kernel.shape[2]
        s = row["s"] if splits == "auto" else splits
        if c % s:
            raise CLIError(
                f"--splits {s} does not divide the {c} input channels of layer '{row['layer']}'"
            )
        sv = maths.singular_values(kernel, s)
        marks = []
        for frac in (0.9, 0.99):
            energy = sv.astype("float64") ** 2
            m = int((energy.cumsum() / max(energy.sum(), 1e-30) < frac - 1e-12).sum() + 1)
            marks.append((min(m, len(sv)), f"@{frac:.0%}"))
        entries.append(dict(
            name=row["layer"], c=c, n=kernel.shape[3], kernel=kernel.shape[:2], s=s, sv=sv,
            marks=marks, source="kernel",
        ))
    return entries
