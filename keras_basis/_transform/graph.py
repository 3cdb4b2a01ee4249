"""Walking Keras models: input checks, convolution sites, basis pairs.

This is the one module of keras-basis that reads Keras internals (private
attributes of models, layers, nodes and tensors, and ``keras.src``). Each use
is a small named function with a comment saying why the public API is not
enough, so that a Keras upgrade has one place to look. tests/test_layout.py
checks that no other module touches them. The last section does the same for
the few tf_keras internals the tfmot bridge needs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import keras

from keras_basis.basis_bias import BasisBias
from keras_basis.layers import BasisConv2D

# Internal: Keras exports no public name for the Functional class; a model is
# Functional (its graph is known) iff it is an instance of it.
Functional = keras.src.models.functional.Functional
Sequential = keras.Sequential


def check_model(model, argument="model"):
    """Raise TypeError/ValueError unless ``model`` is a built Functional/Sequential."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Invalid type for argument `{argument}`. Expected a keras.Model "
            f"(Functional or Sequential). Received {argument}={model!r} of type "
            f"{type(model).__name__}."
        )
    if not isinstance(model, (Functional, Sequential)):
        raise TypeError(
            f"Invalid value for argument `{argument}`: model '{model.name}' is a "
            f"subclassed model ({type(model).__name__}); only Functional and "
            "Sequential models can be transformed (their graph is known)."
        )
    if not model.built or (isinstance(model, Sequential) and not _sequential_has_input(model)):
        raise ValueError(
            f"Invalid value for argument `{argument}`: model '{model.name}' is not "
            "built. Expected a model with known input shape (give the Sequential a "
            "`keras.Input`, or call the model on data once). Received an unbuilt model."
        )


def _sequential_has_input(model):
    return sequential_graph(model) is not None


def sequential_graph(model):
    """The Functional graph inside a Sequential model, or None before it has an input."""
    # Internal: a Sequential exposes neither its graph nor whether it has one;
    # `_functional` is set once the model has an Input (or was built).
    return getattr(model, "_functional", None)


def functional_graph(model):
    """The graph of a Functional model, or of a Sequential's inner model (None: no input)."""
    return sequential_graph(model) if isinstance(model, Sequential) else model


def io_structures(model):
    """``(inputs, outputs)`` of a Functional graph in their original nesting."""
    # Internal: `model.inputs`/`model.outputs` are flattened lists; a rebuilt
    # twin must keep dict or nested inputs/outputs as they were.
    return model._inputs_struct, model._outputs_struct


def sequential_input(model):
    """``(batch_shape, dtype, name)`` of a Sequential model's InputLayer, or None."""
    # Internal: `model.layers` leaves the InputLayer out; `_layers` holds it.
    first = model._layers[0] if model._layers else None
    if not isinstance(first, keras.layers.InputLayer):
        return None
    # Internal: InputLayer's public `dtype` is its policy's variable dtype
    # (float32 for an int input); `_dtype` is the input tensor's own dtype.
    return first.batch_shape, first._dtype, first.name


def is_model(layer):
    return isinstance(layer, (Functional, Sequential))


def model_nodes(model):
    """Nodes of a Functional model's graph (Sequential: of its inner graph)."""
    graph = functional_graph(model)
    if graph is None:
        return []
    nodes = []
    # Internal: Keras offers no public node list; `_nodes_by_depth` is the
    # graph in topological order (deepest = closest to the inputs first).
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        nodes.extend(graph._nodes_by_depth[depth])
    return nodes


def walk(model):
    """Yield ``(layer, owner)`` for every non-model layer, depth first.

    Nested Functional/Sequential models are entered; a model reached twice is
    walked once.
    """
    seen = set()

    def _walk(m):
        if id(m) in seen:
            return
        seen.add(id(m))
        for layer in m.layers:
            if is_model(layer):
                yield from _walk(layer)
            else:
                yield layer, m

    yield from _walk(model)


def layer_nodes(layer, owner):
    """The call nodes of ``layer`` that belong to ``owner``'s graph."""
    own = {id(n) for n in model_nodes(owner)}
    calls = inbound_nodes(layer)
    nodes = [n for n in calls if id(n) in own]
    return nodes or list(calls[:1])


def inbound_nodes(layer):
    """Every call node of ``layer`` (all graphs it was called in)."""
    # Internal: Keras has no public way to list the calls of a shared layer.
    return list(layer._inbound_nodes)


def consumers(node, owner, own=None):
    """The nodes of ``owner``'s graph that take ``node``'s first output as an input.

    ``own``: the ids of ``owner``'s nodes, when the caller already has them.
    """
    if own is None:
        own = {id(n) for n in model_nodes(owner)}
    out = node.output_tensors[0]
    # Internal: the consumers of a tensor are only recorded on the producing
    # operation's `_outbound_nodes`.
    return [n for n in node.operation._outbound_nodes
            if id(n) in own and any(t is out for t in n.input_tensors)]


