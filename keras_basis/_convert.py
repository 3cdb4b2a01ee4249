"""Keras -> TFLite conversion core: model checks, input shapes, calibration, convert.

Shared by ``keras_basis.export`` (``export_tflite``) and the fold-back timing
(``keras_basis._fold.fold_plan``), which converts one-layer models. It knows
nothing about basis layers: what a model computes is decided by its layers
(e.g. ``BasisConv2D(narrow_inputs="pad")``) before it gets here.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

from keras_basis import _shrink
from keras_basis._checks import check_finite

__all__ = [
    "calibration_samples", "check_backend", "check_int8", "check_model", "convert",
    "input_shapes",
]


def check_backend():
    """TFLite conversion traces TensorFlow graphs: Keras must run on TensorFlow."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            "TFLite export needs the TensorFlow backend of Keras (the converter traces "
            f"TensorFlow graphs); Keras runs on the {backend!r} backend. Expected "
            "KERAS_BACKEND=tensorflow: save the model (model.save('m.keras')) and export "
            "it from a process started with KERAS_BACKEND=tensorflow."
        )


def check_model(model):
    import keras

    check_backend()
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


def input_shapes(model, input_shape, batch_size):
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


def calibration_samples(data, shapes, steps):
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
    for index, item in enumerate(source):
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, (list, tuple)):
            item = list(item)[:n_inputs] if n_inputs > 1 else [item[0]]
        else:
            item = [item]
        # Checked as drawn (a generator is never materialised): NaN or inf makes
        # the converter drop int8 quantization silently and write a float file.
        item = [
            check_finite("representative_dataset", np.asarray(a, dtype=np.float32),
                         f"element {index}" + (f", input {j}" if n_inputs > 1 else ""))
            for j, a in enumerate(item)
        ]
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


def convert(model, shapes, quantize, representative_dataset, int8_io, steps, shrink=True):
    """Convert ``model`` traced at ``shapes`` to TFLite flatbuffer bytes.

    Args:
        model: a built ``keras.Model``.
        shapes: static ``(batch, ...)`` shape of every input (batch may be None).
        quantize: ``None``, ``"float16"``, ``"dynamic"`` or ``"int8"``.
        representative_dataset: calibration data for ``"int8"`` (see
            :func:`calibration_samples`).
        int8_io: int8 file inputs and outputs (``"int8"`` only).
        steps: at most this many calibration samples.
        shrink: rewrite the converter's file with :func:`keras_basis._shrink.shrink`
            (default True): each identical vector and table stored once, no names
            on internal tensors; the model the runtime reads is the same, field
            by field.

    Returns:
        bytes.

    Raises:
        RuntimeError: the converter failed.
    """
    import tensorflow as tf

    samples = None
    if quantize == "int8":  # validate the data before any heavy work
        samples = list(calibration_samples(representative_dataset, shapes, steps))
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
    concrete = fn.get_concrete_function(*specs)
    with _quiet_absl():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        content = _configure_and_convert(converter, model.name, quantize, samples, int8_io)
    if quantize == "int8":
        check_int8(content, model.name)  # before shrink: its message names the tensors
    return _shrink.shrink(content) if shrink else content


WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def check_int8(content, name):
    """Raise unless every weighted op of ``content`` (TFLite bytes) has int8 weights.

    The converter can fall back to float kernels without an error (e.g. when
    calibration statistics are unusable); a file asked for as int8 must be
    int8.
    """
    from keras_basis import tflite

    floats = [
        f"{op['op']} ({op['inputs'][1]['name']}: {op['inputs'][1]['dtype']})"
        for op in tflite._read_ops(content, tflite._schema(tensorflow_fallback=True))
        if op["op"] in WEIGHTED_OPS and len(op["inputs"]) > 1
        and op["inputs"][1]["dtype"] != "INT8"
    ]
    if floats:
        raise RuntimeError(
            f"TFLite conversion of model '{name}' with quantize='int8' did not quantize "
            f"{len(floats)} weighted op(s) to int8: {', '.join(floats[:4])}"
            f"{' ...' if len(floats) > 4 else ''}. Expected int8 weights everywhere; "
            "no file is written. Check that `representative_dataset` is preprocessed "
            "like the model's inputs."
        )


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
