"""Walking Keras models: input checks, convolution sites, basis pairs."""

from __future__ import annotations

import dataclasses
from typing import Optional

import keras

from keras_basis.layers import BasisConv2D

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
    return getattr(model, "_functional", None) is not None


def is_model(layer):
    return isinstance(layer, (Functional, Sequential))


def model_nodes(model):
    """Nodes of a Functional model's graph (Sequential: of its inner graph)."""
    graph = model._functional if isinstance(model, Sequential) else model
    if graph is None:
        return []
    nodes = []
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
    nodes = [n for n in layer._inbound_nodes if id(n) in own]
    return nodes or list(layer._inbound_nodes[:1])


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


def _make_pair(basis, coef, owner, kwargs, in_shape, out_shape):
    c = int(in_shape[-1])
    s, p = basis.splits_for(c)
    strides, padding, dilation = basis._call_geometry(
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
    )


def _pairs_of(model):
    pairs = []
    if isinstance(model, Sequential):
        layers = model.layers
        for a, b in zip(layers, layers[1:]):
            if isinstance(a, BasisConv2D) and b.built:
                in_shape, _ = io_shapes(a, model)
                if in_shape is None:
                    continue
                s, _ = a.splits_for(int(in_shape[-1]))
                if _is_coef(b, s * a.num_basis):
                    pairs.append(_make_pair(a, b, model, {}, in_shape, io_shapes(b, model)[1]))
        return pairs
    nodes = model_nodes(model)
    own = {id(n) for n in nodes}
    for node in nodes:
        basis = node.operation
        if not isinstance(basis, BasisConv2D):
            continue
        out = node.output_tensors[0]
        consumers = [
            n for n in basis._outbound_nodes
            if id(n) in own and any(t is out for t in n.input_tensors)
        ]
        if len(consumers) != 1 or any(out is o for o in model.outputs):
            continue
        coef_node = consumers[0]
        coef = coef_node.operation
        in_shape = tuple(node.input_tensors[0].shape)
        s, _ = basis.splits_for(int(in_shape[-1]))
        if not _is_coef(coef, s * basis.num_basis) or len(coef_node.input_tensors) != 1:
            continue
        pairs.append(
            _make_pair(
                basis, coef, model, dict(node.arguments.kwargs), in_shape,
                tuple(coef_node.output_tensors[0].shape),
            )
        )
    return pairs


def basis_pairs(model):
    """List the basis pairs of a model (nested models included).

    A pair is a ``BasisConv2D`` call whose only consumer is a stock 1x1
    ``keras.layers.Conv2D`` with ``s*m`` input channels: together they compute
    one convolution (the form :func:`keras_basis.compress` produces).

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
