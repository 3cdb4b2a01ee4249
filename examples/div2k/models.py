"""SRResNet, EDSR and EDSR-8-128 (x2, x3, x4) with their basis and Factor variants.

Keras functional builders of the networks of Li, Gu, Van Gool, Timofte, "Learning
Filter Basis for Convolutional Neural Network Compression" (ICCV 2019), Tables 2, 3
and 9, with the layer placement of the authors' code:

- SRResNet (Ledig et al.): 9x9 head conv + PReLU, 16 residual blocks of 64 channels
  (conv -> BN -> PReLU -> conv -> BN), conv + BN, global skip, pixel-shuffle
  upsampling (conv -> shuffle -> PReLU per x2 / once for x3), 3x3 output conv.
  Basis blocks ("bn_every"): basis -> BN -> PReLU -> 1x1 -> BN -> PReLU, twice.
  As in the authors' code, ONE PReLU (one slope, layer ``act``) serves the head and
  every block (``shared_prelu=False``: one per site); the upsampler has its own.
- EDSR (Lim et al.): DIV2K mean shift, 3x3 head conv, residual blocks
  (conv -> ReLU -> conv, scaled by ``res_scale``), conv, global skip, pixel shuffle
  without activation, 3x3 output conv. EDSR = 32 x 256 with ``res_scale=0.1``;
  EDSR-8-128 = 8 x 128 with ``res_scale=1``. Basis blocks: basis -> 1x1 -> ReLU ->
  basis -> 1x1; Basis-S: one basis shared by the two convolutions of a block (one
  ``BasisConv2D`` instance called twice, each call with its own bias ``keras_basis.BasisBias``).
- Every basis conv has a bias (the authors' ``basis_bias``), every 1x1 coefficient conv
  too (``proj_bias``).
- Factor (Wang et al., ICCV 2017) as re-implemented by the authors: every block conv
  becomes ``sic_layers`` SIC layers, each depthwise kxk -> 1x1 -> + input -> act.

Only the residual-block convolutions are compressed. Pixel values are 0-255 floats
in and out (the authors' ``rgb_range=255``).

Example:

>>> from examples.div2k.models import build, edsr_8_128
>>> model = build("edsr-8-128-basis-128-40", scale=4)       # a paper configuration
>>> model = edsr_8_128(scale=2, num_basis=27)               # the same builder, by hand
>>> block_weight_counts(model)[0]                            # 69120, as in Table 2
"""

from __future__ import annotations

import re

import keras
from keras import layers

from examples.div2k.layers import DIV2K_RGB_MEAN, MeanShift, PixelShuffle
from keras_basis import BasisBias, BasisConv2D

__all__ = [
    "DIV2K_RGB_MEAN",
    "PAPER_BLOCK_PARAMS",
    "PAPER_PRINTED_K",
    "PRESETS",
    "MeanShift",
    "PixelShuffle",
    "block_conv_names",
    "block_weight_counts",
    "build",
    "edsr",
    "edsr_8_128",
    "srresnet",
    "weight_count",
]

_KERNEL_NAMES = ("kernel", "depthwise_kernel", "basis")
_BLOCK_RE = re.compile(r"^block(\d+)_")
BASIS_INITS = ("authors", "matched")  # from-scratch init of basis convs (basis_init)
#: The ``basis_init`` argument of :func:`srresnet` and :func:`edsr`.
BASIS_INIT_DOC = (
    '``"matched"`` (default: composed filters start with the plain conv\'s default-init '
    'variance) or ``"authors"`` (Kaiming-uniform basis and coefficients, the released '
    'code). From scratch on EDSR-8-128 x4 (4,500 equal steps, benchmarks/RESULTS.md) '
    '"matched" gave Set5 29.45 dB where "authors" gave 26.24 dB; see '
    '``_basis_initializers``. A measured improvement, so it stays the default.'
)


