"""TFLite (LiteRT) export of Keras 3 models, basis models included.

One call turns a model into a ``.tflite`` file: float32,
float16 weights, dynamic-range or full-integer int8, builtin ops only, written
atomically. Optionally folds basis pairs back into dense convolutions first
(``fold``), everywhere or only where the dense form is faster, and gives every
kept basis its fastest split form (:func:`fold_plan`, driven by the latency
table of :mod:`keras_basis.latency`).
"""

from __future__ import annotations

import os
import pathlib
import warnings

import keras
import numpy as np

from keras_basis import _convert, fileio
from keras_basis._fold import fold_plan, split_modes
from keras_basis._transform import clone, graph
from keras_basis.layers import BasisConv2D
from keras_basis.transform import basis_pairs, decompress

__all__ = ["export_tflite", "fold_plan", "split_modes"]

QUANTIZE_MODES = (None, "float16", "dynamic", "int8")
SPLIT_MODES = ("batch", "dilated")


def _check_split_mode(split_mode, model):
    """None, "batch", "dilated" or {basis layer name: "batch" | "dilated"}."""
    if split_mode is None or (isinstance(split_mode, str) and split_mode in SPLIT_MODES):
        return split_mode
    if not isinstance(split_mode, dict):
        raise ValueError(
            "Invalid value for argument `split_mode`. Expected None, 'batch', 'dilated' or "
            "a dict {basis layer name: 'batch' | 'dilated'}. "
            f"Received split_mode={split_mode!r}."
        )
    bases = sorted({pair.basis_layer.name for pair in basis_pairs(model)})
    for name, mode in split_mode.items():
        if name not in bases:
            raise ValueError(
                f"Invalid value for argument `split_mode`: {name!r} is not a basis layer of "
                f"model '{model.name}'. Expected names from {bases!r}. "
                f"Received split_mode={split_mode!r}."
            )
        if mode not in SPLIT_MODES:
            raise ValueError(
                f"Invalid value for argument `split_mode` of basis layer '{name}'. Expected "
                f"one of {SPLIT_MODES}. Received {mode!r}."
            )
    return split_mode


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


def _is_scalar_prelu(layer):
    return isinstance(layer, keras.layers.PReLU) and int(np.prod(layer.alpha.shape)) == 1


def _narrow_calls(layer, owner):
    """Whether ``layer`` is a BasisConv2D called on fewer channels than its depth."""
    return isinstance(layer, BasisConv2D) and any(
        int(ins[-1]) < layer.depth for ins, _ in graph.call_shapes(layer, owner)
    )


def _is_reduced_precision(layer):
    """Whether ``layer`` computes or stores in float16/bfloat16 (mixed precision)."""
    policy = getattr(layer, "dtype_policy", None)
    dtypes = {getattr(policy, "compute_dtype", None), getattr(policy, "variable_dtype", None)}
    return bool(dtypes & {"float16", "bfloat16"})


