"""tfmot verbs for basis models: quantize, prune, cluster, strip, export."""

from __future__ import annotations

import keras
import numpy as np

from keras_basis import fileio
from keras_basis._tfmot._compat import ClusterWeights, PruneLowMagnitude, tf, tf_keras, tfmot
from keras_basis._tfmot.layers import BasisConv2D, BasisConv2DQuantizeConfig
from keras_basis._transform import graph

__all__ = [
    "cluster_basis_model",
    "coefficient_layers",
    "export_tflite",
    "prune_coefficients",
    "quantize_basis_model",
    "strip_clustering",
    "strip_pruning",
]

_qk = tfmot.quantization.keras
_sk = tfmot.sparsity.keras
_ck = tfmot.clustering.keras
_CENTROIDS = {
    "kmeans_plus_plus": _ck.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": _ck.CentroidInitialization.LINEAR,
    "density_based": _ck.CentroidInitialization.DENSITY_BASED,
    "random": _ck.CentroidInitialization.RANDOM,
}


def _require_tf_keras(model, fn, arg="model"):
    """Check at the door: a built tf_keras Sequential/functional model."""
    if isinstance(model, keras.Model):
        raise TypeError(
            f"{fn}: argument `{arg}` is a Keras 3 model ('{model.name}'), but "
            "tensorflow-model-optimization 0.8.1 works only with tf_keras (Keras 2) "
            "models. Convert it first with `keras_basis.tfmot.to_tf_keras(model)` "
            "(same weights, same outputs), then call this function on the result."
        )
    if not isinstance(model, tf_keras.Model):
        raise TypeError(
            f"{fn}: argument `{arg}` must be a tf_keras.Model. Received an object "
            f"of type {type(model).__name__}."
        )
    if not isinstance(model, tf_keras.Sequential) and not graph.tf_keras_is_graph_network(model):
        raise ValueError(
            f"{fn}: argument `{arg}` ('{model.name}') is a subclassed model. Expected "
            "a tf_keras Sequential or functional model."
        )
    if not model.built:
        raise ValueError(
            f"{fn}: argument `{arg}` ('{model.name}') is not built. Expected a model "
            "with a known input shape."
        )


def _clone_with_weights(model):
    """A private copy of ``model`` (new layers, same weights): never touch the user's."""
    with _qk.quantize_scope(_custom_objects()):
        copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _custom_objects():
    return {
        "BasisConv2D": BasisConv2D,
        "BasisConv2DQuantizeConfig": BasisConv2DQuantizeConfig,
    }


def coefficient_layers(model):
    """Names of the coefficient convolutions of a tf_keras basis model.

    A coefficient layer is a 1x1 ``Conv2D`` whose every input comes straight
    from a :class:`BasisConv2D`.

    Args:
        model: a tf_keras model.

    Returns:
        List of layer names, in model order.

    Example:

    >>> coefficient_layers(twin)   # ['conv2d_3', 'conv2d_5', ...]
    """
    _require_tf_keras(model, "coefficient_layers")
    names = []
    for layer in model.layers:
        if not isinstance(layer, tf_keras.layers.Conv2D) or tuple(layer.kernel_size) != (1, 1):
            continue
        if isinstance(model, tf_keras.Sequential):
            index = model.layers.index(layer)
            inbound = [model.layers[index - 1]] if index else []
        else:
            inbound = graph.tf_keras_inbound_layers(layer)
        if inbound and all(isinstance(x, BasisConv2D) for x in inbound):
            names.append(layer.name)
    return names


def quantize_basis_model(model):
    """Quantization-aware training model (int8) of a tf_keras basis model.

    Every :class:`BasisConv2D` is annotated with
    :class:`BasisConv2DQuantizeConfig` (int8 basis, int8 output), all other
    layers with tfmot's default 8-bit scheme, then ``quantize_apply`` builds
    the model with fake-quantization. Fine-tune it (``compile`` + ``fit``),
    then :func:`export_tflite` gives an int8 TFLite model.

    Args:
        model: a built tf_keras Sequential or functional model (use
            :func:`to_tf_keras` for a Keras 3 model). Not modified.

    Returns:
        A new tf_keras model ready for quantization-aware training.

    Example:

    >>> qat = quantize_basis_model(to_tf_keras(keras3_model))
    >>> qat.compile("adam", "sparse_categorical_crossentropy"); qat.fit(x, y)
    >>> tflite_bytes = export_tflite(qat)          # every conv int8
    """
    _require_tf_keras(model, "quantize_basis_model")
    copy = _clone_with_weights(model)

    def annotate(layer):
        if isinstance(layer, BasisConv2D):
            return _qk.quantize_annotate_layer(layer, BasisConv2DQuantizeConfig())
        if isinstance(layer, (tf_keras.layers.InputLayer, tf_keras.layers.Lambda)):
            return layer
        if isinstance(layer, tf_keras.Model):
            raise ValueError(
                f"quantize_basis_model: model '{model.name}' contains the nested model "
                f"'{layer.name}'. Expected a flat model."
            )
        return _qk.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(copy, clone_function=annotate)
    with _qk.quantize_scope(_custom_objects()):
        return _qk.quantize_apply(annotated)


