"""Input and output of the command line: files, models, images, stderr.

Checks that fail early (before the slow TensorFlow work) with one-line
``CLIError`` messages, the model and image loaders shared by every command
(and by the scripts of ``tflite/``), and the plumbing that keeps TensorFlow's
native log lines off the terminal.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import tempfile
import zipfile

from keras_basis.cli.options import one_line
from keras_basis.console import QUIET_ENV, quiet_environment, quiet_native_stderr  # noqa: F401

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class NothingToDo(CLIError):
    """The command had nothing to do (e.g. no layer to compress): exit status 3."""


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOTHING_TO_DO, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def target_of_temp(filename):
    """The file a ``keras_basis.fileio`` temporary stands for (else ``filename``)."""
    mark = ".kbtmp-"  # keras_basis.fileio.TEMP_MARK (not imported: no TensorFlow here)
    p = pathlib.Path(str(filename))
    if p.name.startswith(".") and mark in p.name:
        return str(p.parent / p.name[1:p.name.index(mark)])
    return str(filename)


def error_text(err):
    """One line for an exception raised below a command."""
    text = one_line(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename:
        text = f"{target_of_temp(err.filename)}: {one_line(err.strerror or text)}"
    if len(text) > 400:
        text = text[:397] + "..."
    return text


# --------------------------------------------------------------------- stderr
def quiet_python_logs():
    """Silence Python warnings and the absl/TensorFlow loggers below ERROR."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# ---------------------------------------------------------------- file checks
def check_input_file(path, kind):
    """``path`` as a Path; CLIError unless it is a readable file."""
    p = pathlib.Path(path)
    if not p.exists():
        raise CLIError(f"{path}: no such file")
    if p.is_dir():
        raise CLIError(f"{path}: is a directory, expected a {kind} file")
    if not os.access(p, os.R_OK):
        raise CLIError(f"{path}: cannot read the file (permission denied)")
    return p


def check_keras_file(path):
    """``path`` as a Path; CLIError unless it is a .keras archive (or .h5)."""
    p = check_input_file(path, ".keras")
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


def check_tflite_file(path):
    """``path`` as a Path; CLIError unless it is a TFLite flatbuffer."""
    p = check_input_file(path, ".tflite")
    with open(p, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        raise CLIError(f"{path}: not a TFLite file (no TFL3 flatbuffer identifier)")
    return p


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file (links and relative paths too)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return pathlib.Path(a).resolve() == pathlib.Path(b).resolve()
    except OSError:
        return False


def check_output_file(path, suffix=None, *, source=None, name=None):
    """Fail early (before any slow work) when ``path`` cannot be written.

    Args:
        path: the output path given on the command line.
        suffix: the suffix it must have (e.g. ``".tflite"``), or None.
        source: the input file; the output may not be that file (an
            export or a compression never overwrites its input).
        name: how the argument is shown in errors (e.g. ``"OUT.tflite"``).
    """
    p = pathlib.Path(path)
    name = name or "the output"
    if suffix and p.suffix.lower() != suffix:
        raise CLIError(f"{path}: {name} must end with {suffix}")
    if source is not None and same_file(p, source):
        raise CLIError(
            f"{path}: {name} is the input file {source}; write to another file "
            "(the input is never overwritten)"
        )
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
        raise CLIError(f"{path}: cannot write the output: {one_line(err.strerror or err)}")
    return p


def check_output_dir(path):
    """Create folder ``path`` if needed; CLIError unless files can be written there."""
    p = pathlib.Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".probe-"):
            pass
    except OSError as err:
        raise CLIError(f"{path}: cannot write to the output folder: {one_line(err)}")
    return p


# --------------------------------------------------------------------- models
def import_modules(names):
    """Import the ``--import`` modules (so their registered Keras classes load).

    Each is a dotted module name importable from the current folder, or the
    path of a ``.py`` file. Returns the imported modules.
    """
    import importlib
    import importlib.util

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    modules = []
    for name in names or ():
        try:
            if name.endswith(".py") or os.sep in name or "/" in name:
                path = pathlib.Path(name)
                if not path.is_file():
                    raise CLIError(f"--import {name}: no such file")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules.setdefault(path.stem, module)
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(name)
        except CLIError:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SyntaxError, SystemExit, ... of the user's code
            raise CLIError(
                f"--import {name}: cannot import it: {type(err).__name__}: {one_line(err)}"
            )
        modules.append(module)
    return modules


_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")
_MODULE_OF = re.compile(r"Full object config: \{'module': '([^']+)'")