# ------------------------------------------------------------------------ helpers
def _torch_default():
    """PyTorch's default conv init (kaiming_uniform with a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _conv(filters, kernel_size, name, initializer=None):
    return layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        kernel_initializer=initializer or _torch_default(),
        name=name,
    )


def _bn(name):
    # PyTorch BatchNorm2d defaults: momentum 0.1 (Keras 0.9), eps 1e-5.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _prelu(name):
    # nn.PReLU(): one slope per site, initialised at 0.25.
    return layers.PReLU(
        alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2, 3], name=name
    )


def _act(kind, name):
    return _prelu(name) if kind == "prelu" else layers.ReLU(name=name)


def _site_prelu(shared):
    """A function name -> PReLU layer: the one ``shared`` layer, or a new one per site."""
    return (lambda name: shared) if shared is not None else _prelu


def _check_int(name, value, builder, allowed=None, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"Invalid type for argument `{name}` of {builder}(). Expected an int. "
            f"Received {name}={value!r} of type {type(value).__name__}."
        )
    if allowed is not None and value not in allowed:
        raise ValueError(
            f"Invalid value for argument `{name}` of {builder}(). Expected one of "
            f"{allowed}. Received {name}={value}."
        )
    if value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}` of {builder}(). Expected an int >= "
            f"{minimum}. Received {name}={value}."
        )
    return value


def _check_variant(builder, scale, num_blocks, channels, num_basis, basis_depth, share_basis,
                   sic_layers, basis_init):
    """Validates the arguments shared by the builders; returns the basis depth (or None)."""
    _check_int("scale", scale, builder, allowed=(2, 3, 4))
    _check_int("num_blocks", num_blocks, builder)
    _check_int("channels", channels, builder)
    if basis_init not in BASIS_INITS:
        raise ValueError(
            f"Invalid value for argument `basis_init` of {builder}(). Expected one of "
            f"{BASIS_INITS}. Received basis_init={basis_init!r}."
        )
    if num_basis is not None and sic_layers is not None:
        raise ValueError(
            f"Arguments `num_basis` and `sic_layers` of {builder}() are mutually "
            f"exclusive (basis or Factor). Received num_basis={num_basis}, "
            f"sic_layers={sic_layers}."
        )
    if num_basis is None:
        if basis_depth is not None or share_basis:
            raise ValueError(
                f"Arguments `basis_depth` and `share_basis` of {builder}() need "
                f"`num_basis`. Received num_basis=None, basis_depth={basis_depth}, "
                f"share_basis={share_basis}."
            )
        if sic_layers is not None:
            _check_int("sic_layers", sic_layers, builder)
        return None
    _check_int("num_basis", num_basis, builder)
    depth = channels if basis_depth is None else _check_int("basis_depth", basis_depth, builder)
    if channels % depth:
        raise ValueError(
            f"Invalid value for argument `basis_depth` of {builder}(). Expected a divisor "
            f"of channels={channels}. Received basis_depth={depth}."
        )
    return depth


def _mean_shift(kind, sign, name):
    if kind == "constant":
        return MeanShift(sign=sign, name=name)
    shift = [sign * 255.0 * m for m in DIV2K_RGB_MEAN]
    eye = [[[[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]]]
    return layers.Conv2D(3, 1, kernel_initializer=keras.initializers.Constant(eye),
                         bias_initializer=keras.initializers.Constant(shift),
                         trainable=False, name=name)


def _upsampler(x, scale, channels, act):
    if scale == 3:
        steps = [(3, "up1")]
    else:
        steps = [(2, f"up{i + 1}") for i in range(scale.bit_length() - 1)]
    for r, name in steps:
        x = _conv(channels * r * r, 3, f"{name}_conv")(x)
        x = PixelShuffle(r, name=f"{name}_shuffle")(x)
        if act:
            x = _prelu(f"{name}_act")(x)
    return x


def _sic_stack(x, sic_layers, act, prefix):
    """Factor's SIC layers: depthwise kxk -> 1x1 -> + input -> act, repeated."""
    channels = x.shape[-1]
    for j in range(1, sic_layers + 1):
        y = layers.DepthwiseConv2D(
            3, padding="same", depthwise_initializer=_torch_default(), name=f"{prefix}_sic{j}_dw"
        )(x)
        y = _conv(channels, 1, f"{prefix}_sic{j}_pw")(y)
        x = layers.Add(name=f"{prefix}_sic{j}_add")([y, x])
        x = _act(act, f"{prefix}_sic{j}_act")(x)
    return x


