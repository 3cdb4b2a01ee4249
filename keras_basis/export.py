"""TFLite (LiteRT) export of Keras 3 models, basis models included.

One call turns a model into a ``.tflite`` file: float32,
float16 weights, dynamic-range or full-integer int8, builtin ops only, written
atomically. Optionally folds basis pairs back into dense convolutions first
(``fold``), everywhere or only where the dense form measured faster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import tempfile
import warnings

import numpy as np

__all__ = ["export_tflite"]

QUANTIZE_MODES = (None, "float16", "dynamic", "int8")


# ----------------------------------------------------------------- validation
def _check_model(model):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            "Invalid type for argument `model`. Expected a keras.Model. "
            f"Received model={model!r} of type {type(model).__name__}."
        )
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Invalid value for argument `model`: model '{model.name}' has no known "
            "inputs. Expected a built Functional or Sequential model with an Input. "
            f"Received model={model.name!r} (built={model.built})."
        )


def _input_shapes(model, input_shape, batch_size):
    """Static (batch, ...) shapes of every model input, filling ``None`` dims."""
    shapes = [tuple(t.shape) for t in model.inputs]
    if input_shape is not None:
        given = [input_shape] if len(shapes) == 1 else list(input_shape)
        if len(given) != len(shapes) or any(
            len(tuple(g)) != len(s) - 1 for g, s in zip(given, shapes)
        ):
            raise ValueError(
                "Invalid value for argument `input_shape`. Expected the shape of each "
                f"input without the batch axis, e.g. {[s[1:] for s in shapes]}. "
                f"Received input_shape={input_shape!r}."
            )
        merged = []
        for g, s in zip(given, shapes):
            for gi, si in zip(g, s[1:]):
                if si is not None and gi != si:
                    raise ValueError(
                        "Invalid value for argument `input_shape`. It conflicts with the "
                        f"model's input shape {s}. Received input_shape={input_shape!r}."
                    )
            merged.append((s[0],) + tuple(int(v) for v in g))
        shapes = merged
    out = []
    for s in shapes:
        if any(v is None for v in s[1:]):
            raise ValueError(
                f"Model '{model.name}' has an input of shape {s} with unknown dimensions. "
                "Expected `input_shape` to fix them (without the batch axis), e.g. "
                f"input_shape={tuple(128 if v is None else v for v in s[1:])}. "
                "Received input_shape=None."
            )
        out.append((batch_size,) + tuple(int(v) for v in s[1:]))
    return out


def _check_options(quantize, representative_dataset, int8_io, batch_size, fold):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            "Invalid value for argument `quantize`. Expected one of "
            f"{QUANTIZE_MODES}. Received quantize={quantize!r}."
        )
    if quantize == "int8" and representative_dataset is None:
        raise ValueError(
            "Argument `representative_dataset` is required with quantize='int8' "
            "(full-integer quantization is calibrated on it). Expected an array of "
            "input samples, a tf.data.Dataset or a generator function. "
            "Received representative_dataset=None."
        )
    if int8_io and quantize != "int8":
        raise ValueError(
            "Argument `int8_io=True` needs quantize='int8'. "
            f"Received quantize={quantize!r}."
        )
    if not (
        fold is False
        or fold is None
        or fold is True
        or (isinstance(fold, str) and fold == "auto")
        or (isinstance(fold, (list, tuple)) and all(isinstance(n, str) for n in fold))
    ):
        raise ValueError(
            "Invalid value for argument `fold`. Expected False, True, 'auto' or a list "
            f"of coefficient-layer names. Received fold={fold!r}."
        )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected a positive int or None "
            f"(dynamic batch). Received batch_size={batch_size!r}."
        )


# -------------------------------------------------------- representative data
def _calibration_samples(data, shapes, steps):
    """Yield lists of float32 arrays of batch 1, one per model input.

    ``data`` is an array (samples along axis 0; a list of arrays for several
    inputs), a ``tf.data.Dataset`` (batched or not; ``(x, y)`` elements use
    ``x``) or a callable returning an iterable of such elements.
    """
    import tensorflow as tf

    n_inputs = len(shapes)
    if isinstance(data, tf.data.Dataset):
        source = data.as_numpy_iterator()
    elif callable(data):
        source = data()
    elif isinstance(data, np.ndarray) or (
        isinstance(data, (list, tuple)) and n_inputs > 1
    ):
        arrays = [np.asarray(data)] if n_inputs == 1 else [np.asarray(a) for a in data]
        source = [arrays]  # one "batch" holding every sample
    else:
        raise TypeError(
            "Invalid type for argument `representative_dataset`. Expected a NumPy "
            "array, a tf.data.Dataset or a callable returning an iterable. Received "
            f"representative_dataset of type {type(data).__name__}."
        )
    count = 0
    for item in source:
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, (list, tuple)):
            item = list(item)[:n_inputs] if n_inputs > 1 else [item[0]]
        else:
            item = [item]
        item = [np.asarray(a, dtype=np.float32) for a in item]
        for a, s in zip(item, shapes):
            if a.ndim == len(s) - 1:
                continue
            if a.ndim != len(s) or tuple(a.shape[1:]) != tuple(s[1:]):
                raise ValueError(
                    "Invalid value for argument `representative_dataset`. Expected "
                    f"samples of shape {tuple(s[1:])} (optionally batched). Received "
                    f"an element of shape {a.shape}."
                )
        batched = [a if a.ndim == len(s) else a[None] for a, s in zip(item, shapes)]
        for i in range(len(batched[0])):
            yield [a[i : i + 1] for a in batched]
            count += 1
            if count >= steps:
                return
    if count == 0:
        raise ValueError(
            "Invalid value for argument `representative_dataset`: it yielded no "
            "samples. Expected at least one input sample."
        )


# ------------------------------------------------------------------ conversion
def _convert(model, shapes, quantize, representative_dataset, int8_io, steps,
             sliced_bases="pad"):
    """Convert ``model`` traced at ``shapes`` to TFLite flatbuffer bytes."""
    import tensorflow as tf

    from keras_basis.layers import sliced_basis_mode

    samples = None
    if quantize == "int8":  # validate the data before any heavy work
        samples = list(_calibration_samples(representative_dataset, shapes, steps))
    # Trace at a static signature, then convert the frozen concrete function:
    # the variables become constants, so a basis shared by several layers is
    # one constant, stored once. (Same ops and sizes as Keras'
    # ExportArchive -> SavedModel route, about 5x faster to convert, which
    # matters for ``fold="auto"``; TF logs this route as "deprecated" because
    # it freezes variables, which is exactly what we want here.)
    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    if len(specs) == 1:
        fn = tf.function(lambda x: model(x, training=False))
    else:
        fn = tf.function(lambda *xs: model(list(xs), training=False))
    with sliced_basis_mode("pad" if sliced_bases == "pad" else "slice"):
        concrete = fn.get_concrete_function(*specs)
    with _quiet_absl():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        return _configure_and_convert(converter, model.name, quantize, samples, int8_io)


@contextlib.contextmanager
def _quiet_absl():
    """Drop the converter's "provide trackable_obj" deprecation line."""
    logger = logging.getLogger("absl")

    def keep(record):
        return "trackable_obj" not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _configure_and_convert(converter, name, quantize, samples, int8_io):
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Statistics for quantized inputs")
            return converter.convert()
    except Exception as err:  # the converter raises several private types
        hint = (
            " With quantize='int8' every op needs an int8 kernel; try "
            "quantize='dynamic' to find the op that lacks one."
            if quantize == "int8"
            else ""
        )
        raise RuntimeError(
            f"TFLite conversion of model '{name}' failed (quantize={quantize!r}, "
            f"builtin ops only).{hint} Converter error: {err}"
        ) from err


