"""Planning a compression: which layers, their splits, share groups, num_basis.

Pure bookkeeping over layers and NumPy kernels; no model is built here.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import re
from typing import Optional

import keras
import numpy as np

from keras_basis import maths
from keras_basis._transform import graph

# Support table: layer classes that look like convolutions but are not
# compressed, with the reason reported to the user (checked in order; the
# first isinstance match wins).
UNSUPPORTED = (
    (keras.layers.DepthwiseConv2D, "DepthwiseConv2D: one filter per channel, nothing to share"),
    (keras.layers.SeparableConv2D, "SeparableConv2D is not supported"),
    (keras.layers.Conv2DTranspose, "Conv2DTranspose is not supported"),
    (keras.layers.Conv1D, "Conv1D is not supported (2D convolutions only)"),
    (keras.layers.Conv3D, "Conv3D is not supported (2D convolutions only)"),
    (keras.layers.Conv1DTranspose, "Conv1DTranspose is not supported"),
    (keras.layers.Conv3DTranspose, "Conv3DTranspose is not supported"),
)

SHARE_PRESETS = ("block", "stage", "network")


@dataclasses.dataclass
class Member:
    """One Conv2D layer selected for compression."""

    layer: keras.layers.Conv2D
    owner: keras.Model
    name: str
    c: int
    n: int
    kernel_size: tuple
    kernel: np.ndarray
    bias: Optional[np.ndarray]
    in_shape: Optional[tuple]
    out_shape: Optional[tuple]
    s: int = 1

    @property
    def dense_params(self):
        return maths.conv_params(self.c, self.n, *self.kernel_size)


@dataclasses.dataclass
class Group:
    """Layers sharing one basis (a single member for an unshared basis)."""

    name: str
    members: list
    p: int = 0
    m: int = 0
    split_mode: str = "batch"  # BasisConv2D(split_mode=...): objective="latency" may pick "dilated"
    explicit: bool = False
    sv: Optional[np.ndarray] = None
    basis: Optional[np.ndarray] = None
    coefs: Optional[list] = None

    @property
    def kernel_size(self):
        return self.members[0].kernel_size

    @property
    def shared(self):
        return len(self.members) > 1

    @property
    def per_basis_cost(self):
        kh, kw = self.kernel_size
        return self.p * kh * kw + sum(mb.n * mb.s for mb in self.members)

    @property
    def dense_params(self):
        return sum(mb.dense_params for mb in self.members)

    @property
    def rank(self):
        kh, kw = self.kernel_size
        return min(self.p * kh * kw, sum(mb.n * mb.s for mb in self.members))

    def params(self, m=None):
        return (self.m if m is None else m) * self.per_basis_cost


def skip_reason(layer):
    """Why ``layer`` (a convolution-like layer) cannot be compressed, or None."""
    for cls, reason in UNSUPPORTED:
        if isinstance(layer, cls):
            return reason
    if not isinstance(layer, keras.layers.Conv2D):
        return None
    if type(layer) is not keras.layers.Conv2D:
        return f"subclass {type(layer).__name__} of Conv2D (its call may differ)"
    if layer.groups != 1:
        return f"grouped convolution (groups={layer.groups})"
    if layer.data_format != "channels_last":
        return f"data_format={layer.data_format!r} (channels_last only)"
    return None


def is_conv_like(layer):
    return isinstance(layer, keras.layers.Conv2D) or any(
        isinstance(layer, cls) for cls, _ in UNSUPPORTED
    )


def select(model, layers):
    """Return ``(candidates, skipped, forced)``.

    candidates: list of (layer, owner) to compress; skipped: list of
    (name, reason); forced: whether the user named the layers (then the
    "no parameter saving" rule does not apply).
    """
    all_layers = list(graph.walk(model))
    names = {ly.name for ly, _ in all_layers}
    coefs = {id(pr.coef_layer) for pr in graph.basis_pairs(model)}

    def why(layer):
        if id(layer) in coefs:
            return "coefficients of an existing basis pair"
        return skip_reason(layer)

    conv = [(ly, ow) for ly, ow in all_layers if is_conv_like(ly)]
    skipped = [(ly.name, why(ly)) for ly, _ in conv if why(ly)]
    eligible = [(ly, ow) for ly, ow in conv if not why(ly)]
    if layers is None:
        return eligible, skipped, False
    if isinstance(layers, (list, tuple, set, frozenset)):
        for nm in layers:
            if not isinstance(nm, str):
                raise TypeError(
                    "Invalid type for argument `layers`: a list must hold layer names "
                    f"(str). Received an element {nm!r} of type {type(nm).__name__}."
                )
            if nm not in names:
                raise ValueError(
                    f"Invalid value for argument `layers`: model '{model.name}' has no "
                    f"layer named '{nm}'. Received layers={sorted(layers)!r}."
                )
        bad = [(ly.name, why(ly) or f"{type(ly).__name__} is not a convolution")
               for ly, _ in all_layers if ly.name in layers
               and (not is_conv_like(ly) or why(ly))]
        if bad:
            nm, why = bad[0]
            raise ValueError(
                f"Invalid value for argument `layers`: layer '{nm}' cannot be compressed "
                f"({why}). Received layers={sorted(layers)!r}."
            )
        chosen = [(ly, ow) for ly, ow in eligible if ly.name in layers]
    elif isinstance(layers, (str, re.Pattern)):
        pattern = re.compile(layers) if isinstance(layers, str) else layers
        chosen = [(ly, ow) for ly, ow in eligible if pattern.fullmatch(ly.name)]
        if not chosen:
            raise ValueError(
                "Invalid value for argument `layers`: the regular expression "
                f"{pattern.pattern!r} matches no compressible Conv2D layer of model "
                f"'{model.name}'. Received layers={layers!r}."
            )
    elif callable(layers):
        chosen = [(ly, ow) for ly, ow in eligible if layers(ly)]
    else:
        raise TypeError(
            "Invalid type for argument `layers`. Expected None, a list of layer names, "
            f"a regular expression or a predicate. Received layers={layers!r}."
        )
    chosen_ids = {id(ly) for ly, _ in chosen}
    skipped += [(ly.name, "not selected by `layers`") for ly, _ in eligible
                if id(ly) not in chosen_ids]
    return chosen, skipped, True


def make_member(layer, owner):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
    in_shape, out_shape = graph.io_shapes(layer, owner)
    kh, kw, c, n = kernel.shape
    return Member(layer, owner, layer.name, c, n, (kh, kw), kernel, bias, in_shape, out_shape)


def per_layer(argument, value, layer):
    """Resolve an int / dict / callable argument for ``layer``."""
    if isinstance(value, dict):
        return value.get(layer.name)
    if callable(value) and not isinstance(value, str):
        return value(layer)
    return value


def check_dict_keys(argument, value, known):
    if isinstance(value, dict):
        unknown = sorted(k for k in value if k not in known)
        if unknown:
            raise ValueError(
                f"Invalid value for argument `{argument}`: key '{unknown[0]}' is not a "
                f"compressed layer or share group. Received {argument} keys "
                f"{sorted(value)!r}."
            )


def check_int(argument, value, layer_name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"Invalid type for argument `{argument}` of layer '{layer_name}'. Expected a "
            f"positive int. Received {argument}={value!r} of type {type(value).__name__}."
        )
    if value <= 0:
        raise ValueError(
            f"Invalid value for argument `{argument}` of layer '{layer_name}'. Expected a "
            f"strictly positive integer. Received {argument}={value}."
        )
    return int(value)


def resolve_splits(members, splits):
    """Set ``member.s`` (validated) for every member; "auto" is Eq. 13."""
    for mb in members:
        s = per_layer("splits", splits, mb.layer)
        if s is None or (isinstance(s, str) and s == "auto"):
            s = maths.optimal_splits(mb.c, mb.n, *mb.kernel_size)
        elif isinstance(s, str):
            raise ValueError(
                f"Invalid value for argument `splits` of layer '{mb.name}'. Expected "
                f"'auto', an int, a dict or a callable. Received splits={s!r}."
            )
        s = check_int("splits", s, mb.name)
        if mb.c % s:
            raise ValueError(
                f"Invalid value for argument `splits` of layer '{mb.name}'. Expected a "
                f"divisor of its input channels c={mb.c}. Received splits={s}."
            )
        mb.s = s


# ---------------------------------------------------------------- grouping
def _next_merge(layer, owner):
    """Name of the merge layer (Add, Concatenate, ...) the conv output flows into
    through single-consumer, single-input layers; None if it branches first."""
    own = {id(n) for n in graph.model_nodes(owner)}
    nodes = [n for n in graph.inbound_nodes(layer) if id(n) in own]
    if len(nodes) != 1:
        return None
    node = nodes[0]
    for _ in range(64):
        consumers = graph.consumers(node, owner, own)
        if len(consumers) != 1:
            return None
        node = consumers[0]
        if len(node.input_tensors) > 1:
            return node.operation.name
    return None


def _preset_key(preset, mb):
    if isinstance(mb.owner, graph.Sequential):
        return None  # a Sequential cannot hold (or save) one layer twice
    base = (id(mb.owner), mb.kernel_size)
    if preset == "network":
        return base
    if preset == "stage":
        hw = tuple(mb.in_shape[1:3]) if mb.in_shape else None
        return base + (hw,)
    merge = _next_merge(mb.layer, mb.owner)
    return None if merge is None else base + (merge,)


def _preset_name(preset, key, mb):
    kh, kw = mb.kernel_size
    if preset == "network":
        return f"network_{kh}x{kw}_basis"
    if preset == "stage":
        hw = "x".join(str(v) for v in key[-1]) if key[-1] else "any"
        return f"stage_{hw}_{kh}x{kw}_basis"
    return f"{key[-1]}_{kh}x{kw}_basis"


def _depth(group, splits_auto, preset):
    """Basis depth of a group and the per-member splits; returns the list of
    incompatible members (left unchanged)."""
    members = group.members
    if len(members) == 1:
        group.p = members[0].c // members[0].s
        return []
    if splits_auto:
        if preset == "network":
            p = max(mb.c for mb in members)
        else:
            big = max(members, key=lambda mb: mb.c)
            p = big.c // big.s
        bad = []
        for mb in members:
            if mb.c % p == 0:
                mb.s = mb.c // p
            elif mb.c < p:
                mb.s = 1
            else:
                bad.append(mb)
    else:
        p = max(mb.c // mb.s for mb in members)
        bad = [mb for mb in members if not (mb.c // mb.s == p or (mb.s == 1 and mb.c < p))]
    group.p = p
    return bad


def make_groups(members, share, splits_auto, taken_names):
    """Partition members into basis groups according to ``share``."""
    groups = []
    by_name = {}
    for mb in members:
        by_name.setdefault(mb.name, []).append(mb)
    explicit = None
    preset = None
    if share is None:
        explicit = []
    elif isinstance(share, str):
        if share not in SHARE_PRESETS:
            raise ValueError(
                f"Invalid value for argument `share`. Expected None, one of "
                f"{SHARE_PRESETS}, a list of lists of layer names, a dict "
                f"{{group_name: [layer names]}} or a callable. Received share={share!r}."
            )
        preset = share
    elif isinstance(share, dict):
        explicit = [(str(k), list(v)) for k, v in share.items()]
    elif isinstance(share, (list, tuple)):
        explicit = []
        for i, grp in enumerate(share):
            if isinstance(grp, str) or not isinstance(grp, (list, tuple, set)):
                raise TypeError(
                    "Invalid type for argument `share`: expected a list of lists of "
                    f"layer names. Received element {i}: {grp!r}."
                )
            explicit.append((f"shared_basis_{i}", list(grp)))
    elif callable(share):
        keyed = {}
        for mb in members:
            key = share(mb.layer)
            if key is not None:
                keyed.setdefault(str(key), []).append(mb.name)
        explicit = [(f"{k}_basis", v) for k, v in keyed.items()]
    else:
        raise TypeError(
            "Invalid type for argument `share`. Expected None, a str, a list, a dict or "
            f"a callable. Received share={share!r}."
        )

    used = set()
    if explicit is not None:
        for gname, names in explicit:
            grp_members = []
            for nm in names:
                if nm not in by_name:
                    raise ValueError(
                        f"Invalid value for argument `share`: group '{gname}' names layer "
                        f"'{nm}', which is not a compressed Conv2D layer. Received "
                        f"share group {names!r}."
                    )
                if nm in used:
                    raise ValueError(
                        f"Invalid value for argument `share`: layer '{nm}' is in more "
                        f"than one share group (again in group '{gname}')."
                    )
                used.add(nm)
                grp_members.extend(by_name[nm])
            ref = grp_members[0]
            if len(grp_members) > 1 and isinstance(ref.owner, graph.Sequential):
                raise ValueError(
                    f"Invalid value for argument `share`: group '{gname}' holds layer "
                    f"'{ref.name}' of Sequential model '{ref.owner.name}'; a Sequential "
                    "model cannot hold one (basis) layer twice. Rebuild it as a "
                    "Functional model to share bases."
                )
            for mb in grp_members[1:]:
                if mb.kernel_size != ref.kernel_size:
                    raise ValueError(
                        f"Invalid value for argument `share`: in group '{gname}', layer "
                        f"'{mb.name}' has kernel_size={mb.kernel_size} but layer "
                        f"'{ref.name}' has kernel_size={ref.kernel_size}; layers sharing "
                        "a basis need the same kernel size."
                    )
                if mb.owner is not ref.owner:
                    raise ValueError(
                        f"Invalid value for argument `share`: in group '{gname}', layers "
                        f"'{ref.name}' and '{mb.name}' belong to different (nested) "
                        "models; a basis can only be shared inside one model."
                    )
            group = Group(gname, grp_members, explicit=True)
            bad = _depth(group, splits_auto, None)
            if bad:
                mb = bad[0]
                raise ValueError(
                    f"Invalid value for argument `share`: in group '{gname}', layer "
                    f"'{mb.name}' (c={mb.c}, splits={mb.s}) cannot use a shared basis of "
                    f"depth p={group.p}: it needs c/splits == p, or splits=1 and c < p "
                    "(sliced basis)."
                )
            groups.append(group)
        for mb in members:
            if mb.name not in used:
                groups.append(Group(f"{mb.name}_basis", [mb]))
    else:
        keyed = {}
        for mb in members:
            key = _preset_key(preset, mb)
            if key is None:
                groups.append(Group(f"{mb.name}_basis", [mb]))
            else:
                keyed.setdefault(key, []).append(mb)
        for key, mbs in keyed.items():
            group = Group(_preset_name(preset, key, mbs[0]), mbs)
            saved = [mb.s for mb in mbs]
            bad = _depth(group, splits_auto, preset)
            if bad:
                for mb, s in zip(mbs, saved):
                    mb.s = s
                good = [mb for mb in mbs if mb not in bad]
                group = Group(group.name, good)
                _depth(group, splits_auto, preset)
                groups.extend(Group(f"{mb.name}_basis", [mb]) for mb in bad)
            if len(group.members) == 1:
                group.name = f"{group.members[0].name}_basis"
            groups.append(group)
    for g in groups:
        if not g.p:
            _depth(g, splits_auto, None)
    # unique layer names for the bases
    taken = set(taken_names)
    for g in groups:
        base, k = g.name, 1
        while g.name in taken:
            g.name = f"{base}_{k}"
            k += 1
        taken.add(g.name)
    return groups


# --------------------------------------------------------------- spectra
def joint_matrix(group):
    kh, kw = group.kernel_size
    mats = []
    for mb in group.members:
        d = mb.c // mb.s
        mat = maths.split_matrix(mb.kernel, mb.s).reshape(kh, kw, d, -1)
        if d < group.p:
            mat = np.concatenate([mat, np.zeros((kh, kw, group.p - d, mat.shape[-1]))], axis=2)
        mats.append(mat.reshape(kh * kw * group.p, -1))
    return np.concatenate(mats, axis=1)


def spectrum(group):
    group.sv = np.linalg.svd(joint_matrix(group).astype(np.float64), compute_uv=False)
    return group.sv


# ------------------------------------------------------------- allocation
def allocate(groups, ratio, rule):
    """Set ``group.m`` for a parameter budget ``ratio * dense params``.

    ``rule="uniform"``: every group keeps ``ratio`` of its own parameters.
    ``rule="error"``: greedy marginal allocation minimising the sum over layers
    of the normalised approximation error ``||W - BA||^2 / ||W||^2`` (optimal for
    this separable objective since each layer's error decrements, the squared
    singular values, are non-increasing).
    """
    if rule == "uniform":
        for g in groups:
            m = int(math.floor(ratio * g.dense_params / g.per_basis_cost + 1e-9))
            g.m = max(1, min(m, g.rank))
        return
    budget = ratio * sum(g.dense_params for g in groups)
    heap = []
    spent = 0
    gains = []
    for i, g in enumerate(groups):
        g.m = 1
        spent += g.per_basis_cost
        norm = sum(float(np.sum(mb.kernel.astype(np.float64) ** 2)) for mb in g.members)
        gain = (g.sv ** 2) / norm * len(g.members) if norm > 0 else np.zeros_like(g.sv)
        gains.append(gain)
        cap = min(g.rank, max(1, (g.dense_params - 1) // g.per_basis_cost))
        g._cap = cap
        if g.m < cap and g.m < len(gain) and gain[g.m] > 0:
            heapq.heappush(heap, (-gain[g.m] / g.per_basis_cost, i))
    while heap:
        _, i = heapq.heappop(heap)
        g = groups[i]
        if spent + g.per_basis_cost > budget + 1e-9:
            continue  # never fits: spent only grows
        g.m += 1
        spent += g.per_basis_cost
        if g.m < g._cap and g.m < len(gains[i]) and gains[i][g.m] > 0:
            heapq.heappush(heap, (-gains[i][g.m] / g.per_basis_cost, i))


# ---------------------------------------------------------- decomposition
def decompose(group):
    """Fill ``group.basis`` and ``group.coefs`` by (joint) truncated SVD."""
    kernels = [mb.kernel for mb in group.members]
    if not group.shared:
        mb = group.members[0]
        dec = maths.decompose(mb.kernel, mb.s, group.m)
        group.basis, group.coefs, group.sv = dec.basis, [dec.coefficients], dec.singular_values
        return
    basis, coefs, sv = maths.decompose_shared(kernels, [mb.s for mb in group.members], group.m)
    group.basis, group.coefs, group.sv = basis, coefs, sv


def random_init(group, seed):
    kh, kw = group.kernel_size
    init = keras.initializers.HeUniform(seed=seed)
    group.basis = keras.ops.convert_to_numpy(init((kh, kw, group.p, group.m)))
    group.coefs = [
        keras.ops.convert_to_numpy(init((1, 1, mb.s * group.m, mb.n)))[0, 0]
        for mb in group.members
    ]