def _basis_initializers(basis_init):
    """(basis, coefficient) initializers of a from-scratch basis conv.

    ``"authors"``: Kaiming-uniform (gain sqrt(2)) for both, as the released code
    (``nn.init.kaiming_uniform_``). With no nonlinearity between basis and coefficients
    the pair starts with 4x the input variance where the plain conv it replaces (PyTorch's
    default init) starts with 1/3, so an EDSR body of basis blocks starts far from the
    identity. ``"matched"``: LeCun-uniform basis (variance-preserving) and PyTorch-default
    coefficients, so the composed filter has exactly the variance of the default-initialised
    conv (1 / (3 * k * k * c)) and the pair the same 1/3 gain.
    """
    if basis_init == "matched":
        return "lecun_uniform", _torch_default()
    return "he_uniform", "he_uniform"


def _make_bases(prefix, num_basis, depth, share, basis_init):
    """Two callables x -> basis responses (+ the authors' per-conv basis bias)."""
    init = _basis_initializers(basis_init)[0]

    def make(name, use_bias):
        return BasisConv2D(num_basis, 3, depth=depth, padding="same", basis_initializer=init,
                           use_bias=use_bias, name=name)

    if share:
        shared = make(f"{prefix}_basis", False)
        return tuple(
            (lambda x, k=k: BasisBias(num_basis, name=f"{prefix}_conv{k}_basis_bias")(shared(x)))
            for k in (1, 2)
        )
    return make(f"{prefix}_conv1_basis", True), make(f"{prefix}_conv2_basis", True)


# ------------------------------------------------------------------------- blocks
def _srresnet_block(x, i, channels, num_basis, depth, share, sic_layers, basis_init, prelu):
    p = f"block{i:02d}"
    skip = x
    if num_basis is not None:
        bases = _make_bases(p, num_basis, depth, share, basis_init)
        for k, basis in enumerate(bases, start=1):  # BN after each: init scale is moot
            x = basis(x)
            x = _bn(f"{p}_conv{k}_basis_bn")(x)
            x = prelu(f"{p}_conv{k}_basis_act")(x)
            x = _conv(channels, 1, f"{p}_conv{k}_coef")(x)
            x = _bn(f"{p}_conv{k}_bn")(x)
            x = prelu(f"{p}_conv{k}_act")(x)
    else:
        for k in (1, 2):
            if sic_layers is None:
                x = _conv(channels, 3, f"{p}_conv{k}")(x)
            else:
                x = _sic_stack(x, sic_layers, "prelu", f"{p}_conv{k}")
            x = _bn(f"{p}_conv{k}_bn")(x)
            if k == 1:
                x = prelu(f"{p}_act")(x)
    return layers.Add(name=f"{p}_add")([x, skip])


def _edsr_block(x, i, channels, res_scale, num_basis, depth, share, sic_layers, basis_init):
    p = f"block{i:02d}"
    skip = x
    bases = None
    if num_basis is not None:
        bases = _make_bases(p, num_basis, depth, share, basis_init)
        coef_init = _basis_initializers(basis_init)[1]
    for k in (1, 2):
        if bases is not None:
            x = bases[k - 1](x)
            x = _conv(channels, 1, f"{p}_conv{k}_coef", initializer=coef_init)(x)
        elif sic_layers is not None:
            x = _sic_stack(x, sic_layers, "relu", f"{p}_conv{k}")
        else:
            x = _conv(channels, 3, f"{p}_conv{k}")(x)
        if k == 1:
            x = layers.ReLU(name=f"{p}_act")(x)
    if res_scale != 1:
        x = layers.Rescaling(res_scale, name=f"{p}_scale")(x)
    return layers.Add(name=f"{p}_add")([x, skip])


