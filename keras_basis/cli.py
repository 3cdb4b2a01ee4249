"""The ``keras-basis`` command line (also ``python -m keras_basis``).

Subcommands: ``compress``, ``report``, ``export``, ``bench`` and ``demo``. Run
``keras-basis COMMAND --help`` for the options and examples of each.

Errors are printed as one line on stderr with a non-zero exit status
(``--debug`` shows the traceback and TensorFlow's own log lines instead).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pathlib
import sys
import tempfile
import zipfile

PROG = "keras-basis"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
QUANTIZE_CHOICES = ("none", "float16", "dynamic", "int8")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# ---------------------------------------------------------------------------
# argument parsing


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _ratio(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], received {text!r}")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], received {text}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def _splits(text):
    if text == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a positive integer, received {text!r}"
        )


def _ratio_list(text):
    try:
        return tuple(_ratio(t) for t in text.split(",") if t.strip())
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated ratios: {err}")


def _thread_list(text):
    try:
        return tuple(_positive_int(t) for t in text.split(",") if t.strip())
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts: {err}")


def _image_size(text):
    parts = text.lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        h = w = 0
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected HxW or N (e.g. 224x224), received {text!r}")
    return h, w


def _examples(*lines):
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _build_parser():
    parser = _Parser(
        prog=PROG,
        description=(
            "Compress Keras 3 CNNs with learned filter bases (Li et al., ICCV 2019) "
            "and export them to TFLite (LiteRT)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "keras-basis demo --output-dir demo-output",
            "keras-basis compress model.keras small.keras --ratio 0.3",
            "keras-basis report small.keras --plot spectra.png",
            "keras-basis export small.keras small.tflite --quantize int8 "
            "--calibration-dir images/",
            "keras-basis bench model.tflite small.tflite",
        ),
    )
    from keras_basis import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks and TensorFlow's log lines",
    )

    def add(name, help_, examples, description=None):
        return sub.add_parser(
            name,
            help=help_,
            description=description or help_,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=_examples(*examples),
        )

    # compress ---------------------------------------------------------------
    p = add(
        "compress",
        "replace Conv2D layers by basis + coefficient pairs and save the new model",
        [
            "keras-basis compress model.keras small.keras --ratio 0.3",
            "keras-basis compress model.keras small.keras --num-basis 16 --splits 2",
            "keras-basis compress model.keras small.keras --ratio 0.5 --layers 'block[23]_.*'",
            "keras-basis compress model.keras small.keras --ratio 0.25 --share stage",
            "keras-basis compress model.keras small.keras --ratio 0.3 --init data "
            "--calibration-dir images/",
        ],
        description=(
            "Replace the Conv2D layers of a trained Keras model by split-basis pairs\n"
            "(BasisConv2D + 1x1 Conv2D), initialised from the trained kernels, save the\n"
            "result as a .keras file and print the per-layer report. Give --ratio or\n"
            "--num-basis. Fine-tune the saved model with model.fit before export."
        ),
    )
    p.add_argument("input", metavar="IN.keras", help="trained Keras model")
    p.add_argument("output", metavar="OUT.keras", help="where to save the compressed model")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument(
        "--ratio",
        type=_ratio,
        help="keep this fraction (0, 1] of the compressed layers' parameters",
    )
    size.add_argument(
        "--num-basis", type=_positive_int, metavar="M", help="basis filters m per layer"
    )
    p.add_argument(
        "--splits",
        type=_splits,
        default="auto",
        metavar="S",
        help="channel splits s per layer, or 'auto' (Eq. 13 of the paper; default)",
    )
    p.add_argument(
        "--share",
        metavar="MODE",
        help="share bases across layers: 'block' (convs flowing into the same merge, e.g. "
        "a residual Add), 'stage' (same input resolution), 'network' (one basis per kernel "
        "size, sliced), or explicit groups 'conv1,conv2;conv3,conv4'",
    )
    p.add_argument(
        "--allocation",
        choices=("error", "uniform"),
        default="error",
        help="with --ratio: 'error' spreads m to minimise the total approximation error "
        "(default); 'uniform' keeps the ratio in every layer",
    )
    p.add_argument(
        "--init",
        default="svd",
        choices=("svd", "random", "data"),
        help="svd: truncated SVD of the trained kernels (default); random: from scratch; "
        "data: SVD then refit on calibration images (needs --calibration-dir)",
    )
    p.add_argument(
        "--layers",
        metavar="PATTERN",
        nargs="+",
        help="layers to compress: names or regular expressions (default: every Conv2D "
        "where it saves parameters)",
    )
    _add_image_args(p)

    # report -----------------------------------------------------------------
    p = add(
        "report",
        "print the per-layer table of a model (original or compressed)",
        [
            "keras-basis report small.keras",
            "keras-basis report small.keras --reference model.keras --plot spectra.png",
            "keras-basis report model.keras --plot spectra.png",
            "keras-basis report model.keras --ratio 0.3 --plot spectra.png",
        ],
        description=(
            "Print the per-layer table of a Keras model: for a compressed model its\n"
            "basis pairs (c, n, kernel, s, p, m, parameters and FLOPs before and after,\n"
            "approximation error against --reference); for an original model the\n"
            "candidate Conv2D layers (Eq. 13 split, rank, m keeping 90%%/99%% energy).\n"
            "With --plot, draw each layer's singular-value spectrum of its split matrix\n"
            "with m marked: a compressed model's m (spectrum of the --reference kernel,\n"
            "else of the kernel the pair computes); for an original model the m that\n"
            "--ratio or --num-basis would choose, else the m keeping 90%% and 99%%."
        ),
    )
    p.add_argument("model", metavar="MODEL.keras")
    p.add_argument(
        "--reference",
        metavar="ORIGINAL.keras",
        help="compressed models: the original model, for the approximation error of the "
        "current weights and for the spectra of the original kernels",
    )
    p.add_argument("--plot", metavar="FILE.png", help="save the spectra plot here")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--ratio",
        type=_ratio,
        help="original models: mark the m that compress --ratio would choose",
    )
    size.add_argument(
        "--num-basis", type=_positive_int, metavar="M", help="original models: mark this m"
    )
    p.add_argument(
        "--splits",
        type=_splits,
        default="auto",
        metavar="S",
        help="original models: channel splits for the spectra ('auto' = Eq. 13; default)",
    )

    # export -----------------------------------------------------------------
    p = add(
        "export",
        "convert a Keras model to a verified .tflite file",
        [
            "keras-basis export small.keras small.tflite",
            "keras-basis export small.keras small_f16.tflite --quantize float16",
            "keras-basis export small.keras small_int8.tflite --quantize int8 "
            "--calibration-dir images/",
            "keras-basis export small.keras small_int8.tflite --quantize int8 "
            "--calibration-dir images/ --scale 2 --offset -1   # inputs in [-1, 1]",
            "keras-basis export small.keras dense.tflite --fold",
            "keras-basis export small.keras fast.tflite --fold auto",
        ],
        description=(
            "Convert a Keras model to TFLite (LiteRT), written atomically, then run the\n"
            "file and print a verification line: the largest difference from the Keras\n"
            "model's outputs and the file size. int8 needs --calibration-dir, a folder of\n"
            "images (searched recursively) that are resized to the model's input size and\n"
            "normalised as  x = pixel / 255 * SCALE + OFFSET  (default [0, 1])."
        ),
    )
    p.add_argument("model", metavar="MODEL.keras")
    p.add_argument("output", metavar="OUT.tflite")
    p.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default="none",
        help="none (float32, default), float16 weights, dynamic-range int8 weights, or "
        "full-integer int8 (needs --calibration-dir)",
    )
    p.add_argument(
        "--fold",
        nargs="?",
        const="all",
        choices=("all", "auto"),
        help="fold basis pairs back into plain Conv2D layers before conversion: all of "
        "them (--fold), or only those whose dense form measures faster (--fold auto)",
    )
    _add_image_args(p)

    # bench ------------------------------------------------------------------
    p = add(
        "bench",
        "measure batch-1 latency and size of .tflite files side by side",
        [
            "keras-basis bench model.tflite small.tflite",
            "keras-basis bench model.tflite small.tflite --threads 1,2 --runs 200",
            "keras-basis bench small_int8.tflite --no-xnnpack",
        ],
        description=(
            "Run each .tflite file on random inputs (batch 1) with ai-edge-litert and\n"
            "print the file size and the median and 90th-percentile latency after a\n"
            "warm-up, with the ratios to the first file."
        ),
    )
    p.add_argument("files", metavar="FILE.tflite", nargs="+")
    p.add_argument(
        "--threads",
        type=_thread_list,
        default=(1,),
        metavar="N[,N...]",
        help="interpreter threads (default 1)",
    )
    p.add_argument("--runs", type=_positive_int, default=100, help="timed runs (default 100)")
    p.add_argument("--warmup", type=_positive_int, default=10, help="warm-up runs (default 10)")
    p.add_argument(
        "--no-xnnpack", action="store_true", help="disable the XNNPACK delegate"
    )

    # demo -------------------------------------------------------------------
    from keras_basis import demo as _demo

    p = add(
        "demo",
        "train, compress, fine-tune, export and benchmark a small CNN (offline)",
        [
            "keras-basis demo --output-dir demo-output",
            "keras-basis demo --quick --output-dir /tmp/demo",
            "keras-basis demo --ratios 0.5,0.2 --finetune-epochs 5",
        ],
        description=(
            "Train a small CNN on the 1,797 handwritten digits that ship with\n"
            "scikit-learn (8x8 images upsampled to 16x16; fixed 80/20 split), compress it\n"
            "at several parameter ratios, fine-tune each briefly, export float32 and int8\n"
            ".tflite files and print one table: parameters, FLOPs, file bytes, test\n"
            "accuracy in Keras and in TFLite, batch-1 latency. Writes the .tflite files,\n"
            "the models, results.md/results.json and accuracy_vs_size.png to --output-dir.\n"
            "No download; a few minutes on 2 CPU cores."
        ),
    )
    d = _demo.DemoConfig()
    p.add_argument(
        "--output-dir",
        default=d.output_dir,
        metavar="DIR",
        help=f"where to write the results (default {d.output_dir})",
    )
    p.add_argument(
        "--ratios",
        type=_ratio_list,
        default=None,
        metavar="R[,R...]",
        help=f"operating points (default {','.join(str(r) for r in d.ratios)})",
    )
    p.add_argument(
        "--epochs", type=_positive_int, default=None, help=f"baseline epochs (default {d.epochs})"
    )
    p.add_argument(
        "--finetune-epochs",
        type=_positive_int,
        default=None,
        help=f"fine-tuning epochs per operating point (default {d.finetune_epochs})",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help=f"TFLite threads for the latency column (default {d.threads})",
    )
    p.add_argument(
        "--allocation",
        choices=("error", "uniform"),
        default=None,
        help=f"how compress() spreads each ratio over the layers (default {d.allocation})",
    )
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default {d.seed})")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke test (one ratio, few epochs; under a minute)",
    )
    return parser


def _add_image_args(p):
    g = p.add_argument_group(
        "calibration images",
        "a folder of images, resized to the model's input size and normalised as "
        "x = pixel / 255 * SCALE + OFFSET",
    )
    g.add_argument("--calibration-dir", metavar="DIR", help="folder of images (recursive)")
    g.add_argument(
        "--num-calibration",
        type=_positive_int,
        default=200,
        metavar="N",
        help="use at most N images, evenly spaced over the sorted file list (default 200)",
    )
    g.add_argument("--scale", type=float, default=1.0, help="default 1.0")
    g.add_argument("--offset", type=float, default=0.0, help="default 0.0")
    g.add_argument(
        "--image-size",
        type=_image_size,
        metavar="HxW",
        help="input size when the model's is not fixed (e.g. 224x224); export also "
        "converts at this size",
    )


# ---------------------------------------------------------------------------
# helpers


def _one_line(text):
    return " ".join(str(text).split())


def _error_text(err):
    """One line for an exception raised below a command."""
    text = _one_line(err) or type(err).__name__
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)) and err.filename:
        text = f"{err.filename}: {_one_line(err.strerror or text)}"
    if len(text) > 400:
        text = text[:397] + "..."
    return text


@contextlib.contextmanager
def _quiet_native_stderr(enabled=True):
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


def _check_input_file(path, kind):
    p = pathlib.Path(path)
    if not p.exists():
        raise CLIError(f"{path}: no such file")
    if p.is_dir():
        raise CLIError(f"{path}: is a directory, expected a {kind} file")
    if not os.access(p, os.R_OK):
        raise CLIError(f"{path}: cannot read the file (permission denied)")
    return p


def _check_keras_file(path):
    p = _check_input_file(path, ".keras")
    if p.suffix.lower() in (".h5", ".hdf5"):
        return p
    ok = zipfile.is_zipfile(p)
    if ok:
        with zipfile.ZipFile(p) as z:
            ok = "config.json" in z.namelist()
    if not ok:
        raise CLIError(
            f"{path}: not a Keras model file (expected a .keras archive written by model.save)"
        )
    return p


def _check_output_file(path, suffix=None):
    """Fail early (before any slow work) when ``path`` cannot be written."""
    p = pathlib.Path(path)
    if suffix and p.suffix.lower() != suffix:
        raise CLIError(f"{path}: the output file name must end with {suffix}")
    if p.is_dir():
        raise CLIError(f"{path}: cannot write the output: it is a directory")
    parent = p.parent if str(p.parent) else pathlib.Path(".")
    if parent.exists() and not parent.is_dir():
        raise CLIError(f"{path}: cannot write the output: {parent} is not a folder")
    if not parent.is_dir():
        raise CLIError(f"{path}: cannot write the output: folder {parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{p.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise CLIError(f"{path}: cannot write the output: {_one_line(err.strerror or err)}")
    return p


def _check_output_dir(path):
    p = pathlib.Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".probe-"):
            pass
    except OSError as err:
        raise CLIError(f"{path}: cannot write to the output folder: {_one_line(err)}")
    return p


def _load_model(path):
    import keras

    import keras_basis  # noqa: F401  (registers the basis layers for loading)

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types on a foreign file
        raise CLIError(f"{path}: cannot load the Keras model: {_one_line(err)[:300]}")
    if not isinstance(model, keras.Model):
        raise CLIError(f"{path}: holds a {type(model).__name__}, not a keras.Model")
    return model


def _save_model(model, path):
    """Save ``model`` as .keras atomically (temp file in the same folder)."""
    from keras_basis.demo import _atomic_write

    return _atomic_write(path, model.save)


def _input_geometry(model, image_size=None):
    """(height, width, channels) of a single-image-input model."""
    shapes = model.input_shape
    if isinstance(shapes, list):
        if len(shapes) != 1:
            raise CLIError(
                f"model '{model.name}' has {len(shapes)} inputs; calibration images need "
                "exactly one image input"
            )
        shapes = shapes[0]
    if len(shapes) != 4:
        raise CLIError(
            f"model '{model.name}' input shape {tuple(shapes)} is not (batch, height, width, "
            "channels); calibration images need an image input"
        )
    _, h, w, c = shapes
    if image_size:
        h, w = image_size
    if h is None or w is None:
        raise CLIError(
            f"model '{model.name}' has no fixed input size {tuple(shapes)}: pass --image-size HxW"
        )
    if c not in (1, 3):
        raise CLIError(
            f"model '{model.name}' has {c} input channels; calibration images must be "
            "grayscale (1) or RGB (3)"
        )
    return h, w, c


def _image_files(folder):
    p = pathlib.Path(folder)
    if not p.exists():
        raise CLIError(f"{folder}: no such folder (--calibration-dir)")
    if not p.is_dir():
        raise CLIError(f"{folder}: not a folder (--calibration-dir)")
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CLIError(
            f"{folder}: no images found (--calibration-dir; looked for "
            f"{', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def _load_images(folder, size, channels, *, limit=200, scale=1.0, offset=0.0):
    """Images of ``folder`` as a float32 batch ``(N, H, W, C)``.

    Files are sorted, ``limit`` of them are taken evenly spaced over the list (so
    that a class-per-subfolder layout is covered), converted to grayscale or
    RGB, resized bilinearly to ``size = (H, W)`` and normalised as
    ``pixel / 255 * scale + offset``.
    """
    import numpy as np

    try:
        from PIL import Image
    except ImportError:
        raise CLIError("reading calibration images needs Pillow: pip install pillow")
    files = _image_files(folder)
    if len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    h, w = size
    batch = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB").resize(
                    (w, h), Image.BILINEAR
                )
                a = np.asarray(im, dtype=np.float32) / 255.0
        except OSError as err:
            raise CLIError(f"{f}: cannot read the image: {_one_line(err)}")
        batch.append(a[..., None] if channels == 1 else a)
    return np.stack(batch) * np.float32(scale) + np.float32(offset)


def _calibration(model, args):
    if not args.calibration_dir:
        return None
    h, w, c = _input_geometry(model, args.image_size)
    return _load_images(
        args.calibration_dir,
        (h, w),
        c,
        limit=args.num_calibration,
        scale=args.scale,
        offset=args.offset,
    )


def _format_table(header, rows, align=None):
    """Plain text table; numbers right-aligned."""
    cells = [[str(h) for h in header]] + [[str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 1)
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(f"{v:{a}{w}}" for v, a, w in zip(r, align, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# commands


def cmd_compress(args):
    src = _check_keras_file(args.input)
    dst = _check_output_file(args.output, ".keras")
    if args.init == "data" and not args.calibration_dir:
        raise CLIError("--init data needs calibration images: pass --calibration-dir DIR")
    if args.calibration_dir:
        _image_files(args.calibration_dir)
    import keras_basis

    model = _load_model(src)
    kwargs = dict(splits=args.splits, init=args.init, allocation=args.allocation)
    if args.ratio is not None:
        kwargs["ratio"] = args.ratio
    else:
        kwargs["num_basis"] = args.num_basis
    if args.layers:
        kwargs["layers"] = _layers_argument(args.layers)
    if args.share:
        kwargs["share"] = _share_argument(args.share)
    if args.init == "data":
        kwargs["calibration_data"] = _calibration(model, args)
    small = keras_basis.compress(model, **kwargs)
    keras_basis.report(small, reference=model)
    _save_model(small, dst)
    print(f"saved {dst} ({dst.stat().st_size:,} bytes)")
    return 0


def _layers_argument(patterns):
    """Plain names -> a list (unknown names are errors); else one regular expression."""
    import re

    if all(re.fullmatch(r"[\w\-/]+", p) for p in patterns):
        return list(patterns)
    return patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns)


def _share_argument(text):
    """'block' / 'stage' / 'network', or explicit groups 'a,b;c,d' -> [[a, b], [c, d]]."""
    if "," in text or ";" in text:
        groups = [[n.strip() for n in g.split(",") if n.strip()] for g in text.split(";")]
        return [g for g in groups if g]
    return text


def cmd_report(args):
    src = _check_keras_file(args.model)
    ref = _check_keras_file(args.reference) if args.reference else None
    if args.plot:
        _check_output_file(args.plot, ".png")
    import keras_basis

    model = _load_model(src)
    reference = _load_model(ref) if ref else None
    keras_basis.report(model, reference=reference)
    if args.plot:
        entries = _spectra(model, reference, args)
        if not entries:
            raise CLIError(f"{args.model}: no Conv2D or basis layers to plot")
        _plot_spectra(entries, args.plot, title=pathlib.Path(args.model).name)
        print(f"saved {args.plot} ({len(entries)} layers)")
    return 0


def _find_layer(model, name):
    """The layer called ``name`` in ``model`` or its nested models, or None."""
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


def _spectra(model, reference, args):
    """Per-layer singular-value spectra with the m values to mark.

    Returns a list of dicts: ``name``, ``c``, ``n``, ``kernel``, ``s``, ``sv``
    (descending singular values of the layer's split matrix), ``marks`` (list
    of ``(m, label)``) and ``source`` (what the spectrum is of).
    """
    import keras_basis
    from keras_basis import maths

    pairs = keras_basis.basis_pairs(model)
    entries = []
    if pairs:
        # A compressed model: its m per layer; the spectrum of the reference
        # (original) kernel when given, else of the kernel the pair computes.
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
    if args.ratio is not None or args.num_basis is not None:
        # An original model: the m that compress() would choose.
        size = dict(ratio=args.ratio) if args.ratio is not None else dict(
            num_basis=args.num_basis)
        planned = keras_basis.compress(model, splits=args.splits, verbose=0, **size)
        what = f"ratio {args.ratio:g}" if args.ratio is not None else "--num-basis"
        for pr in keras_basis.basis_pairs(planned):
            kernel = _kernel_of(_find_layer(model, pr.name))
            entries.append(dict(
                name=pr.name, c=pr.c, n=pr.n, kernel=pr.kernel_size, s=pr.s,
                sv=maths.singular_values(kernel, pr.s),
                marks=[(pr.m, f" ({what})")], source="kernel",
            ))
        return entries
    # An original model and no size given: mark the m keeping 90% / 99% energy.
    rows = keras_basis.report(model, print_fn=None).rows
    for row in rows:
        layer = _find_layer(model, row["layer"])
        kernel = _kernel_of(layer)
        c = kernel.shape[2]
        s = row["s"] if args.splits == "auto" else args.splits
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


def _plot_spectra(entries, path, title):
    """Grid of spectra (normalised, log scale), each with its m marked; PNG."""
    import math

    import numpy as np
    from matplotlib.figure import Figure

    cols = min(3, len(entries))
    rows = math.ceil(len(entries) / cols)
    fig = Figure(figsize=(4.2 * cols, 2.9 * rows + 0.5), dpi=100)
    colors = ("tab:red", "tab:purple")
    for i, e in enumerate(entries):
        ax = fig.add_subplot(rows, cols, i + 1)
        sv = np.asarray(e["sv"], dtype="float64")
        top = sv[0] if len(sv) and sv[0] > 0 else 1.0
        vals = np.maximum(sv / top, 1e-7)
        ax.semilogy(np.arange(1, len(sv) + 1), vals, ".-", lw=1, ms=3, color="tab:blue")
        energy = sv ** 2
        total = max(energy.sum(), 1e-30)
        for (m, tag), color in zip(e["marks"], colors):
            kept = energy[:m].sum() / total
            ax.axvline(m + 0.5, color=color, ls="--", lw=1,
                       label=f"m{tag}={m}: keeps {kept:.1%} of the energy")
        kh, kw = e["kernel"]
        ax.set_title(
            f"{e['name']}  c={e['c']} n={e['n']} {kh}x{kw} s={e['s']}", fontsize=9
        )
        ax.set_xlabel(f"index (split matrix {e['c'] // e['s'] * kh * kw} x {e['n'] * e['s']})",
                      fontsize=8)
        ax.set_ylabel(f"sigma / sigma_1 ({e['source']})", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: singular values of each layer's split matrix", fontsize=11)
    fig.tight_layout()
    from keras_basis.demo import _atomic_write

    return _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def cmd_export(args):
    src = _check_keras_file(args.model)
    dst = _check_output_file(args.output)
    quantize = None if args.quantize == "none" else args.quantize
    if quantize == "int8" and not args.calibration_dir:
        raise CLIError(
            "--quantize int8 needs calibration data: pass --calibration-dir DIR "
            "(a folder of images like the model's inputs)"
        )
    if args.calibration_dir:
        _image_files(args.calibration_dir)
    import numpy as np

    import keras_basis

    model = _load_model(src)
    calib = _calibration(model, args)
    shape = None
    if args.image_size:
        h, w, c = _input_geometry(model, args.image_size)
        shape = (h, w, c)
    path = keras_basis.export_tflite(
        model,
        dst,
        quantize=quantize,
        representative_dataset=calib if quantize == "int8" else None,
        fold={None: False, "all": True, "auto": "auto"}[args.fold],
        input_shape=shape,
    )
    if calib is not None:
        probe = calib[:16]
    else:
        h, w, c = _input_geometry(model, args.image_size)
        rng = np.random.default_rng(0)
        probe = (rng.random((8, h, w, c), dtype=np.float32) * args.scale + args.offset)
    from keras_basis import tflite

    err = tflite.compare_with_keras(model, path, probe)
    agree = err.get("top1_agreement")
    print(
        f"verified {path}: max |TFLite - Keras| = {err['max_abs_error']:.3g} "
        f"(relative {err['max_rel_error']:.3g}"
        + (f", top-1 agreement {agree:.0%}" if agree is not None else "")
        + f") on {len(probe)} {'calibration images' if calib is not None else 'random inputs'}"
        f"; size {path.stat().st_size:,} bytes"
    )
    return 0


def _check_tflite_file(path):
    p = _check_input_file(path, ".tflite")
    with open(p, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        raise CLIError(f"{path}: not a TFLite file (no TFL3 flatbuffer identifier)")
    return p


def cmd_bench(args):
    files = [_check_tflite_file(f) for f in args.files]
    from keras_basis import tflite

    rows = []
    base = None
    for threads in args.threads:
        for f in files:
            r = tflite.benchmark_tflite(
                f,
                threads=threads,
                runs=args.runs,
                warmup=args.warmup,
                xnnpack=not args.no_xnnpack,
            )
            size = f.stat().st_size
            if base is None:
                base = (size, r["median_ms"])
            rows.append(
                [
                    str(f),
                    f"{size:,}",
                    f"{size / base[0]:.2f}",
                    threads,
                    f"{r['median_ms']:.3f}",
                    f"{r['p90_ms']:.3f}",
                    f"{r['median_ms'] / base[1]:.2f}",
                ]
            )
    print(
        _format_table(
            ["file", "bytes", "size x", "threads", "median ms", "p90 ms", "latency x"], rows
        )
    )
    print(
        f"batch 1, random inputs, {args.runs} runs after {args.warmup} warm-up, XNNPACK "
        f"{'off' if args.no_xnnpack else 'on'}; ratios relative to the first row"
    )
    return 0


def cmd_demo(args):
    from keras_basis import demo

    overrides = {
        k: v
        for k, v in dict(
            ratios=args.ratios,
            epochs=args.epochs,
            finetune_epochs=args.finetune_epochs,
            threads=args.threads,
            allocation=args.allocation,
            seed=args.seed,
        ).items()
        if v is not None
    }
    config = demo.DemoConfig.quick() if args.quick else demo.DemoConfig()
    config = config.replace(output_dir=args.output_dir, **overrides)
    _check_output_dir(config.output_dir)
    demo.run(config)
    return 0


COMMANDS = {
    "compress": cmd_compress,
    "report": cmd_report,
    "export": cmd_export,
    "bench": cmd_bench,
    "demo": cmd_demo,
}


def main(argv=None):
    """Entry point of ``keras-basis``; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        with _quiet_native_stderr(enabled=not args.debug):
            if not args.debug:
                _quiet_python_logs()
            return COMMANDS[args.command](args)
    except CLIError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {_error_text(err)}", file=sys.stderr)
        return 1


def _quiet_python_logs():
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
