"""Cloning engine: rebuild a model with some layers replaced (never mutating it).

Functional models go through ``keras.models.clone_model(clone_function=...,
call_function=...)``; Keras does not pass ``call_function`` to Sequential
models (nor into nested Sequential models), so those are rebuilt here layer by
layer, and the recursion into nested models is done here too (with a cache,
so a nested model or a layer used twice is cloned once).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_basis._transform import graph
from keras_basis.basis_bias import BasisBias
from keras_basis.layers import BasisConv2D


class Pair:
    """What a clone function returns for a compressed Conv2D: two layers.

    ``call_function`` turns it into ``coef(basis(x, **call_kwargs))``. In a
    Sequential model the two layers are inserted one after the other.
    """

    def __init__(self, basis, coef, call_kwargs=None):
        self.basis = basis
        self.coef = coef
        self.call_kwargs = dict(call_kwargs or {})


class Folded:
    """Clone-function result for a coefficient conv that is folded back."""

    def __init__(self, conv):
        self.conv = conv


DROP = object()  # clone-function result: leave this layer out (Sequential only)


def copy_layer(layer, config_edit=None):
    config = layer.get_config()
    if config_edit is not None:
        config = config_edit(config)
    return layer.__class__.from_config(config)


class Cloner:
    """Recursively clone ``model`` with ``layer_fn(layer) -> layer | Pair | Folded | DROP``.

    Layers that ``layer_fn`` returns unbuilt get the original weights copied
    after the clone (``self.copies``); prebuilt ones keep theirs.
    """

    def __init__(self, layer_fn):
        self.layer_fn = layer_fn
        self.cache = {}
        self.copies = []
        self.outputs = {}  # id(basis output tensor) -> (input tensor, Pair call kwargs)

    # ---------------------------------------------------------------- public
    def __call__(self, model):
        new = self.clone(model)
        for old, fresh in self.copies:
            if old.weights:
                fresh.set_weights(old.get_weights())
        return new

    def get(self, layer):
        if id(layer) in self.cache:
            return self.cache[id(layer)]
        if graph.is_model(layer):
            result = self.clone(layer)
        else:
            result = self.layer_fn(layer)
            if result is None:
                result = copy_layer(layer)
            if isinstance(result, keras.layers.Layer) and not result.built:
                self.copies.append((layer, result))
        self.cache[id(layer)] = result
        return result

    def call(self, op, *args, **kwargs):
        if isinstance(op, Pair):
            y = op.basis(args[0], **op.call_kwargs)
            return op.coef(y)
        if isinstance(op, Folded):
            x = args[0]
            if id(x) in self.outputs:
                x = self.outputs[id(x)]
            return op.conv(x)
        if op is DROP:
            return args[0]
        out = op(*args, **kwargs)
        if isinstance(op, BasisConv2D):
            self.outputs[id(out)] = args[0]
        elif isinstance(op, BasisBias) and id(args[0]) in self.outputs:
            # basis -> BasisBias -> coefficients is one pair: a folded
            # coefficient conv reads the basis input through the bias too.
            self.outputs[id(out)] = self.outputs[id(args[0])]
        return out

    # -------------------------------------------------------------- private
    def clone(self, model):
        if isinstance(model, graph.Sequential):
            return self._clone_sequential(model)
        new = keras.models.clone_model(
            model, clone_function=self.get, call_function=self.call, recursive=False
        )
        return new

    def _clone_sequential(self, model):
        new_layers = []
        for layer in model.layers:
            out = self.get(layer)
            if isinstance(out, Pair):
                if out.call_kwargs:
                    raise ValueError(
                        f"Layer '{out.coef.name}' of Sequential model '{model.name}' would "
                        f"call the shared basis '{out.basis.name}' with a different "
                        f"geometry ({out.call_kwargs}); a Sequential model cannot pass call "
                        "arguments. Share only layers of equal strides/padding/dilation."
                    )
                new_layers += [out.basis, out.coef]
            elif isinstance(out, Folded):
                new_layers.append(out.conv)
            elif out is DROP:
                continue
            else:
                new_layers.append(out)
        # A Sequential that was only a [basis, coefficients] pair (the form
        # basis_clone_function produces) folds to the bare convolution.
        if (
            len(new_layers) == 1 and isinstance(new_layers[0], keras.layers.Conv2D)
            and len(model.layers) == 2 and isinstance(model.layers[0], BasisConv2D)
            and new_layers[0].name == model.name
            and any(isinstance(self.cache.get(id(ly)), Folded) for ly in model.layers)
        ):
            return new_layers[0]
        spec = graph.sequential_input(model)
        if spec is not None:
            batch_shape, dtype, name = spec
            new_layers = [keras.Input(batch_shape=batch_shape, dtype=dtype, name=name)] + new_layers
        new = keras.Sequential(new_layers, name=model.name, trainable=model.trainable)
        if model.compiled:
            new.compile_from_config(model.get_compile_config())
        return new


# ------------------------------------------------------------ building pairs
def build_basis_layer(name, kernel_size, p, m, strides, padding, dilation, basis, dtype,
                      c_first, split_mode="batch"):
    layer = BasisConv2D(
        m, kernel_size, depth=p, strides=strides, padding=padding,
        dilation_rate=dilation, name=name, dtype=dtype, split_mode=split_mode,
    )
    layer.build((None, None, None, c_first))
    layer.basis.assign(np.asarray(basis, dtype=layer.basis.dtype))
    return layer


def build_coef_layer(original, sm, coefficients, bias):
    """Stock 1x1 Conv2D named like ``original`` carrying its activation and bias."""
    coef = keras.layers.Conv2D(
        original.filters, 1, activation=original.activation, use_bias=original.use_bias,
        bias_regularizer=original.bias_regularizer,
        activity_regularizer=original.activity_regularizer,
        bias_constraint=original.bias_constraint,
        name=original.name, dtype=original.dtype_policy, trainable=original.trainable,
    )
    coef.build((None, None, None, sm))
    coef.kernel.assign(np.asarray(coefficients).reshape(1, 1, sm, -1).astype(coef.kernel.dtype))
    if original.use_bias and bias is not None:
        coef.bias.assign(np.asarray(bias).astype(coef.bias.dtype))
    return coef


def fold_conv(pair, kernel, bias):
    """A plain Conv2D equivalent to ``pair`` (a graph.BasisPair); ``bias``: (n,) or None."""
    coef = pair.coef_layer
    conv = keras.layers.Conv2D(
        pair.n, pair.kernel_size, strides=pair.strides, padding=pair.padding,
        dilation_rate=pair.dilation_rate, activation=coef.activation,
        use_bias=bias is not None, bias_regularizer=coef.bias_regularizer,
        activity_regularizer=coef.activity_regularizer, bias_constraint=coef.bias_constraint,
        name=coef.name, dtype=coef.dtype_policy, trainable=coef.trainable,
    )
    conv.build((None, None, None, pair.c))
    conv.kernel.assign(kernel.astype(conv.kernel.dtype))
    if bias is not None:
        conv.bias.assign(np.asarray(bias).astype(conv.bias.dtype))
    return conv