# ----------------------------------------------------------------------- builders
def srresnet(
    scale=4,
    *,
    num_blocks=16,
    channels=64,
    num_basis=None,
    basis_depth=None,
    share_basis=False,
    sic_layers=None,
    basis_init="matched",
    shared_prelu=True,
    input_shape=(None, None, 3),
    name=None,
):
    """SRResNet (16 x 64, BN, PReLU, pixel shuffle), optionally compressed.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        num_blocks: residual blocks (16).
        channels: feature channels (64).
        num_basis: ``m``; when given, every block conv becomes a basis conv with
            ``m`` filters of depth ``basis_depth`` followed by BN -> PReLU -> 1x1
            coefficients -> BN -> PReLU (the authors' ``bn_every`` placement).
        basis_depth: ``p``, input channels of one basis filter (default
            ``channels``, i.e. one split); must divide ``channels``.
        share_basis: one basis for the two convs of a block (Basis-S).
        sic_layers: Factor baseline instead: SIC layers per block conv.
        basis_init: from-scratch init of basis convs (see :data:`BASIS_INIT_DOC`).
        shared_prelu: one PReLU (layer ``act``) for the head and all blocks, as the
            authors' ``act = nn.PReLU()`` (default); False: one per site.
        input_shape: ``(H, W, 3)``; ``None`` sizes accept any image.
        name: model name.

    Returns:
        A ``keras.Model`` mapping LR pixels (0-255) to SR pixels (0-255).

    Example:

    >>> srresnet(4, num_basis=14, basis_depth=64)    # Basis-64-14
    """
    builder = "srresnet"
    depth = _check_variant(builder, scale, num_blocks, channels, num_basis, basis_depth,
                           share_basis, sic_layers, basis_init)
    prelu = _site_prelu(_prelu("act") if shared_prelu else None)
    inputs = keras.Input(input_shape, name="lr")
    x = head = prelu("head_act")(_conv(channels, 9, "head_conv")(inputs))
    for i in range(1, num_blocks + 1):
        x = _srresnet_block(x, i, channels, num_basis, depth, share_basis, sic_layers,
                            basis_init, prelu)
    x = _bn("body_bn")(_conv(channels, 3, "body_conv")(x))
    x = layers.Add(name="body_add")([x, head])
    x = _upsampler(x, scale, channels, act=True)
    outputs = _conv(3, 3, "tail_conv")(x)
    return keras.Model(inputs, outputs, name=name or f"srresnet_x{scale}")


def edsr(
    scale=4,
    *,
    num_blocks=32,
    channels=256,
    res_scale=0.1,
    num_basis=None,
    basis_depth=None,
    share_basis=False,
    sic_layers=None,
    basis_init="matched",
    mean_shift="constant",
    input_shape=(None, None, 3),
    name=None,
):
    """EDSR (32 x 256, residual scaling 0.1, DIV2K mean shift), optionally compressed.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        num_blocks: residual blocks (32).
        channels: feature channels (256).
        res_scale: residual scaling (0.1; 1.0 for EDSR-8-128).
        num_basis: ``m``; when given, every block conv becomes a basis conv
            (``m`` filters of depth ``basis_depth``) -> 1x1 coefficients.
        basis_depth: ``p`` (default ``channels``: one split); divides ``channels``.
        share_basis: one basis for the two convs of a block (Basis-S).
        sic_layers: Factor baseline instead: SIC layers per block conv.
        basis_init: from-scratch init of basis convs (see :data:`BASIS_INIT_DOC`).
        mean_shift: ``"constant"`` (default: :class:`MeanShift`, fixed) or ``"conv"``
            (non-trainable 1x1 ``Conv2D`` ``sub_mean``/``add_mean`` initialised to the
            same shift: the authors' ``MeanShift`` is a conv whose weights their
            optimizer may have changed; ``examples.port_authors`` uses it then).
        input_shape: ``(H, W, 3)``; ``None`` sizes accept any image.
        name: model name.

    Returns:
        A ``keras.Model`` mapping LR pixels (0-255) to SR pixels (0-255).

    Example:

    >>> edsr(4, num_basis=32, share_basis=True)      # Table 3 Basis-S
    """
    builder = "edsr"
    depth = _check_variant(builder, scale, num_blocks, channels, num_basis, basis_depth,
                           share_basis, sic_layers, basis_init)
    if isinstance(res_scale, bool) or not isinstance(res_scale, (int, float)) or res_scale <= 0:
        raise ValueError(
            f"Invalid value for argument `res_scale` of {builder}(). Expected a positive "
            f"number. Received res_scale={res_scale!r}."
        )
    if mean_shift not in ("constant", "conv"):
        raise ValueError(
            f"Invalid value for argument `mean_shift` of {builder}(). Expected 'constant' or "
            f"'conv'. Received mean_shift={mean_shift!r}."
        )
    inputs = keras.Input(input_shape, name="lr")
    x = _mean_shift(mean_shift, -1, "sub_mean")(inputs)
    x = head = _conv(channels, 3, "head_conv")(x)
    for i in range(1, num_blocks + 1):
        x = _edsr_block(x, i, channels, float(res_scale), num_basis, depth, share_basis,
                        sic_layers, basis_init)
    x = _conv(channels, 3, "body_conv")(x)
    x = layers.Add(name="body_add")([x, head])
    x = _upsampler(x, scale, channels, act=False)
    x = _conv(3, 3, "tail_conv")(x)
    outputs = _mean_shift(mean_shift, 1, "add_mean")(x)
    return keras.Model(inputs, outputs, name=name or f"edsr_{num_blocks}_{channels}_x{scale}")