def _check_fraction(name, value, fn, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{fn}: argument `{name}` must be a float. Received {name}={value!r}."
        )
    if not 0.0 <= value < 1.0 or (low_open and value == 0.0):
        raise ValueError(
            f"{fn}: argument `{name}` must be in [0, 1). Received {name}={value}."
        )
    return float(value)


def _check_int(name, value, fn, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: argument `{name}` must be an int. Received {name}={value!r}.")
    if value < minimum:
        raise ValueError(
            f"{fn}: argument `{name}` must be >= {minimum}. Received {name}={value}."
        )
    return int(value)


def _wrap_selected(model, names, wrap):
    copy = _clone_with_weights(model)
    names = set(names)

    def clone(layer):
        return wrap(layer) if layer.name in names else layer

    with _qk.quantize_scope(_custom_objects()):
        return tf_keras.models.clone_model(copy, clone_function=clone)


def prune_coefficients(
    model, sparsity=0.5, *, include_basis=False, begin_step=0, end_step=-1, frequency=100
):
    """Magnitude pruning (tfmot ``prune_low_magnitude``) of the coefficient convs.

    The coefficient 1x1 convolutions (see :func:`coefficient_layers`) and,
    with ``include_basis=True``, the bases are wrapped with a
    ``ConstantSparsity(sparsity)`` schedule. Train with
    ``callbacks=[keras_basis.tfmot.UpdatePruningStep()]``, then
    :func:`strip_pruning`: each pruned kernel then has
    ``round(sparsity * size)`` zeros.

    Args:
        model: a built tf_keras model (use :func:`to_tf_keras` for Keras 3).
            Not modified.
        sparsity: target fraction of zeros in each pruned kernel, in [0, 1).
        include_basis: also prune the basis weights.
        begin_step, end_step, frequency: of tfmot's ``ConstantSparsity``
            (training steps). The mask is updated at steps ``begin_step + k *
            frequency`` with steps counted from 1, so the first update comes
            after ``frequency`` steps: train at least that long.

    Returns:
        A new tf_keras model with pruning wrappers.

    Example:

    >>> pruned = prune_coefficients(twin, sparsity=0.75, frequency=10)
    >>> pruned.compile(...); pruned.fit(x, y, callbacks=[UpdatePruningStep()])
    >>> final = strip_pruning(pruned)
    """
    fn = "prune_coefficients"
    _require_tf_keras(model, fn)
    sparsity = _check_fraction("sparsity", sparsity, fn)
    begin_step = _check_int("begin_step", begin_step, fn, 0)
    frequency = _check_int("frequency", frequency, fn, 1)
    names = coefficient_layers(model)
    if include_basis:
        names += [layer.name for layer in model.layers if isinstance(layer, BasisConv2D)]
    if not names:
        raise ValueError(
            f"{fn}: model '{model.name}' has no coefficient layer (a 1x1 Conv2D fed by "
            "a keras_basis.tfmot.BasisConv2D). Expected a basis model."
        )
    schedule = _sk.ConstantSparsity(
        sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency
    )
    return _wrap_selected(
        model, names, lambda layer: _sk.prune_low_magnitude(layer, pruning_schedule=schedule)
    )


def strip_pruning(model):
    """Remove the pruning wrappers (tfmot ``strip_pruning``); weights keep their zeros.

    Args:
        model: a tf_keras model returned by :func:`prune_coefficients` and trained.

    Returns:
        A new tf_keras model without pruning wrappers.

    Example:

    >>> final = strip_pruning(pruned)
    """
    _require_tf_keras(model, "strip_pruning")
    with _qk.quantize_scope(_custom_objects()):
        return _sk.strip_pruning(model)


def cluster_basis_model(
    model,
    number_of_clusters=16,
    *,
    include_basis=True,
    include_coefficients=True,
    preserve_sparsity=False,
    centroids_init="kmeans_plus_plus",
):
    """Weight clustering (tfmot ``cluster_weights``) of the bases and coefficients.

    Each selected weight tensor (every basis and/or every coefficient kernel)
    is clustered to ``number_of_clusters`` shared values, trained with the
    model; after :func:`strip_clustering` each holds at most that many
    distinct values.

    Args:
        model: a built tf_keras model (use :func:`to_tf_keras` for Keras 3).
            Not modified.
        number_of_clusters: values per clustered tensor (int >= 2).
        include_basis, include_coefficients: which tensors to cluster.
        preserve_sparsity: keep zeros zero (cluster after pruning).
        centroids_init: "kmeans_plus_plus", "linear", "density_based" or "random".

    Returns:
        A new tf_keras model with clustering wrappers.

    Example:

    >>> clustered = cluster_basis_model(twin, number_of_clusters=16)
    >>> clustered.compile(...); clustered.fit(x, y)
    >>> final = strip_clustering(clustered)
    """
    fn = "cluster_basis_model"
    _require_tf_keras(model, fn)
    number_of_clusters = _check_int("number_of_clusters", number_of_clusters, fn, 2)
    if centroids_init not in _CENTROIDS:
        raise ValueError(
            f"{fn}: argument `centroids_init` must be one of {sorted(_CENTROIDS)}. "
            f"Received centroids_init={centroids_init!r}."
        )
    names = []
    if include_basis:
        names += [layer.name for layer in model.layers if isinstance(layer, BasisConv2D)]
    if include_coefficients:
        names += coefficient_layers(model)
    if not names:
        raise ValueError(
            f"{fn}: nothing to cluster in model '{model.name}'. Expected a basis model "
            "and include_basis or include_coefficients set. Received "
            f"include_basis={include_basis}, include_coefficients={include_coefficients}."
        )
    params = {
        "number_of_clusters": number_of_clusters,
        "cluster_centroids_init": _CENTROIDS[centroids_init],
        "preserve_sparsity": bool(preserve_sparsity),
    }
    return _wrap_selected(model, names, lambda layer: _ck.cluster_weights(layer, **params))


def strip_clustering(model):
    """Remove the clustering wrappers (tfmot ``strip_clustering``).

    Args:
        model: a tf_keras model returned by :func:`cluster_basis_model` and trained.

    Returns:
        A new tf_keras model whose clustered kernels hold the shared values.

    Example:

    >>> final = strip_clustering(clustered)
    """
    _require_tf_keras(model, "strip_clustering")
    with _qk.quantize_scope(_custom_objects()):
        return _ck.strip_clustering(model)


def _is_qat(model):
    return any(isinstance(layer, _qk.QuantizeWrapperV2) for layer in model.layers)


def export_tflite(model, path=None, *, int8=None, representative_data=None):
    """Convert a tf_keras (basis) model to TFLite, optionally writing it.

    Args:
        model: a tf_keras model: float, stripped after pruning/clustering, or
            a quantization-aware model from :func:`quantize_basis_model`.
        path: where to write the ``.tflite`` file (atomically); None: do not write.
        int8: quantize to int8. None (default): only a quantization-aware
            model. ``True`` on a float model is post-training int8 and needs
            ``representative_data``.
        representative_data: array of sample inputs (N, H, W, C) for
            post-training int8 calibration.

    Returns:
        The TFLite flatbuffer as bytes.

    Example:

    >>> data = export_tflite(final, "/tmp/model.tflite")
    """
    fn = "export_tflite"
    _require_tf_keras(model, fn)
    wrapped = [
        layer.name
        for layer in model.layers
        if isinstance(layer, (PruneLowMagnitude, ClusterWeights))
    ]
    if wrapped:
        raise ValueError(
            f"{fn}: model '{model.name}' still has pruning/clustering wrappers "
            f"({wrapped[:3]}). Call keras_basis.tfmot.strip_pruning or strip_clustering "
            "first."
        )
    qat = _is_qat(model)
    int8 = qat if int8 is None else bool(int8)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not qat:
            if representative_data is None:
                raise ValueError(
                    f"{fn}: post-training int8 of the float model '{model.name}' needs "
                    "argument `representative_data` (sample inputs). Received None."
                )
            samples = np.asarray(representative_data, dtype=np.float32)

            def dataset():
                for sample in samples[:200]:
                    yield [sample[None]]

            converter.representative_dataset = dataset
    data = converter.convert()
    if path is not None:
        fileio.write_bytes(path, data)
    return data