def _export_copy(model, prelu_to_leaky_relu, narrow_inputs, split_mode=None):
    """``model``, or a copy whose layers compute the same in an export-friendly way.

    * Every single-slope PReLU becomes the equal LeakyReLU (with
      ``prelu_to_leaky_relu``): ``PReLU(x) = max(x, 0) + a * min(x, 0)`` with
      one ``a`` is exactly ``LeakyReLU(negative_slope=a)``; TFLite runs int8
      LEAKY_RELU in XNNPACK but int8 PRELU in a slow builtin kernel (see
      benchmarks/RESULTS.md).
    * Every BasisConv2D called on fewer channels than its depth gets
      ``narrow_inputs`` (``"pad"``: the file stores the basis once; ``"slice"``:
      one constant per distinct slice).
    * Every BasisConv2D gets the split form ``split_mode`` asks for (one
      mode for all, or a dict by basis layer name; None keeps each layer's).
    * Every layer under a float16/bfloat16 policy (``mixed_float16``,
      ``mixed_bfloat16``) is copied under ``"float32"`` with the same
      weights (mixed-precision variables are float32 already): the builtin
      TFLite kernels are float32 (or int8), and the float32 file computes
      what the model computes, without the float16 rounding.
    """
    prelus = {id(ly) for ly, _ in graph.walk(model)
              if prelu_to_leaky_relu and _is_scalar_prelu(ly)}
    narrow = {id(ly) for ly, ow in graph.walk(model)
              if _narrow_calls(ly, ow) and ly.narrow_inputs != narrow_inputs}
    low = {id(ly) for ly, _ in graph.walk(model) if _is_reduced_precision(ly)}
    modes = {}
    for ly, _ in graph.walk(model):
        if isinstance(ly, BasisConv2D) and split_mode is not None:
            mode = split_mode if isinstance(split_mode, str) else split_mode.get(ly.name)
            if mode is not None and mode != ly.split_mode:
                modes[id(ly)] = mode
    if not prelus and not narrow and not low and not modes:
        return model

    def edit(config, layer):
        if id(layer) in narrow:
            config["narrow_inputs"] = narrow_inputs
        if id(layer) in modes:
            config["split_mode"] = modes[id(layer)]
        if id(layer) in low:
            config["dtype"] = "float32"
        return config

    def layer_fn(layer):
        if id(layer) in narrow or id(layer) in modes or (
                id(layer) in low and id(layer) not in prelus):
            return clone.copy_layer(layer, lambda config: edit(config, layer))
        if id(layer) not in prelus:
            return None  # plain copy with the same weights
        alpha = float(np.asarray(keras.ops.convert_to_numpy(layer.alpha)).reshape(()))
        leaky = keras.layers.LeakyReLU(negative_slope=alpha, name=layer.name)
        leaky.built = True  # no weights: nothing to copy
        return leaky

    return clone.Cloner(layer_fn)(model)


def _warn_sliced_sharing(model):
    """TFLite conv weights are constants: each slice of a basis is its own copy."""
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