def edsr_8_128(scale=4, **kwargs):
    """EDSR-8-128: :func:`edsr` with 8 blocks of 128 channels and ``res_scale=1``.

    Args:
        scale: 2, 3 or 4.
        **kwargs: any other :func:`edsr` argument (``num_basis``, ``sic_layers``...).

    Returns:
        A ``keras.Model``.

    Example:

    >>> edsr_8_128(4, num_basis=27)                  # Basis-128-27
    """
    kwargs = {"num_blocks": 8, "channels": 128, "res_scale": 1.0, **kwargs}
    kwargs.setdefault("name", f"edsr_8_128_x{scale}")
    return edsr(scale, **kwargs)


# ------------------------------------------------------------------------ presets
PRESETS = {
    # Table 2, SRResNet
    "srresnet": (srresnet, {}),
    "srresnet-basis-64-14": (srresnet, {"num_basis": 14, "basis_depth": 64}),
    "srresnet-basis-32-32": (srresnet, {"num_basis": 32, "basis_depth": 32}),
    "srresnet-factor-sic2": (srresnet, {"sic_layers": 2}),
    "srresnet-factor-sic3": (srresnet, {"sic_layers": 3}),
    # Table 2, EDSR-8-128
    "edsr-8-128": (edsr_8_128, {}),
    "edsr-8-128-basis-128-27": (edsr_8_128, {"num_basis": 27, "basis_depth": 128}),
    "edsr-8-128-basis-128-40": (edsr_8_128, {"num_basis": 40, "basis_depth": 128}),
    "edsr-8-128-factor-sic2": (edsr_8_128, {"sic_layers": 2}),
    "edsr-8-128-factor-sic3": (edsr_8_128, {"sic_layers": 3}),
    # Table 3, EDSR
    "edsr": (edsr, {}),
    "edsr-basis": (edsr, {"num_basis": 32, "basis_depth": 256}),
    "edsr-basis-s": (edsr, {"num_basis": 32, "basis_depth": 256, "share_basis": True}),
    "edsr-factor-sic1": (edsr, {"sic_layers": 1}),
}

# Per-residual-block weights (two convs, no biases, no BN/PReLU): the exact counts
# behind the paper's Tables 2 and 3, which print them rounded to thousands
# (PAPER_PRINTED_K). Factor: the authors' SIC layers (depthwise 3x3 + 1x1 each).
PAPER_BLOCK_PARAMS = {
    "srresnet": 73_728,
    "srresnet-basis-64-14": 17_920,
    "srresnet-basis-32-32": 26_624,
    "srresnet-factor-sic2": 18_688,
    "srresnet-factor-sic3": 28_032,
    "edsr-8-128": 294_912,
    "edsr-8-128-basis-128-27": 69_120,
    "edsr-8-128-basis-128-40": 102_400,
    "edsr-8-128-factor-sic2": 70_144,
    "edsr-8-128-factor-sic3": 105_216,
    "edsr": 1_179_648,
    "edsr-basis": 163_840,
    "edsr-basis-s": 90_112,
    "edsr-factor-sic1": 135_680,
}


