"""``keras-basis export`` (also ``tflite/convert.py``): a verified .tflite file."""

from __future__ import annotations

from keras_basis.cli import options
from keras_basis.cli.io_helpers import (
    CLIError,
    calibration,
    check_input_file,
    check_keras_file,
    check_normalisation,
    check_output_file,
    image_files,
    input_geometry,
    load_model,
    normalise,
)

NAME = "export"
SUMMARY = "convert a Keras model to a verified .tflite file"
DESCRIPTION = (
    "Convert a Keras model to TFLite (LiteRT), builtin ops only, static batch 1,\n"
    "run the converted bytes and compare them with the Keras model (the first\n"
    "--num-verify calibration images, else random inputs of the model's input\n"
    "shapes), and only then write the file, atomically; print a verification line\n"
    "(largest difference from Keras, file size) and the file's op histogram. A\n"
    "failed conversion or verification writes nothing. The output must end with\n"
    ".tflite and may not be the input file. Custom layers: --import MODULE.\n"
    "int8 needs --calibration-dir, a folder of images (searched recursively)\n"
    "that are resized to the model's input size and normalised as\n"
    "  x = pixel / 255 * SCALE + OFFSET  (default [0, 1])."
)
EXAMPLES = (
    "small.keras small.tflite",
    "small.keras small_f16.tflite --quantize float16",
    "small.keras small_int8.tflite --quantize int8 --calibration-dir images/",
    "small.keras small_int8.tflite --quantize int8 --calibration-dir images/ "
    "--scale 2 --offset -1   # inputs in [-1, 1]",
    "small.keras dense.tflite --fold",
    "small.keras fast.tflite --fold auto --fold-threads 1",
    "edsr.keras edsr.tflite --image-size 128x128 --scale 255   # SR network, 0-255 pixels",
)
FOLD_CHOICES = ("none", "all", "auto")


def register(subparsers, prog, common=()):
    """Add the ``export`` subcommand to ``subparsers``; returns its parser."""
    p = options.add_command(
        subparsers, NAME, summary=SUMMARY, description=DESCRIPTION, examples_=EXAMPLES,
        prog=prog, common=common,
    )
    p.add_argument("model", metavar="MODEL.keras")
    p.add_argument("output", metavar="OUT.tflite")
    p.add_argument(
        "--quantize",
        choices=options.QUANTIZE_CHOICES,
        default="none",
        help="none (float32), float16 weights, dynamic-range int8 weights, or "
        "full-integer int8 (needs --calibration-dir) (default: %(default)s)",
    )
    p.add_argument(
        "--int8-io",
        action="store_true",
        help="with --quantize int8: int8 inputs and outputs too (no QUANTIZE/DEQUANTIZE "
        "at the ends)",
    )
    p.add_argument(
        "--fold",
        nargs="?",
        const="all",
        default="none",
        choices=FOLD_CHOICES,
        help="fold basis pairs back into plain Conv2D layers before conversion: all of "
        "them (--fold or --fold all), or only those whose dense form is faster (--fold "
        "auto: timed on this machine or read from --latency-table; prints the timings and "
        "gives every kept basis its faster split form) (default: %(default)s)",
    )
    p.add_argument(
        "--latency-table",
        metavar="TABLE.json",
        help="with --fold auto: layer timings from `keras-basis profile` (e.g. measured on "
        "a phone); missing entries are measured on this machine",
    )
    p.add_argument(
        "--fold-threads",
        type=options.positive_int,
        default=1,
        metavar="N",
        help="interpreter threads used to time the pairs for --fold auto "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--num-verify",
        type=options.non_negative_int,
        default=16,
        metavar="N",
        help="inputs compared with Keras before writing: the first N calibration images, "
        "else N random inputs of the model's input shapes; 0 skips the check "
        "(default: %(default)s)",
    )
    options.add_load_args(p)
    options.add_image_args(p)
    p.set_defaults(run=run)
    return p


def check_args(args):
    """Errors in the combination of flags, before any file is read."""
    if args.quantize == "int8" and not args.calibration_dir:
        raise CLIError(
            "--quantize int8 needs calibration data: pass --calibration-dir DIR "
            "(a folder of images like the model's inputs)"
        )
    if args.int8_io and args.quantize != "int8":
        raise CLIError(f"--int8-io needs --quantize int8; received --quantize {args.quantize}")


