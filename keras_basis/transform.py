"""Model transforms: compress a trained Keras CNN into basis form, and back.

Li, Gu, Van Gool, Timofte, "Learning Filter Basis for Convolutional Neural
Network Compression", ICCV 2019.

* :func:`compress` replaces Conv2D layers by a ``BasisConv2D`` (the shared
  basis) followed by a stock 1x1 ``keras.layers.Conv2D`` (the coefficients,
  named like the original layer, carrying its bias and activation).
* :func:`decompress` folds such pairs back into plain Conv2D layers.
* :func:`strip` removes the Eq. 18 training term before export.
* :func:`report` tabulates what was (or could be) compressed.
* :func:`spectra` gives each layer's singular values and the ``m`` that
  compress chose or would choose (planned, nothing is compressed).
* :func:`basis_pairs` lists the pairs of a model.
* :func:`basis_clone_function` is the per-layer replacement as a
  ``clone_model`` clone function.

All of them copy; the caller's model is never modified.
"""

from __future__ import annotations

import numbers
import warnings
import weakref

import keras
import numpy as np

from keras_basis import maths
from keras_basis._transform import budget, calibrate, clone, graph, plan
from keras_basis._transform import objective as _objective
from keras_basis._transform import report as _report
from keras_basis._transform.fidelity import KernelFidelity
from keras_basis._transform.graph import BasisPair, basis_pairs
from keras_basis._transform.knapsack import choose_options  # noqa: F401 (the ratio solver)
from keras_basis.layers import BasisConv2D

__all__ = [
    "BasisPair",
    "basis_clone_function",
    "basis_pairs",
    "compress",
    "decompress",
    "report",
    "spectra",
    "strip",
]

_INITS = ("svd", "random", "data")

# Facts about a compressed model that its layers do not carry (original
# kernels, skipped layers); report() uses them. Dropped with the model.
_INFO = weakref.WeakKeyDictionary()


def _make_pairs(groups, model_dtype=None):
    """Build the (prebuilt, initialised) layers; return {id(conv): clone.Pair}."""
    pairs = {}
    for g in groups:
        first = g.members[0].layer
        geometry = (tuple(first.strides), first.padding, tuple(first.dilation_rate))
        basis = clone.build_basis_layer(
            g.name, g.kernel_size, g.p, g.m, *geometry, g.basis, first.dtype_policy,
            g.members[0].c, split_mode=g.split_mode,
        )
        for mb, coef in zip(g.members, g.coefs):
            layer = mb.layer
            kwargs = {}
            if tuple(layer.strides) != geometry[0]:
                kwargs["strides"] = tuple(layer.strides)
            if layer.padding != geometry[1]:
                kwargs["padding"] = layer.padding
            if tuple(layer.dilation_rate) != geometry[2]:
                kwargs["dilation_rate"] = tuple(layer.dilation_rate)
            coef_layer = clone.build_coef_layer(layer, mb.s * g.m, coef, mb.bias)
            pairs[id(layer)] = clone.Pair(basis, coef_layer, kwargs)
    return pairs