# The same counts as printed in the paper (thousands, rounded).
PAPER_PRINTED_K = {
    "srresnet": 74, "srresnet-basis-64-14": 18, "srresnet-basis-32-32": 27,
    "srresnet-factor-sic2": 19, "srresnet-factor-sic3": 28,
    "edsr-8-128": 295, "edsr-8-128-basis-128-27": 69, "edsr-8-128-basis-128-40": 102,
    "edsr-8-128-factor-sic2": 70, "edsr-8-128-factor-sic3": 105,
    "edsr": 1180, "edsr-basis": 164, "edsr-basis-s": 90, "edsr-factor-sic1": 136,
}


def build(preset, scale=4, input_shape=(None, None, 3), **overrides):
    """Builds a named configuration of :data:`PRESETS`.

    Args:
        preset: e.g. ``"edsr-8-128-basis-128-40"`` (see ``PRESETS``).
        scale: 2, 3 or 4.
        input_shape: ``(H, W, 3)`` or with ``None`` sizes.
        **overrides: builder arguments replacing the preset's (``num_blocks``,
            ``channels``, ``num_basis``...), e.g. for a smaller CPU-scale network.

    Returns:
        A ``keras.Model``.

    Example:

    >>> build("edsr-basis-s", scale=2)
    """
    if preset not in PRESETS:
        raise ValueError(
            f"Invalid value for argument `preset`. Expected one of {sorted(PRESETS)}. "
            f"Received preset={preset!r}."
        )
    fn, kwargs = PRESETS[preset]
    return fn(scale, input_shape=input_shape, **{**kwargs, **overrides})


# ------------------------------------------------------------------------- counts
def _kernel_weights(layer):
    return [w for w in layer.weights if w.name.split("/")[-1] in _KERNEL_NAMES]


def _size(w):
    n = 1
    for d in w.shape:
        n *= int(d)
    return n


def weight_count(model):
    """Convolution weights of the whole network, biases/BN/PReLU excluded.

    Args:
        model: a built ``keras.Model``.

    Returns:
        int: the sum of the sizes of every ``kernel``, ``depthwise_kernel`` and
        ``basis`` weight (a shared basis counted once), the paper's convention.
    """
    seen, total = set(), 0
    for layer in model.layers:
        for w in _kernel_weights(layer):
            if id(w) not in seen:
                seen.add(id(w))
                total += _size(w)
    return total


def block_weight_counts(model):
    """Per-residual-block convolution weights (no biases), as the paper's tables.

    Layers are assigned to block ``i`` by their name prefix ``block{i:02d}_``; a
    basis shared by the two convs of a block is counted once.

    Args:
        model: a model from this module (or ``keras_basis.compress`` of one, which
            keeps the layer-name prefixes).

    Returns:
        list of ints, one per block in order.
    """
    counts, seen = {}, set()
    for layer in model.layers:
        match = _BLOCK_RE.match(layer.name)
        if not match:
            continue
        for w in _kernel_weights(layer):
            if id(w) not in seen:
                seen.add(id(w))
                key = int(match.group(1))
                counts[key] = counts.get(key, 0) + _size(w)
    return [counts[k] for k in sorted(counts)]


def block_conv_names(model):
    """Names of the two 3x3 convolutions of every residual block of a baseline model.

    Args:
        model: a baseline SRResNet/EDSR built here.

    Returns:
        list of ``[conv1_name, conv2_name]`` pairs, one per block (the layers to give
        ``keras_basis.compress``; each pair is one Basis-S sharing group).
    """
    names = {}
    for layer in model.layers:
        match = re.match(r"^block(\d+)_conv([12])$", layer.name)
        if match and isinstance(layer, layers.Conv2D):
            names.setdefault(int(match.group(1)), [None, None])[int(match.group(2)) - 1] = (
                layer.name
            )
    return [names[k] for k in sorted(names)]