def producer_call(tensor):
    """``(operation, node)`` that produced a symbolic tensor."""
    # Internal: `_keras_history` is the only link from a KerasTensor back to
    # the call that made it.
    history = tensor._keras_history
    return history.operation, inbound_nodes(history.operation)[history.node_index]


def pair_input(pair):
    """The symbolic input tensor of the basis call of a :class:`BasisPair`."""
    for node in inbound_nodes(pair.coef_layer):
        if node.input_tensors:
            operation, basis_node = producer_call(node.input_tensors[0])
            if pair.bias_layer is not None and operation is pair.bias_layer:
                operation, basis_node = producer_call(basis_node.input_tensors[0])
            if operation is pair.basis_layer:
                return basis_node.input_tensors[0]
    raise ValueError(f"Basis pair '{pair.name}' has no call in a graph.")


def io_shapes(layer, owner):
    """``(input_shape, output_shape)`` of the first call of ``layer`` in ``owner``."""
    nodes = layer_nodes(layer, owner)
    if not nodes:
        return None, None
    node = nodes[0]
    return tuple(node.input_tensors[0].shape), tuple(node.output_tensors[0].shape)


def call_shapes(layer, owner):
    """``[(input_shape, output_shape), ...]``, one per call of ``layer`` in ``owner``.

    Calls without tensors (a layer never called in this graph) are left out.
    """
    out = []
    for node in layer_nodes(layer, owner):
        ins, outs = node.input_tensors, node.output_tensors
        if ins and outs:
            out.append((tuple(ins[0].shape), tuple(outs[0].shape)))
    return out


@dataclasses.dataclass
class BasisPair:
    """One basis convolution site followed by its 1x1 coefficient convolution.

    Attributes:
        basis_layer: the ``BasisConv2D`` (shared pairs hold the same instance).
        coef_layer: the ``keras.layers.Conv2D(n, 1)`` (named like the original
            convolution).
        owner: the (sub)model whose graph holds the pair.
        name: ``coef_layer.name``.
        c, n: input and output channels of the represented convolution.
        kernel_size: ``(kh, kw)``.
        s, p, m: splits, basis depth used at this site (``c / s``; smaller than
            the basis depth for sliced sharing) and number of basis filters.
        strides, padding, dilation_rate: geometry at this site (per-call
            overrides of a shared basis included).
        shared_with: names of the other coefficient layers using the same basis.
        input_shape, output_shape: shapes at this site.
        bias_layer: the ``BasisBias`` between basis and coefficients, or None.
    """

    basis_layer: BasisConv2D
    coef_layer: keras.layers.Conv2D
    owner: keras.Model
    name: str
    c: int
    n: int
    kernel_size: tuple
    s: int
    p: int
    m: int
    strides: tuple
    padding: str
    dilation_rate: tuple
    shared_with: tuple = ()
    input_shape: Optional[tuple] = None
    output_shape: Optional[tuple] = None
    bias_layer: Optional[BasisBias] = None

    @property
    def has_bias(self):
        """Whether the folded convolution has a bias (coefficient or basis bias)."""
        return bool(
            self.coef_layer.use_bias or self.basis_layer.use_bias or self.bias_layer is not None
        )

    def bias(self):
        """The ``(n,)`` bias of the dense convolution this pair computes, or None.

        Basis biases (``BasisConv2D(use_bias=True)`` and a ``BasisBias``) pass
        through the linear coefficients: ``b_coef + A^T tile(b_basis, s)``.
        """
        if not self.has_bias:
            return None
        import numpy as np

        coef = keras.ops.convert_to_numpy(self.coef_layer.kernel).reshape(-1, self.n)
        total = np.zeros((self.n,), np.float64)
        if self.coef_layer.use_bias:
            total += keras.ops.convert_to_numpy(self.coef_layer.bias)
        for b in (self.basis_layer.bias if self.basis_layer.use_bias else None,
                  self.bias_layer.bias if self.bias_layer is not None else None):
            if b is not None:
                tiled = np.tile(keras.ops.convert_to_numpy(b).astype(np.float64), self.s)
                total += tiled @ coef.astype(np.float64)
        return total.astype(np.float32)

    def kernel(self):
        """The dense ``(kh, kw, c, n)`` kernel this pair computes (NumPy)."""
        from keras_basis import maths

        return maths.reconstruct(
            keras.ops.convert_to_numpy(self.basis_layer.basis),
            keras.ops.convert_to_numpy(self.coef_layer.kernel),
            channels=self.c,
        )


def _is_coef(layer, m_total):
    return (
        type(layer) is keras.layers.Conv2D
        and tuple(layer.kernel_size) == (1, 1)
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.groups == 1
        and layer.kernel.shape[2] == m_total
    )