def _is_scalar_prelu(layer):
    import keras

    return isinstance(layer, keras.layers.PReLU) and int(np.prod(layer.alpha.shape)) == 1


def _prelu_as_leaky_relu(model):
    """Copy of ``model`` with every single-slope PReLU as an equal LeakyReLU.

    ``PReLU(x) = max(x, 0) + a * min(x, 0)`` with one ``a`` is exactly
    ``LeakyReLU(negative_slope=a)``; TFLite runs int8 LEAKY_RELU in XNNPACK
    but int8 PRELU in a slow builtin kernel (see benchmarks/RESULTS.md).
    """
    import keras

    from keras_basis._transform.clone import Cloner

    def walk(m):
        for layer in m.layers:
            yield from walk(layer) if isinstance(layer, keras.Model) else (layer,)

    if not any(_is_scalar_prelu(layer) for layer in walk(model)):
        return model

    def layer_fn(layer):
        if not _is_scalar_prelu(layer):
            return None  # plain copy with the same weights
        alpha = float(np.asarray(keras.ops.convert_to_numpy(layer.alpha)).reshape(()))
        leaky = keras.layers.LeakyReLU(negative_slope=alpha, name=layer.name)
        leaky.built = True  # no weights: nothing to copy
        return leaky

    return Cloner(layer_fn)(model)