def load_error_text(err):
    """The essential sentence of a Keras load error, with a fix for unknown classes."""
    text = one_line(err)
    for e in (err, err.__cause__, err.__context__):
        if e is not None and _UNKNOWN_CLASS.search(one_line(e)):
            text = one_line(e)
            break
    found = _UNKNOWN_CLASS.search(text)
    if found:
        module = _MODULE_OF.search(text)
        where = f" (module '{module.group(1)}')" if module else ""
        example = module.group(1) if module and not module.group(1).startswith("keras") else (
            "my_layers")
        return (
            f"{found.group(0)}{where}: pass --import MODULE, the Python module (dotted name "
            f"importable from the current folder, or a .py file) that defines and registers "
            f"it, e.g. --import {example}"
        )
    return text if len(text) <= 400 else text[:397] + "..."


def load_model(path, safe_mode=True):
    """The ``keras.Model`` saved at ``path`` (basis layers registered)."""
    import keras

    import keras_basis  # noqa: F401  (registers the basis layers for loading)

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as err:  # Keras raises many types on a foreign file
        raise CLIError(f"{path}: cannot load the Keras model: {load_error_text(err)}")
    if not isinstance(model, keras.Model):
        raise CLIError(f"{path}: holds a {type(model).__name__}, not a keras.Model")
    return model


def save_model(model, path):
    """Save ``model`` as .keras atomically (temp file in the same folder)."""
    from keras_basis import fileio

    return fileio.atomic_write(path, model.save)


def input_geometry(model, image_size=None, *, images=False):
    """``(height, width, channels)`` of a single-image-input model.

    Args:
        model: a ``keras.Model`` with one ``(batch, H, W, C)`` input.
        image_size: ``(H, W)`` replacing the model's (``--image-size``).
        images: the input is fed from image files, so C must be 1 or 3.
    """
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
    if images and c not in (1, 3):
        raise CLIError(
            f"model '{model.name}' has {c} input channels; calibration images must be "
            "grayscale (1) or RGB (3)"
        )
    return h, w, c


# --------------------------------------------------------------------- images
def image_files(folder):
    """Sorted image files under ``folder`` (recursive); CLIError when none."""
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


def _per_channel(values, channels, flag):
    import numpy as np

    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if v.size not in (1, channels):
        raise CLIError(
            f"{flag} needs 1 or {channels} comma-separated values (the model has {channels} "
            f"input channels); received {v.size}"
        )
    return v


def check_normalisation(model, args):
    """CLIError unless ``--scale`` / ``--offset`` have 1 value or 1 per input channel."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            return
        shape = shape[0]
    channels = shape[-1]
    if channels is not None:
        _per_channel(args.scale, int(channels), "--scale")
        _per_channel(args.offset, int(channels), "--offset")


def normalise(pixels01, channels, scale=(1.0,), offset=(0.0,)):
    """``pixels01 * SCALE + OFFSET``, with one value or one per channel."""
    import numpy as np

    s = _per_channel(scale, channels, "--scale")
    o = _per_channel(offset, channels, "--offset")
    return (np.asarray(pixels01, np.float32) * s + o).astype(np.float32)


def load_images(folder, size, channels, *, limit=200, scale=(1.0,), offset=(0.0,)):
    """Images of ``folder`` as a float32 batch ``(N, H, W, C)``.

    Files are sorted, ``limit`` of them are taken evenly spaced over the list (so
    that a class-per-subfolder layout is covered), converted to grayscale or
    RGB, resized bilinearly to ``size = (H, W)`` and normalised as
    ``pixel / 255 * scale + offset`` (``scale``, ``offset``: one value or one
    per channel).
    """
    import numpy as np

    try:
        from PIL import Image
    except ImportError:
        raise CLIError("reading calibration images needs Pillow: pip install pillow")
    files = image_files(folder)
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
            raise CLIError(f"{f}: cannot read the image: {one_line(err)}")
        batch.append(a[..., None] if channels == 1 else a)
    return normalise(np.stack(batch), channels, scale, offset)


def calibration(model, args):
    """The ``--calibration-dir`` images for ``model``, or None without the flag."""
    if not args.calibration_dir:
        return None
    h, w, c = input_geometry(model, args.image_size, images=True)
    return load_images(
        args.calibration_dir,
        (h, w),
        c,
        limit=args.num_calibration,
        scale=args.scale,
        offset=args.offset,
    )


def format_table(header, rows, align=None):
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