def _make_pair(basis, coef, owner, kwargs, in_shape, out_shape, bias_layer=None):
    c = int(in_shape[-1])
    s, p = basis.splits_for(c)
    strides, padding, dilation = basis.call_geometry(
        kwargs.get("strides"), kwargs.get("padding"), kwargs.get("dilation_rate")
    )
    return BasisPair(
        basis_layer=basis,
        coef_layer=coef,
        owner=owner,
        name=coef.name,
        c=c,
        n=int(coef.filters),
        kernel_size=tuple(basis.kernel_size),
        s=s,
        p=p,
        m=int(basis.num_basis),
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        input_shape=in_shape,
        output_shape=out_shape,
        bias_layer=bias_layer,
    )


def _pairs_of(model):
    pairs = []
    if isinstance(model, Sequential):
        layers = model.layers
        for i, a in enumerate(layers[:-1]):
            if not isinstance(a, BasisConv2D):
                continue
            bias_layer = layers[i + 1] if isinstance(layers[i + 1], BasisBias) else None
            b = layers[i + 2] if bias_layer is not None and i + 2 < len(layers) else layers[i + 1]
            if not b.built or (bias_layer is not None and bias_layer.num_basis != a.num_basis):
                continue
            in_shape, _ = io_shapes(a, model)
            if in_shape is None:
                continue
            s, _ = a.splits_for(int(in_shape[-1]))
            if _is_coef(b, s * a.num_basis):
                pairs.append(_make_pair(a, b, model, {}, in_shape, io_shapes(b, model)[1],
                                        bias_layer))
        return pairs
    nodes = model_nodes(model)
    own = {id(n) for n in nodes}
    for node in nodes:
        basis = node.operation
        if not isinstance(basis, BasisConv2D):
            continue
        out = node.output_tensors[0]
        users = consumers(node, model, own)
        if len(users) != 1 or any(out is o for o in model.outputs):
            continue
        coef_node = users[0]
        bias_layer = None
        if isinstance(coef_node.operation, BasisBias):
            bias_layer = coef_node.operation
            bias_out = coef_node.output_tensors[0]
            users = consumers(coef_node, model, own)
            if (bias_layer.num_basis != basis.num_basis or len(users) != 1
                    or any(bias_out is o for o in model.outputs)):
                continue
            coef_node = users[0]
        coef = coef_node.operation
        in_shape = tuple(node.input_tensors[0].shape)
        s, _ = basis.splits_for(int(in_shape[-1]))
        if not _is_coef(coef, s * basis.num_basis) or len(coef_node.input_tensors) != 1:
            continue
        pairs.append(
            _make_pair(
                basis, coef, model, dict(node.arguments.kwargs), in_shape,
                tuple(coef_node.output_tensors[0].shape), bias_layer,
            )
        )
    return pairs


def basis_pairs(model):
    """List the basis pairs of a model (nested models included).

    A pair is a ``BasisConv2D`` call whose only consumer is a stock 1x1
    ``keras.layers.Conv2D`` with ``s*m`` input channels, possibly through one
    :class:`keras_basis.BasisBias` (a per-site basis bias): together they
    compute one convolution (the form :func:`keras_basis.compress` produces).

    Args:
        model: a built Functional or Sequential model.

    Returns:
        A list of :class:`BasisPair` records in graph order; ``shared_with``
        names the other coefficient layers that use the same basis layer.

    Example:

    >>> for pair in keras_basis.basis_pairs(small):
    ...     print(pair.name, pair.basis_layer.name, pair.s, pair.m, pair.shared_with)
    """
    check_model(model)
    pairs, seen = [], set()

    def _collect(m):
        if id(m) in seen:
            return
        seen.add(id(m))
        pairs.extend(_pairs_of(m))
        for layer in m.layers:
            if is_model(layer):
                _collect(layer)

    _collect(model)
    by_basis = {}
    for pr in pairs:
        by_basis.setdefault(id(pr.basis_layer), []).append(pr.name)
    for pr in pairs:
        pr.shared_with = tuple(nm for nm in by_basis[id(pr.basis_layer)] if nm != pr.name)
    return pairs


# ------------------------------------------------------------ tf_keras (tfmot)
def tf_keras_is_graph_network(model):
    """Whether a tf_keras model is Functional (not subclassed)."""
    # Internal: tf_keras has no public flag for "the graph is known".
    return bool(model._is_graph_network)


def tf_keras_inbound_layers(layer):
    """The layers feeding every call of a tf_keras layer."""
    out = []
    # Internal: tf_keras layers list their calls only in `_inbound_nodes`.
    for node in layer._inbound_nodes:
        inbound = node.inbound_layers
        out.extend(inbound if isinstance(inbound, (list, tuple)) else [inbound])
    return out