def compress(
    model,
    *,
    num_basis=None,
    splits="auto",
    ratio=None,
    layers=None,
    share=None,
    init="svd",
    gamma=0.0,
    allocation="error",
    calibration_data=None,
    seed=None,
    verbose=1,
    objective=None,
    multiple_of=None,
    max_pair_macs=None,
    latency_table=None,
    latency_modes=None,
):
    """Return a copy of ``model`` whose Conv2D layers use learned filter bases.

    Each compressed ``Conv2D`` named ``NAME`` becomes a ``BasisConv2D`` named
    ``NAME_basis`` (or the share group's name) followed by a stock
    ``keras.layers.Conv2D(n, 1, name=NAME)`` holding the coefficients, the
    bias and the activation. Strides, padding and dilation go to the basis
    call. All other layers are copied with their weights; inputs, outputs and
    names are kept.

    Args:
        model: a built Functional or Sequential ``keras.Model`` (nested models
            are entered). Never modified.
        num_basis: ``m``: an int, a dict ``{layer or group name: int}`` (layers
            not in the dict are left dense) or a callable ``layer -> int``. A
            value at or above the rank bound ``min(p*kh*kw, n*s)`` gives the
            exact decomposition (it is clipped to the bound). Exclusive with
            ``ratio``.
        splits: ``s``: ``"auto"`` (Eq. 13, the divisor of ``c`` nearest the
            optimum ``sqrt(c*kh*kw/n)``; with ``ratio`` under ``"macs"`` and
            ``"latency"`` each unshared layer chooses between ``s = 1`` and
            Eq. 13), an int, a dict or a callable.
        ratio: the budget, a fraction in (0, 1] of what ``objective``
            measures; each layer (or share group) gets the dense form or a pair
            ``(s, m)`` so that the summed approximation error is minimal within
            it. A layer whose every pair costs at least its dense form stays
            dense (the reason is in :func:`report`).
        layers: which Conv2D layers to compress: None (every Conv2D with
            ``groups == 1`` where compression saves parameters), a list of
            names, a regular expression (full match) or a predicate
            ``layer -> bool``. Layers named explicitly are compressed even when
            this saves nothing (e.g. exact decompositions).
        share: None (a basis per layer), ``"block"`` (convolutions flowing into
            the same merge layer, e.g. a residual Add), ``"stage"`` (same input
            resolution, so a stride-2 first conv uses the previous stage's
            basis), ``"network"`` (one basis per kernel size, depth = the widest
            input, narrower layers use its first channels), a list of lists of
            layer names, a dict ``{group name: [layer names]}`` or a callable
            ``layer -> group key or None``. Presets group only layers that can
            share (same kernel size and compatible depth); explicit groups must
            be able to share or a ValueError is raised. A shared basis is one
            weight, initialised by the SVD of the concatenated split matrices.
        init: ``"svd"`` (Eckart-Young optimal from the trained kernels),
            ``"random"`` (He-uniform basis and coefficients, the authors'
            from-scratch setting; biases zero) or ``"data"`` (SVD, then each
            layer's coefficients and bias refitted by least squares on
            ``calibration_data`` so that its output on the compressed network's
            own activations matches the original layer's; layers inside nested
            models keep the SVD init).
        gamma: weight of the paper's Eq. 18 term ``gamma * sum ||W - B A||^2``
            (original kernels held as constants), added as a regularizer loss
            of the basis weights during ``fit``. Remove it with :func:`strip`.
        allocation: with ``ratio``: ``"error"`` (default: greedy allocation
            minimising the sum of per-layer normalised approximation errors
            ``||W - BA||^2 / ||W||^2`` for the budget) or ``"uniform"`` (every
            layer keeps ``ratio`` of its own weights; under ``"macs"`` and
            ``"latency"`` the same fraction of its own cost, the largest that fits).
        calibration_data: for ``init="data"``: an array of inputs, or an
            iterable of batches ``x`` or ``(x, y, ...)``.
        seed: seed of ``init="random"``.
        verbose: 1 shows a progress bar and the skipped layers, 0 is silent.
        objective: what ``ratio`` bounds. ``"macs"`` (default): the whole
            model's multiply-accumulates (:func:`keras_basis.count_macs`) at
            most ``ratio`` times the original's, m a multiple of 8 and a pair
            only where it has at most ``max_pair_macs`` (0.5) of its dense
            MACs, so that the result is not slower than the original on
            TFLite/XNNPACK (float32 and int8); a ValueError names the smallest
            reachable ratio. ``"params"``: the weights of the compressed
            convolutions (the paper's budget; ``splits="auto"`` is Eq. 13).
            ``"latency"``: the convolutions' latency from ``latency_table`` at
            most ``ratio`` times the dense one in every ``latency_modes``.
        multiple_of: m is a multiple of this (clipped by the rank bound):
            None is 1 for ``"params"``, 8 for ``"macs"`` and ``"latency"``;
            an int, a dict ``{layer name: int}`` (the default for the others)
            or a callable ``layer -> int`` (e.g. 16 on wide layers only; a
            share group takes the least common multiple of its members').
        max_pair_macs: a pair is admissible only if its MACs are at most this
            fraction of the dense layer's; None is 0.5 under ``"macs"`` and 1
            (no guard) otherwise.
        latency_table: for ``"latency"``: None (measure on this machine), a
            path of a saved table or a ``keras_basis.latency.LatencyTable``;
            a layer geometry it lacks is measured here (and added), the forms
            it lacks of a geometry it holds are no candidates.
        latency_modes: ``(quantize, threads)`` pairs the latency budget holds
            in; quantize ``"float32"`` or ``"int8"``. None: the modes
            ``latency_table`` holds dense timings in, or, for a new table,
            float32 and int8 at 1 and 2 threads.

    Returns:
        A new ``keras.Model`` (compiled like ``model`` if it was compiled).

    Raises:
        TypeError / ValueError naming the argument, the layer and the value
        received; nothing is built when an argument is bad.

    Example:

    >>> small = keras_basis.compress(model, ratio=0.5)  # half the MACs
    >>> light = keras_basis.compress(model, ratio=0.5, objective="params")
    >>> small.compile("adam", "sparse_categorical_crossentropy")
    >>> small.fit(x, y, epochs=1)
    >>> keras_basis.report(small, reference=model)
    """
    ratio = budget.check_size(model, num_basis, ratio, allocation)
    settings = _objective.check(num_basis, objective, multiple_of, max_pair_macs,
                               latency_table, latency_modes)
    if init not in _INITS:
        raise ValueError(
            f"Invalid value for argument `init`. Expected one of {_INITS}. Received init={init!r}."
        )
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or gamma < 0:
        raise ValueError(
            f"Invalid value for argument `gamma`. Expected a float >= 0. Received gamma={gamma!r}."
        )
    if init == "data" and calibration_data is None:
        raise ValueError(
            "Invalid value for argument `calibration_data`: init='data' needs calibration "
            "inputs (an array or an iterable of batches). Received calibration_data=None."
        )

    if init == "data":  # materialised and checked (finite) before any work
        calibration_data = calibrate.batches(calibration_data)

    groups, skipped = budget.plan_groups(model, num_basis, splits, ratio, layers, share,
                                         allocation, settings)
    if not groups:
        reasons = "; ".join(f"{nm}: {why}" for nm, why in skipped[:8]) or (
            "it has no Conv2D layer (Dense, depthwise and other layers are never compressed)"
        )
        warnings.warn(
            f"compress: nothing was compressed in model '{model.name}': the copy equals "
            f"the original. Why: {reasons}{' ...' if len(skipped) > 8 else ''}.",
            UserWarning,
            stacklevel=2,
        )

    progbar = keras.utils.Progbar(len(groups), verbose=1 if verbose else 0,
                                  unit_name="layer") if groups else None
    for i, g in enumerate(groups):
        if init == "random":
            plan.random_init(g, None if seed is None else seed + i)
            for mb in g.members:
                mb.bias = None if mb.bias is None else np.zeros_like(mb.bias)
        else:
            plan.decompose(g)
        progbar.update(i + 1)

    pairs = _make_pairs(groups)
    new = clone.Cloner(lambda layer: pairs.get(id(layer)))(model)

    if init == "data":
        calibrate.refit(model, new, [mb for g in groups for mb in g.members],
                        calibration_data, verbose)
    if gamma:
        for g in groups:
            basis_layer = pairs[id(g.members[0].layer)].basis
            targets = [(pairs[id(mb.layer)].coef, mb.kernel) for mb in g.members]
            basis_layer.basis.regularizer = KernelFidelity(gamma, targets)
            basis_layer.basis_regularizer = basis_layer.basis.regularizer
    _INFO[new] = {
        "kernels": {mb.name: mb.kernel for g in groups for mb in g.members},
        "skipped": skipped,
    }
    if verbose and skipped:
        print(f"compress: {len(skipped)} layer(s) left dense: "
              + ", ".join(f"{nm} ({why})" for nm, why in skipped[:8])
              + (" ..." if len(skipped) > 8 else ""))
    return new