def _apply_fold(model, fold, quantize, shapes, fold_threads, latency_table, split_mode):
    """``(model with the chosen pairs folded, split modes of the kept bases)``."""
    if fold is False or fold is None:
        return model, split_mode
    if fold is True:
        names = [pair.name for pair in basis_pairs(model)]
    elif fold == "auto":
        given = [s[1:] for s in shapes]
        plan = fold_plan(
            model,
            quantize=quantize,
            threads=fold_threads,
            input_shape=given[0] if len(given) == 1 else given,
            latency_table=latency_table,
        )
        names = [row["coefficients"] for row in plan if row["fold"]]
        if split_mode is None:  # the measured fastest split form of every kept basis
            split_mode = split_modes(plan)
    else:
        names = list(fold)
        known = sorted(pair.name for pair in basis_pairs(model))
        unknown = [nm for nm in names if nm not in known]
        if unknown:
            raise ValueError(
                f"Invalid value for argument `fold`: {unknown[0]!r} is not the coefficient "
                f"layer of a basis pair of model '{model.name}'. Expected names from "
                f"{known!r}. Received fold={fold!r}."
            )
    if not names:
        return model, split_mode
    folded = decompress(model, layers=names)
    if isinstance(split_mode, dict):  # bases left without a pair are gone
        kept = {pair.basis_layer.name for pair in basis_pairs(folded)}
        split_mode = {name: mode for name, mode in split_mode.items() if name in kept}
    return folded, split_mode


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
    return_content=False,
    split_mode=None,
    latency_table=None,
    shrink=True,
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
        path: destination file (its folder must exist); None with
            ``return_content=True`` converts without writing.
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
            whose dense form is faster as a one-layer TFLite model at the
            layer's input shape, batch 1, ``fold_threads`` threads, according
            to ``latency_table`` or measured here; the kept bases get their
            faster split form unless ``split_mode`` is given; see
            :func:`fold_plan`), or a list of coefficient-conv names. Uses
            ``keras_basis.decompress``.
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

        split_mode: the split form of the exported basis layers (the same
            result): None (default: as each layer has it, or measured with
            ``fold="auto"``), ``"batch"``, ``"dilated"`` (transpose-free, where
            exact) or a dict ``{basis layer name: mode}``.
        latency_table: with ``fold="auto"``: a path or
            ``keras_basis.latency.LatencyTable`` of layer timings (e.g. from a
            phone, see tflite/README.md); missing entries are measured here.
        shrink: rewrite the converter's file without changing the model
            (default True): internal tensors lose their names (inputs, outputs
            and signature tensors keep theirs), tensors without data share the
            empty buffer 0, and every identical vector and table is stored
            once. False keeps the converter's bytes, names included.
            ``keras_basis.tflite.size_breakdown`` shows where the bytes go.
        return_content: also return the bytes written (default False). Verify
            and measure those (``keras_basis.tflite.compare_with_keras``
            accepts bytes; ``len(content)`` is the size), not the file at
            ``path``, which a concurrent export to the same path may have
            replaced since.

    Returns:
        ``pathlib.Path`` of the written file; with ``return_content=True``
        the pair ``(path, content)`` (``path`` None when nothing was written).

    Raises:
        ValueError: bad arguments, e.g. ``quantize="int8"`` without
            ``representative_dataset``, NaN or inf in
            ``representative_dataset``, or an unknown name in ``fold``.
        RuntimeError: the converter failed, or a ``quantize="int8"`` file
            came out with float weights (no file is written), or Keras does
            not run on TensorFlow (the converter traces TensorFlow graphs).
        OSError: the file could not be written (the message names ``path``;
            an existing file is left as it was).

    Models under a mixed-precision policy (``mixed_float16``) are exported in
    float32 (copied under the float32 policy with the same weights).

    Example:

    >>> keras_basis.export_tflite(model, "/tmp/m.tflite")
    >>> keras_basis.export_tflite(model, "/tmp/m_int8.tflite", quantize="int8",
    ...                           representative_dataset=x_train[:200])
    """
    _convert.check_model(model)
    _check_options(quantize, representative_dataset, int8_io, batch_size, fold)
    if isinstance(calibration_steps, bool) or not isinstance(calibration_steps, int) or (
        calibration_steps < 1
    ):
        raise ValueError(
            "Invalid value for argument `calibration_steps`. Expected a positive int. "
            f"Received calibration_steps={calibration_steps!r}."
        )
    if path is None:
        if not return_content:
            raise TypeError(
                "Invalid value for argument `path`: None is allowed only with "
                "return_content=True (the bytes are returned, nothing is written). "
                "Received path=None, return_content=False."
            )
    else:
        path = _check_path(path)
    shapes = _convert.input_shapes(model, input_shape, batch_size or 1)
    split_mode = _check_split_mode(split_mode, model)
    model, split_mode = _apply_fold(model, fold, quantize, shapes, fold_threads, latency_table,
                                    split_mode)
    if sliced_bases not in ("pad", "copy"):
        raise ValueError(
            "Invalid value for argument `sliced_bases`. Expected 'pad' or 'copy'. "
            f"Received sliced_bases={sliced_bases!r}."
        )
    if sliced_bases == "copy":
        _warn_sliced_sharing(model)
    narrow_inputs = "pad" if sliced_bases == "pad" else "slice"
    model = _export_copy(model, prelu_to_leaky_relu, narrow_inputs, split_mode)
    if batch_size is None:
        shapes = [(None,) + s[1:] for s in shapes]
    content = _convert.convert(
        model, shapes, quantize, representative_dataset, int8_io, calibration_steps,
        shrink=shrink,
    )
    if path is not None:
        fileio.write_bytes(path, content)
    return (path, content) if return_content else path


def _check_path(path):
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
    return path