def print_fold_plan(plan, threads):
    """One line per basis pair: its latency, its dense form's, and the decision."""
    print(f"fold plan ({threads} thread(s), batch 1):")
    for row in plan:
        dilated = "" if row["dilated_ms"] is None else f" / dilated {row['dilated_ms']:.3f}"
        print(
            f"  {row['coefficients']:<32} {str(row['input_shape']):<20} "
            f"pair batch {row['batch_ms']:.3f}{dilated} ms  dense {row['dense_ms']:.3f} ms  "
            f"MACs {row['basis_macs'] / row['dense_macs']:.2f}x  "
            f"-> {'fold' if row['fold'] else 'keep (' + row['form'] + ')'}"
        )


def verification_inputs(model, args, calib):
    """Inputs to compare the file with Keras: calibration images, else random ones.

    Random inputs have the model's input shapes (any model, not only image
    models); image inputs ``(H, W, C)`` are normalised like the calibration
    images. Returns ``(inputs, description)``.
    """
    import numpy as np

    n = args.num_verify
    if calib is not None:
        return calib[:n], "calibration images"
    rng = np.random.default_rng(0)
    arrays = []
    for tensor in model.inputs:
        dims = list(tensor.shape[1:])
        if len(dims) == 3 and args.image_size:
            dims[:2] = args.image_size
        if any(d is None for d in dims):
            raise CLIError(
                f"model '{model.name}' input '{tensor.name}' has no fixed shape "
                f"{tuple(tensor.shape)}: pass --image-size HxW (image inputs), or "
                "--num-verify 0 to skip the check"
            )
        dtype = np.dtype(getattr(tensor.dtype, "name", tensor.dtype))
        if dtype.kind in "iub":
            arrays.append(rng.integers(0, 2, (n, *dims)).astype(dtype))
        elif len(dims) == 3:
            x = rng.random((n, *dims), dtype=np.float32)
            arrays.append(normalise(x, dims[-1], args.scale, args.offset))
        else:
            arrays.append(rng.random((n, *dims), dtype=np.float32))
    return (arrays[0] if len(arrays) == 1 else arrays), "random inputs"


def run(args):
    """Convert ``args.model``, verify the bytes, then write ``args.output``.

    The file is written (atomically) only after the converted bytes passed
    the comparison with Keras, and everything printed is about those bytes
    (not whatever is at the path later: a concurrent export may replace it).
    """
    check_args(args)
    src = check_keras_file(args.model)
    dst = check_output_file(args.output, ".tflite", source=src, name="OUT.tflite")
    quantize = None if args.quantize == "none" else args.quantize
    if args.calibration_dir:
        image_files(args.calibration_dir)
    import keras_basis
    from keras_basis import fileio, tflite
    from keras_basis.export import fold_plan, split_modes

    model = load_model(src, safe_mode=args.safe_mode)
    check_normalisation(model, args)
    calib = calibration(model, args)
    shape = input_geometry(model, args.image_size) if args.image_size else None
    probe = verification_inputs(model, args, calib) if args.num_verify else None
    fold = {"none": False, "all": True}.get(args.fold)
    modes = None
    if args.latency_table and args.fold != "auto":
        raise CLIError("--latency-table needs --fold auto")
    if args.fold == "auto":
        table = check_input_file(args.latency_table, ".json") if args.latency_table else None
        plan = fold_plan(
            model, quantize=quantize, threads=args.fold_threads, input_shape=shape,
            latency_table=table,
        )
        print_fold_plan(plan, args.fold_threads)
        fold = [row["coefficients"] for row in plan if row["fold"]]
        modes = split_modes(plan)
    # Converted in memory, verified, and only then written (atomically).
    _, content = keras_basis.export_tflite(
        model,
        None,
        quantize=quantize,
        representative_dataset=calib if quantize == "int8" else None,
        int8_io=args.int8_io,
        fold=fold,
        split_mode=modes,
        input_shape=shape,
        calibration_steps=args.num_calibration,
        return_content=True,
    )
    size = f"size {len(content):,} bytes"
    if probe is not None:
        inputs, what = probe
        err = tflite.compare_with_keras(model, content, inputs)
        agree = err.get("top1_agreement")
        count = len(inputs[0] if isinstance(inputs, list) else inputs)
        fileio.write_bytes(dst, content)
        print(
            f"verified {dst}: max |TFLite - Keras| = {err['max_abs_error']:.3g} "
            f"(relative {err['max_rel_error']:.3g}"
            + (f", top-1 agreement {agree:.0%}" if agree is not None else "")
            + f") on {count} {what}; {size}"
        )
    else:
        fileio.write_bytes(dst, content)
        print(f"wrote {dst} (not verified: --num-verify 0); {size}")
    hist = tflite.op_histogram(content)
    print("ops: " + ", ".join(f"{k} x{v}" for k, v in hist.items()))
    return 0