def basis_clone_function(num_basis, splits="auto"):
    """Clone function for ``keras.models.clone_model`` that SVD-compresses Conv2D.

    Every Conv2D with ``groups == 1`` (channels_last) becomes a two-layer
    ``keras.Sequential`` named like the layer: ``[BasisConv2D(name=NAME_basis),
    Conv2D(n, 1, name=NAME)]``, initialised by truncated SVD exactly as
    :func:`compress` does; other layers are cloned from their config and get
    the original's weights (built from ``get_build_config()``; a layer that
    cannot be built that way gets fresh weights, with a warning).

    What needs :func:`compress` instead: shared bases (``share``), the ``ratio``
    budget and its allocation, ``init="data"``, ``gamma``, the "saves
    parameters" default selection, and a flat graph (the pair inside a nested
    Sequential instead of two top-level layers).

    Args:
        num_basis: an int, a dict ``{layer name: int}`` (other layers are
            cloned unchanged) or a callable ``layer -> int``; clipped to the
            rank bound.
        splits: ``"auto"`` (Eq. 13), an int, a dict or a callable.

    Returns:
        A callable ``layer -> layer``.

    Example:

    >>> fn = keras_basis.basis_clone_function(num_basis=8, splits=1)
    >>> small = keras.models.clone_model(model, clone_function=fn)
    """

    def clone_function(layer):
        if not isinstance(layer, keras.layers.Conv2D) or plan.skip_reason(layer):
            return _copy_with_weights(layer)
        m = plan.per_layer("num_basis", num_basis, layer)
        if m is None:
            return _copy_with_weights(layer)
        mb = _member_no_owner(layer)
        plan.resolve_splits([mb], splits)
        group = plan.Group(f"{layer.name}_basis", [mb], p=mb.c // mb.s)
        group.m = min(plan.check_int("num_basis", m, layer.name), group.rank)
        plan.decompose(group)
        pair = _make_pairs([group])[id(layer)]
        return keras.Sequential([pair.basis, pair.coef], name=layer.name)

    return clone_function


def _copy_with_weights(layer):
    new = clone.copy_layer(layer)
    build_config = layer.get_build_config() if layer.weights else None
    if build_config:
        try:
            new.build_from_config(build_config)
            new.set_weights(layer.get_weights())
        except (ValueError, TypeError, NotImplementedError) as err:
            warnings.warn(
                f"basis_clone_function: could not copy the weights of layer "
                f"'{layer.name}' ({err}); it gets fresh weights.", stacklevel=3
            )
            new = clone.copy_layer(layer)
    return new


def _member_no_owner(layer):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
    kh, kw, c, n = kernel.shape
    return plan.Member(layer, None, layer.name, c, n, (kh, kw), kernel, bias, None, None)


def decompress(model, layers=None):
    """Fold basis pairs back into plain Conv2D layers (exact up to float error).

    Each pair becomes ``keras.layers.Conv2D`` with the coefficient layer's
    name and activation, the basis call's strides/padding/dilation, kernel
    ``maths.reconstruct(basis, coefficients)`` and the pair's bias (the
    coefficient bias plus any basis bias passed through the coefficients).

    Args:
        model: a built Functional or Sequential model. Never modified.
        layers: None (fold every pair) or names of coefficient layers (the
            ``BasisPair.name`` of :func:`basis_pairs`) to fold; the other pairs
            stay in basis form (a shared basis stays while one user keeps it).

    Returns:
        A new ``keras.Model``.

    Example:

    >>> dense = keras_basis.decompress(small)
    >>> partly = keras_basis.decompress(small, layers=["conv2"])
    """
    graph.check_model(model)
    pairs = basis_pairs(model)
    if layers is not None:
        if isinstance(layers, str) or not isinstance(layers, (list, tuple, set, frozenset)):
            raise TypeError(
                "Invalid type for argument `layers`. Expected None or a list of coefficient "
                f"layer names. Received layers={layers!r}."
            )
        known = {pr.name for pr in pairs}
        for nm in layers:
            if nm not in known:
                raise ValueError(
                    f"Invalid value for argument `layers`: '{nm}' is not the coefficient "
                    f"layer of a basis pair of model '{model.name}'. Known pairs: "
                    f"{sorted(known)!r}."
                )
        pairs = [pr for pr in pairs if pr.name in layers]
    fold = {}
    for pr in pairs:
        fold[id(pr.coef_layer)] = clone.Folded(clone.fold_conv(pr, pr.kernel(), pr.bias()))
    all_pairs = basis_pairs(model)
    folded_bases = {id(pr.basis_layer) for pr in pairs}
    folded_bases |= {id(pr.bias_layer) for pr in pairs if pr.bias_layer is not None}
    kept_bases = {id(pr.basis_layer) for pr in all_pairs if id(pr.coef_layer) not in fold}

    def layer_fn(layer):
        if id(layer) in fold:
            return fold[id(layer)]
        if id(layer) in folded_bases and id(layer) not in kept_bases:
            return clone.DROP
        return _strip_copy(layer)

    return clone.Cloner(layer_fn)(model)


def _strip_copy(layer):
    if isinstance(layer, BasisConv2D) and isinstance(layer.basis_regularizer, KernelFidelity):
        def edit(config):
            config["basis_regularizer"] = None
            return config
        return clone.copy_layer(layer, edit)
    return clone.copy_layer(layer)


def strip(model):
    """Copy of ``model`` without the Eq. 18 term (``gamma``) and its constants.

    Outputs are identical; the result holds only ordinary layers and weights
    and is ready for ``.keras`` saving and TFLite export. Models without the
    term are simply copied.

    Args:
        model: a built Functional or Sequential model. Never modified.

    Returns:
        A new ``keras.Model``.

    Example:

    >>> tuned = keras_basis.compress(model, ratio=0.5, gamma=1e-3)
    >>> tuned.fit(x, y)
    >>> export_ready = keras_basis.strip(tuned)
    """
    graph.check_model(model)
    new = clone.Cloner(_strip_copy)(model)
    if model in _INFO:
        _INFO[new] = _INFO[model]
    return new


def report(model, reference=None, print_fn=print):
    """Per-layer compression table, printed like ``model.summary()`` and returned.

    For each basis pair: c, n, kernel, s, p, m, weights and FLOPs before/after,
    relative approximation error ``||W - BA||^2 / ||W||^2`` and the layers
    sharing its basis; then the layers left dense (with the reason) and
    totals. On an uncompressed model it lists the candidate Conv2D layers with
    their Eq. 13 split, rank bound and the ``m`` needed to keep 90% / 99% of
    the split matrix energy.

    Args:
        model: a built Functional or Sequential model (compressed or not), or
            one :class:`BasisPair` / a list of them (from :func:`basis_pairs`).
        reference: the original model, to compute the approximation error of
            the current (e.g. fine-tuned) weights; without it the kernels
            remembered by :func:`compress` are used while the model lives.
        print_fn: called with each line; ``None`` prints nothing.

    Returns:
        :class:`keras_basis.transform.Report` (``rows``: list of dicts,
        ``totals``: dict, ``skipped``: list of ``(name, reason)``;
        ``str(report)`` is the table).

    Example:

    >>> table = keras_basis.report(small, reference=model)
    >>> table.totals["params_ratio"]
    """
    if isinstance(model, BasisPair):
        model = [model]
    is_pairs = (isinstance(model, (list, tuple)) and model
                and all(isinstance(pr, BasisPair) for pr in model))
    if not is_pairs:
        graph.check_model(model)
    if reference is not None:
        graph.check_model(reference, "reference")
    if is_pairs:
        rep = _report.build_pairs(list(model), reference, _INFO.get(model[0].owner, {}), maths)
    else:
        rep = _report.build(model, reference, _INFO.get(model, {}), maths)
    if print_fn is not None:
        for line in str(rep).splitlines():
            print_fn(line)
    return rep


def _kernels_by_name(model):
    """``{name: kernel}`` of the layers with a 4D kernel (nested models entered)."""
    out = {}
    for layer, _ in graph.walk(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4:
            out.setdefault(layer.name, kernel)
    return out


def spectra(model, reference=None, *, ratio=None, num_basis=None, splits="auto", **budget_args):
    """Per-layer singular-value spectra of the split matrices, with ``m`` marked.

    Nothing is compressed: for an original model the ``m`` come from the same
    plan as :func:`compress` (selection, splits, allocation).

    * A compressed model (it has basis pairs): one entry per pair, marked
      with its ``m``; the spectrum is of the ``reference`` model's layer of
      the same name when given (and of the same shape), else of the kernel
      the pair computes (rank at most ``m``).
    * An original model with ``ratio`` or ``num_basis``: one entry per layer
      that ``compress(model, ratio=..., num_basis=..., splits=splits)`` would
      compress, marked with the ``m`` it would choose.
    * An original model without them: every candidate Conv2D, marked with
      the ``m`` keeping 90% and 99% of the energy
      (:func:`keras_basis.maths.rank_for_energy`).

    Args:
        model: a built Functional or Sequential model.
        reference: the original model of a compressed ``model`` (optional).
        ratio, num_basis: as in :func:`compress` (at most one).
        splits: as in :func:`compress` (``"auto"``: Eq. 13).
        **budget_args: ``objective``, ``multiple_of``, ``max_pair_macs``,
            ``latency_table``, ``latency_modes``, ``layers``, ``share`` and
            ``allocation`` as in :func:`compress`.

    Returns:
        list of dicts: ``name``, ``c``, ``n``, ``kernel`` (``(kh, kw)``),
        ``s``, ``sv`` (descending singular values of the ``(p*kh*kw, n*s)``
        split matrix), ``marks`` (list of ``(m, label)``) and ``source``
        (``"kernel"``, ``"reference kernel"`` or
        ``"effective kernel (rank <= m)"``).

    Raises:
        ValueError: e.g. ``splits`` does not divide a layer's input channels.

    Example:

    >>> [(e["name"], e["marks"]) for e in keras_basis.transform.spectra(model)]
    [('conv1', [(5, '@90%'), (9, '@99%')]), ...]
    """
    graph.check_model(model)
    if reference is not None:
        graph.check_model(reference, "reference")
    pairs = basis_pairs(model)
    entries = []
    if pairs:
        originals = _kernels_by_name(reference) if reference is not None else {}
        for pr in pairs:
            original = originals.get(pr.name)
            if original is not None and tuple(original.shape[:3]) == (*pr.kernel_size, pr.c):
                kernel, source = keras.ops.convert_to_numpy(original), "reference kernel"
            else:
                kernel, source = pr.kernel(), "effective kernel (rank <= m)"
            entries.append(dict(
                name=pr.name, c=pr.c, n=pr.n, kernel=tuple(pr.kernel_size), s=pr.s,
                sv=maths.singular_values(kernel, pr.s), marks=[(pr.m, "")], source=source,
            ))
        return entries
    if ratio is not None or num_basis is not None:
        args = dict(objective=None, multiple_of=None, max_pair_macs=None, latency_table=None,
                    latency_modes=None, layers=None, share=None,
                    allocation="error")
        unknown = sorted(set(budget_args) - set(args))
        if unknown:
            raise TypeError(f"spectra() got an unexpected keyword argument '{unknown[0]}'")
        args.update(budget_args)
        ratio = budget.check_size(model, num_basis, ratio, args["allocation"])
        settings = _objective.check(num_basis, args["objective"], args["multiple_of"],
                                    args["max_pair_macs"], args["latency_table"],
                                    args["latency_modes"])
        groups, _ = budget.plan_groups(model, num_basis, splits, ratio, args["layers"],
                                       args["share"], args["allocation"], settings)
        what = f"ratio {ratio:g}" if ratio is not None else "num_basis"
        members = [(mb, g.m) for g in groups for mb in g.members]
        order = {ly.name: i for i, (ly, _) in enumerate(graph.walk(model))}
        members.sort(key=lambda item: order.get(item[0].name, 0))
        for mb, m in members:
            entries.append(dict(
                name=mb.name, c=mb.c, n=mb.n, kernel=tuple(mb.kernel_size), s=mb.s,
                sv=maths.singular_values(mb.kernel, mb.s), marks=[(m, f" ({what})")],
                source="kernel",
            ))
        return entries
    candidates, _, _ = plan.select(model, None)
    members = [plan.make_member(ly, ow) for ly, ow in candidates]
    plan.resolve_splits(members, splits)
    for mb in members:
        sv = maths.singular_values(mb.kernel, mb.s)
        marks = [(maths.rank_for_energy(sv, frac), f"@{frac:.0%}") for frac in (0.9, 0.99)]
        entries.append(dict(
            name=mb.name, c=mb.c, n=mb.n, kernel=tuple(mb.kernel_size), s=mb.s, sv=sv,
            marks=marks, source="kernel",
        ))
    return entries


Report = _report.Report
