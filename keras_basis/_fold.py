"""fold_plan(): time every basis pair against its dense form, as TFLite files.

Each pair becomes two one-layer Keras models (the pair, and the dense
``Conv2D`` it equals), converted with the export's converter core
(``keras_basis._convert``) and timed with ``keras_basis.tflite``.
``export_tflite(fold="auto")`` folds the pairs whose dense form is faster.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_basis import _convert, tflite
from keras_basis._transform import graph
from keras_basis._transform.macs import count_macs
from keras_basis.layers import BasisConv2D

__all__ = ["fold_plan"]


def _static_pair_shapes(model, pairs, input_shapes):
    """Input shapes of the basis calls for a static model input shape.

    Symbolic propagation (``compute_output_spec``) through a probe model that
    ends at the basis inputs: no computation, no new nodes on the caller's
    layers.
    """
    tensors, names = [], []
    for pair in pairs:
        if pair.owner is not model:
            raise ValueError(
                f"Cannot infer the input shape of basis pair '{pair.name}' inside the "
                f"nested model '{pair.owner.name}'. Expected a model whose basis pairs "
                "are its own layers, or a nested model with a static input shape."
            )
        tensors.append(graph.pair_input(pair))
        names.append(pair.name)
    probe = keras.Model(model.inputs, tensors)
    specs = [keras.KerasTensor(shape) for shape in input_shapes]
    out = probe.compute_output_spec(specs[0] if len(specs) == 1 else specs)
    out = out if isinstance(out, (list, tuple)) else [out]
    return {name: tuple(spec.shape) for name, spec in zip(names, out)}


def _pair_models(pair, batch_shape):
    """One-layer Keras models: a basis pair and the dense conv it equals.

    A narrow input (fewer channels than the basis depth) is zero-padded, as
    ``export_tflite``'s default ``sliced_bases="pad"`` does.
    """
    basis, coef = pair.basis_layer, pair.coef_layer
    geometry = {
        "strides": pair.strides,
        "padding": pair.padding,
        "dilation_rate": pair.dilation_rate,
    }
    x = keras.Input(batch_shape=batch_shape)
    y = BasisConv2D(
        pair.m, pair.kernel_size, depth=basis.depth, use_bias=basis.use_bias,
        narrow_inputs="pad", **geometry,
    )(x)
    y = keras.layers.Conv2D(pair.n, 1, use_bias=coef.use_bias)(y)
    dense = keras.layers.Conv2D(pair.n, pair.kernel_size, use_bias=coef.use_bias, **geometry)
    return keras.Model(x, y), keras.Model(x, dense(x))


def fold_plan(model, *, quantize=None, threads=1, input_shape=None, runs=20, warmup=3):
    """Time every basis pair against its dense form; say which to fold back.

    Each pair (basis conv + 1x1 coefficients) and the dense ``Conv2D`` it
    equals are converted to one-layer TFLite models at the pair's input
    shape, batch 1, in the export's ``quantize`` mode (int8 calibrated on
    random data: the timing does not depend on the values), and timed with
    ``keras_basis.tflite.benchmark_tflite``. Pairs of identical geometry are
    timed once. This is also a per-layer profile of a basis model.

    Args:
        model: a ``keras.Model`` with basis pairs (``keras_basis.basis_pairs``).
        quantize: as in ``export_tflite``.
        threads: interpreter threads for the timing.
        input_shape: model input shape without batch, when it has unknown
            spatial dims (a list for several inputs).
        runs, warmup: as in ``benchmark_tflite``.

    Returns:
        list of dicts, one per pair in graph order: ``coefficients`` (the 1x1
        conv's name, what ``decompress(layers=...)`` takes), ``basis``,
        ``input_shape``, ``basis_ms``, ``dense_ms``, ``basis_macs``,
        ``dense_macs`` (per image, ``keras_basis.count_macs`` of the two
        one-layer models) and ``fold`` (True where dense is faster).

    Example:

    >>> [r["coefficients"] for r in keras_basis.export.fold_plan(model) if r["fold"]]
    ['stage1_block1_coef']
    """
    _convert.check_model(model)
    pairs = graph.basis_pairs(model)
    shapes = {pair.name: tuple(pair.input_shape) for pair in pairs}
    if any(None in shape[1:] for shape in shapes.values()):
        shapes.update(
            _static_pair_shapes(model, pairs, _convert.input_shapes(model, input_shape, 1))
        )
    rng = np.random.default_rng(0)
    cache, plan = {}, []
    for pair in pairs:
        batch_shape = (1,) + tuple(int(v) for v in shapes[pair.name][1:])
        key = (
            batch_shape, pair.n, pair.kernel_size, pair.s, pair.p, pair.m, pair.strides,
            pair.padding, pair.dilation_rate, pair.basis_layer.depth,
            pair.basis_layer.use_bias, pair.coef_layer.use_bias,
        )
        if key not in cache:
            pair_model, dense_model = _pair_models(pair, batch_shape)
            data = rng.standard_normal((8,) + batch_shape[1:]).astype(np.float32)
            timing = []
            for m in (pair_model, dense_model):
                content = _convert.convert(m, [batch_shape], quantize, data, False, 8)
                result = tflite.benchmark_tflite(
                    content, threads=threads, runs=runs, warmup=warmup
                )
                timing.append(result["median_ms"])
            cache[key] = (timing[0], timing[1], count_macs(pair_model), count_macs(dense_model))
        basis_ms, dense_ms, basis_macs, dense_macs = cache[key]
        plan.append(
            {
                "coefficients": pair.name,
                "basis": pair.basis_layer.name,
                "input_shape": batch_shape,
                "basis_ms": basis_ms,
                "dense_ms": dense_ms,
                "basis_macs": int(basis_macs),
                "dense_macs": int(dense_macs),
                "fold": dense_ms < basis_ms,
            }
        )
    return plan