def _warn_sliced_sharing(model):
    """TFLite conv weights are constants: each slice of a basis is its own copy."""
    from keras_basis.transform import basis_pairs

    depths = {}
    for pair in basis_pairs(model):
        if pair.p < pair.basis_layer.depth:
            depths.setdefault(pair.basis_layer.name, set()).add(pair.p)
    if depths:
        detail = ", ".join(f"'{name}' ({len(d)} slices)" for name, d in sorted(depths.items()))
        warnings.warn(
            f"Model '{model.name}' uses sliced bases (a layer with fewer input channels "
            f"than the basis depth uses its first channels): {detail}. TFLite convolution "
            "weights are constants, so with sliced_bases='copy' every distinct slice is "
            "stored as its own copy and the file is larger than the parameter count "
            "suggests; sliced_bases='pad' stores each basis once.",
            stacklevel=3,
        )


def _write_atomic(path, content):
    """Write bytes to ``path`` through a temp file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _apply_fold(model, fold, quantize, representative_dataset, shapes, fold_threads):
    if fold is False or fold is None:
        return model
    from keras_basis import tflite as _tflite
    from keras_basis.transform import basis_pairs, decompress

    if fold is True:
        names = [pair.name for pair in basis_pairs(model)]
    elif fold == "auto":
        given = [s[1:] for s in shapes]
        plan = _tflite.fold_plan(
            model,
            quantize=quantize,
            threads=fold_threads,
            input_shape=given[0] if len(given) == 1 else given,
        )
        names = [row["coefficients"] for row in plan if row["fold"]]
    else:
        names = list(fold)
    if not names:
        return model
    return decompress(model, layers=names)


# ----------------------------------------------------------------------- API
def export_tflite(
    model,
    path,
    *,
    quantize=None,
    representative_dataset=None,
    int8_io=False,
    fold=False,
    input_shape=None,
    batch_size=1,
    calibration_steps=200,
    fold_threads=1,
    prelu_to_leaky_relu=True,
    sliced_bases="pad",
):
    """Convert a Keras model (basis layers included) to a ``.tflite`` file.

    The model is traced at a static input shape (batch ``batch_size``) and
    converted with the TensorFlow Lite converter, builtin ops only (no Flex,
    no custom ops). Variables are frozen into constants, so a basis shared by
    several layers is stored once. The file is written atomically: a failed
    conversion leaves no file behind and keeps an existing file untouched.
    The caller's model is never modified.

    Args:
        model: a built ``keras.Model``.
        path: destination file (its folder must exist).
        quantize: ``None`` (float32), ``"float16"`` (float16 weights),
            ``"dynamic"`` (int8 weights, float activations) or ``"int8"``
            (full-integer: int8 weights and activations, int32 biases,
            calibrated on ``representative_dataset``).
        representative_dataset: calibration inputs for ``quantize="int8"``:
            an array of samples ``(N, H, W, C)`` (a list of arrays for a
            multi-input model), a ``tf.data.Dataset`` (batched or not;
            ``(x, y)`` elements use ``x``), or a callable returning an
            iterable of such elements. Use data preprocessed exactly like the
            model's inputs.
        int8_io: with ``quantize="int8"``, make the file's inputs and outputs
            int8 too (default float32 with (de)quantize ops at the ends).
        fold: fold basis pairs back into dense ``Conv2D`` before conversion:
            ``False`` (default), ``True`` (all), ``"auto"`` (only the pairs
            whose dense form measured faster as a one-layer TFLite model at the
            layer's input shape, batch 1, ``fold_threads`` threads; see
            ``keras_basis.tflite.fold_plan``), or a list of coefficient-conv
            names. Uses ``keras_basis.decompress``.
        input_shape: the input shape without the batch axis, needed when the
            model has unknown spatial dims (e.g. ``(128, 128, 3)`` for a
            fully convolutional super-resolution network); a list for several
            inputs.
        batch_size: static batch size of the file (default 1, what phones
            run); ``None`` keeps a dynamic batch axis.
        calibration_steps: at most this many samples are used to calibrate.
        fold_threads: threads used to time the pairs with ``fold="auto"``.
        prelu_to_leaky_relu: export every ``PReLU`` that has a single slope
            (``shared_axes`` covering all axes, as in SRResNet) as the equal
            ``LeakyReLU`` (default True): int8 PRELU has no fast kernel in
            TFLite/XNNPACK and dominated SRResNet's int8 latency.
        sliced_bases: how a layer that uses only the first channels of a
            deeper shared basis (network-wide sharing, as the paper's
            DenseNet) is exported. ``"pad"`` (default) zero-pads its input to
            the basis depth, so the file stores the basis once (more MACs for
            the narrow layers); ``"copy"`` convolves with the slice, which
            TFLite stores as one more constant per distinct slice (fewer MACs,
            larger file; a warning says how many).

    Returns:
        ``pathlib.Path`` of the written file.

    Raises:
        ValueError: bad arguments, e.g. ``quantize="int8"`` without
            ``representative_dataset``.
        RuntimeError: the converter failed (no file is written).

    Example:

    >>> keras_basis.export_tflite(model, "/tmp/m.tflite")
    >>> keras_basis.export_tflite(model, "/tmp/m_int8.tflite", quantize="int8",
    ...                           representative_dataset=x_train[:200])
    """
    _check_model(model)
    _check_options(quantize, representative_dataset, int8_io, batch_size, fold)
    if isinstance(calibration_steps, bool) or not isinstance(calibration_steps, int) or (
        calibration_steps < 1
    ):
        raise ValueError(
            "Invalid value for argument `calibration_steps`. Expected a positive int. "
            f"Received calibration_steps={calibration_steps!r}."
        )
    try:
        path = pathlib.Path(os.fspath(path))
    except TypeError:
        raise TypeError(
            "Invalid type for argument `path`. Expected a str or os.PathLike. "
            f"Received path={path!r} of type {type(path).__name__}."
        ) from None
    if not path.parent.is_dir():
        raise ValueError(
            "Invalid value for argument `path`: its folder does not exist. Expected an "
            f"existing folder. Received path='{path}'."
        )
    shapes = _input_shapes(model, input_shape, batch_size or 1)
    model = _apply_fold(model, fold, quantize, representative_dataset, shapes, fold_threads)
    if prelu_to_leaky_relu:
        model = _prelu_as_leaky_relu(model)
    if sliced_bases not in ("pad", "copy"):
        raise ValueError(
            "Invalid value for argument `sliced_bases`. Expected 'pad' or 'copy'. "
            f"Received sliced_bases={sliced_bases!r}."
        )
    if sliced_bases == "copy":
        _warn_sliced_sharing(model)
    if batch_size is None:
        shapes = [(None,) + s[1:] for s in shapes]
    content = _convert(
        model, shapes, quantize, representative_dataset, int8_io, calibration_steps,
        sliced_bases,
    )
    _write_atomic(path, content)
    return path
