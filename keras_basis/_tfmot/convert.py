"""Keras 3 basis model -> tf_keras (Keras 2) twin with the same weights and outputs."""

from __future__ import annotations

import inspect

import keras

from keras_basis._tfmot._compat import tf_keras
from keras_basis._tfmot.layers import BasisConv2D as TwinBasisConv2D
from keras_basis._transform import graph as keras_graph
from keras_basis.layers import BasisConv2D

__all__ = ["to_tf_keras"]

# Serialised sub-objects of a Keras 3 layer config and their tf_keras modules.
_OBJECT_MODULES = {
    "keras.initializers": tf_keras.initializers,
    "keras.regularizers": tf_keras.regularizers,
    "keras.constraints": tf_keras.constraints,
}
_BASE_KEYS = ("name", "trainable", "dtype")
# Call keyword arguments a node may record and that the twin graph replays.
_CALL_KWARGS = {BasisConv2D: ("strides", "padding", "dilation_rate")}
# Keras 3 layers whose twin is not the tf_keras layer of the same class name.
_LAYER_MAP = {BasisConv2D: TwinBasisConv2D}
# Keras 3 ops that may sit in a functional graph as bare operations.
_OP_MAP = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply"}


def _accepted(cls):
    """Keyword arguments accepted by ``cls`` (its own and its parents' ``__init__``)."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {k for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names - {"self"}


def _translate_object(value, layer_name, key):
    """A Keras 3 serialised initializer/regularizer/constraint -> tf_keras object."""
    module = _OBJECT_MODULES.get(value.get("module"))
    cls = None if module is None else getattr(module, value["class_name"], None)
    if cls is None:
        raise TypeError(
            f"to_tf_keras: argument `{key}` of layer '{layer_name}' is "
            f"{value.get('module')}.{value.get('class_name')}, which has no tf_keras "
            "equivalent. Expected a built-in Keras initializer, regularizer or constraint."
        )
    accepted = _accepted(cls)
    config = {k: v for k, v in (value.get("config") or {}).items() if k in accepted}
    return cls(**config)


def _translate_config(layer, twin_cls):
    """Keras 3 ``layer.get_config()`` -> keyword arguments of ``twin_cls``."""
    config = layer.get_config()
    accepted = _accepted(twin_cls) | set(_BASE_KEYS)
    out = {}
    for key, value in config.items():
        if key == "dtype":
            value = keras.dtype_policies.get(value).name if value is not None else None
        elif isinstance(value, dict) and "class_name" in value:
            value = _translate_object(value, layer.name, key)
        if key in accepted:
            out[key] = value
        elif value not in (None, False, {}, ()):
            raise TypeError(
                f"to_tf_keras: layer '{layer.name}' ({type(layer).__name__}) has "
                f"`{key}={value!r}`, which tf_keras.layers.{twin_cls.__name__} does not "
                "support. Expected the option unset."
            )
    return out


def _twin_class(layer):
    for cls, twin in _LAYER_MAP.items():
        if type(layer) is cls:
            return twin
    if isinstance(layer, keras.Model):
        raise TypeError(
            f"to_tf_keras: nested model '{layer.name}' is not supported. Expected a "
            "flat Sequential or functional model; inline the sub-model's layers."
        )
    name = type(layer).__name__
    if isinstance(layer, keras.layers.Lambda):
        raise TypeError(
            f"to_tf_keras: layer '{layer.name}' of type keras.layers.Lambda has no "
            "tf_keras twin (its Python function is Keras 3 code). Expected built-in "
            "layers; replace the Lambda by layers (e.g. keras.layers.Add, Rescaling)."
        )
    if isinstance(layer, keras.layers.Layer) and type(layer).__module__.startswith("keras."):
        twin = getattr(tf_keras.layers, name, None)
        if twin is not None:
            return twin
    if not isinstance(layer, keras.layers.Layer) and name in _OP_MAP:
        return getattr(tf_keras.layers, _OP_MAP[name])
    raise TypeError(
        f"to_tf_keras: layer '{layer.name}' of type {type(layer).__module__}.{name} "
        "has no tf_keras twin. Expected keras_basis.BasisConv2D or a built-in Keras "
        "layer that also exists in tf_keras (Conv2D, Dense, BatchNormalization, Add, "
        "Concatenate, pooling, activations, ...)."
    )


def _make_twin(layer):
    twin_cls = _twin_class(layer)
    if not isinstance(layer, keras.layers.Layer):  # bare op such as `x + y`
        return twin_cls(name=layer.name)
    return twin_cls(**_translate_config(layer, twin_cls))


def _copy_weights(layer, twin):
    weights = layer.get_weights()
    shapes = [tuple(w.shape) for w in twin.weights]
    if [tuple(w.shape) for w in weights] != shapes:
        raise TypeError(
            f"to_tf_keras: the weights of layer '{layer.name}' "
            f"({[tuple(w.shape) for w in weights]}) do not match those of its tf_keras "
            f"twin ({shapes}). Expected the same weight layout."
        )
    if weights:
        twin.set_weights(weights)


def _check_keras3_model(model):
    if isinstance(model, tf_keras.Model):
        raise TypeError(
            "to_tf_keras: argument `model` is already a tf_keras model "
            f"('{model.name}'). Expected a Keras 3 model."
        )
    if not isinstance(model, keras.Model):
        raise TypeError(
            "to_tf_keras: argument `model` must be a Keras 3 `keras.Model`. "
            f"Received an object of type {type(model).__name__}."
        )
    if isinstance(model, keras.Sequential):
        inner = keras_graph.sequential_graph(model)
        if not model.built or inner is None:
            raise ValueError(
                f"to_tf_keras: Sequential model '{model.name}' is not built. Expected "
                "a model with a known input shape (start it with keras.Input)."
            )
        return inner
    if not keras_graph.is_model(model):
        raise TypeError(
            f"to_tf_keras: model '{model.name}' is a subclassed model. Expected a "
            "Sequential or functional model (its graph is needed)."
        )
    return model


def to_tf_keras(model):
    """Rebuild a Keras 3 (basis) model as a tf_keras model for tfmot.

    Walks the Keras 3 functional graph (a Sequential model's too) and rebuilds
    it layer by layer in tf_keras: :class:`keras_basis.BasisConv2D` becomes the
    tf_keras twin :class:`keras_basis.tfmot.BasisConv2D`, built-in layers
    become their tf_keras namesakes (``x + y`` style add/subtract/multiply ops
    become ``Add``/``Subtract``/``Multiply`` layers). Shared layers stay
    shared, per-call ``strides``/``padding``/``dilation_rate`` of shared bases
    are replayed, and every weight is copied, so the twin computes the same
    outputs. The Keras 3 model is not modified. The optimizer and compile
    state are not carried over.

    Args:
        model: a built Keras 3 ``keras.Sequential`` or functional ``keras.Model``.

    Returns:
        A ``tf_keras.Sequential`` (for a Sequential input) or ``tf_keras.Model``.

    Example:

    >>> import keras_basis.tfmot as kbt
    >>> twin = kbt.to_tf_keras(keras3_model)
    >>> np.testing.assert_allclose(twin(x), keras3_model(x), atol=1e-5)
    """
    graph = _check_keras3_model(model)
    if isinstance(model, keras.Sequential):
        (first_input,) = graph.inputs
        layers = [_make_twin(layer) for layer in model.layers]
        twin_model = tf_keras.Sequential(
            [tf_keras.Input(batch_shape=tuple(first_input.shape), dtype=first_input.dtype)]
            + layers,
            name=model.name,
        )
        for layer, twin in zip(model.layers, layers):
            _copy_weights(layer, twin)
        return twin_model

    twins = {}  # id(Keras 3 operation) -> tf_keras layer
    tensors = {}  # id(KerasTensor) -> tf_keras tensor

    def lookup(value):
        if isinstance(value, keras.KerasTensor):
            return tensors[id(value)]
        return value

    for node in keras_graph.model_nodes(graph):
        layer = node.operation
        if isinstance(layer, keras.layers.InputLayer):
            (out,) = node.output_tensors
            tensors[id(out)] = tf_keras.Input(
                batch_shape=tuple(out.shape), dtype=out.dtype, name=layer.name
            )
            continue
        first = id(layer) not in twins
        if first:
            twins[id(layer)] = _make_twin(layer)
        twin = twins[id(layer)]
        args = keras.tree.map_structure(lookup, list(node.arguments.args))
        allowed = _CALL_KWARGS.get(type(layer), ())
        kwargs = {
            k: keras.tree.map_structure(lookup, v)
            for k, v in node.arguments.kwargs.items()
            if k in allowed and v is not None
        }
        if not isinstance(layer, keras.layers.Layer):
            args = [list(args)]  # Add()([a, b]) for the op add(a, b)
        outputs = twin(*args, **kwargs)
        if first and isinstance(layer, keras.layers.Layer):
            _copy_weights(layer, twin)
        for src, dst in zip(node.output_tensors, keras.tree.flatten(outputs)):
            tensors[id(src)] = dst
    inputs, outputs = keras_graph.io_structures(graph)
    return tf_keras.Model(
        keras.tree.map_structure(lookup, inputs),
        keras.tree.map_structure(lookup, outputs),
        name=model.name,
    )
