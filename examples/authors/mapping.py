"""The authors' state_dict keys -> the weights of our Keras layers.

Each network gives a list of ``(layer_name, kind, keys)`` entries and a list of
``(alias_key, key)`` pairs: a tensor shared by several modules (ResNet-56 stage bases,
DenseNet's network-wide basis, SRResNet's one PReLU) is stored in the state_dict under
every key where it is registered; it is loaded once and its aliases must be equal.

Layouts: conv weights and bases ``(out, in, kh, kw)`` -> ``(kh, kw, in, out)``; linear
``(out, in)`` -> ``(in, out)``; BatchNorm ``weight, bias, running_mean, running_var`` ->
``gamma, beta, moving_mean, moving_variance``; PReLU ``(1,)`` -> ``(1, 1, 1)``. The
split-major order of the basis responses (``torch.cat`` of the splits, channel
``g * m + j``) is ours too, so coefficient convs only transpose. The conv before a
``PixelShuffle(r)`` has its output channels permuted: PyTorch reads channel
``c*r*r + i*r + j`` for output pixel ``(i, j)`` of channel ``c``, TF's ``depth_to_space``
reads ``(i*r + j)*C + c``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["entries", "shuffle_permutation", "to_keras", "torch_shape"]


def _conv(layer, prefix, bias=True):
    return (layer, "conv", [f"{prefix}.weight"] + ([f"{prefix}.bias"] if bias else []))


def _bn(layer, prefix):
    return (layer, "bn", [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean",
                                                   "running_var")])


def _resnet(info):
    basis = info["network"] == "ResNet_Basis"
    n = (info["depth"] - 2) // 6
    out = [_conv("conv1", "features.0.0"), _bn("conv1_bn", "features.0.1")]
    aliases = []
    if basis:
        out += [(f"stage{s}_basis", "basis", [f"basis{s}"]) for s in (1, 2, 3)]
    for s in (1, 2, 3):
        for b in range(n):
            pre, key = f"stage{s}_block{b + 1}", f"features.{s}.{b}.body"
            for k, idx in ((1, 0), (2, 3)):
                name = f"{pre}_conv{k}"
                if basis:
                    used = s - 1 if (k == 1 and b == 0 and s > 1) else s
                    aliases.append((f"{key}.{idx}.conv.0.basis_weight", f"basis{used}"))
                    out.append((f"{name}_basis_bias", "bias", [f"{key}.{idx}.conv.0.basis_bias"]))
                    out.append(_conv(f"{name}_coef", f"{key}.{idx}.conv.1"))
                else:
                    out.append(_conv(name, f"{key}.{idx}", bias=False))
                out.append(_bn(f"{pre}_bn{k}", f"{key}.{idx + 1}"))
    out.append(("fc", "dense", ["classifier.weight", "classifier.bias"]))
    return out, aliases


def _vgg(info):
    from examples.cifar10.vgg import VGG16_CONFIG

    basis = info["network"] == "VGG_Basis"
    out = []
    block, pos, index = 1, 1, 0
    for i, v in enumerate(VGG16_CONFIG):
        if v == "M":
            block, pos = block + 1, 1
            continue
        index += 1
        name, key = f"block{block}_conv{pos}", f"features.{i}"
        pos += 1
        if not basis:
            out.append(_conv(name, f"{key}.0"))
        elif index <= 3:
            out += [_conv(name, f"{key}.0"), _bn(f"{name}_bn", f"{key}.1")]
        else:
            out += [(f"{name}_basis", "basis", [f"{key}.conv.0.weight", f"{key}.conv.0.bias"]),
                    _bn(f"{name}_basis_bn", f"{key}.conv.1"),
                    _conv(f"{name}_coef", f"{key}.conv.3"), _bn(f"{name}_bn", f"{key}.conv.4")]
    out.append(("fc", "dense", ["classifier.weight", "classifier.bias"]))
    return out, []


def _densenet(info):
    basis = info["network"] == "DenseNet_Basis"
    out = [_conv("conv1", "features.0", bias=False)]
    aliases = []
    if basis:
        out.append(("shared_basis", "basis", ["basis"]))
    for b in range(3):
        for i in range(info["layers"]):
            pre, key = f"block{b + 1}_layer{i + 1}", f"features.{2 * b + 1}.{i}.body.0"
            if basis:
                aliases.append((f"{key}.conv.2.basis", "basis"))
                out += [_bn(f"{pre}_bn", f"{key}.conv.0"),
                        (f"{pre}_basis_bias", "bias", [f"{key}.conv.2.basis_bias"]),
                        _bn(f"{pre}_basis_bn", f"{key}.conv.3"),
                        _conv(f"{pre}_coef", f"{key}.conv.5")]
            else:
                key = f"features.{2 * b + 1}.{i}.body"
                out += [_bn(f"{pre}_bn", f"{key}.0"), _conv(f"{pre}_conv", f"{key}.2", False)]
        if b < 2:
            pre, key = f"transition{b + 1}", f"features.{2 * b + 2}"
            if basis:
                out += [_bn(f"{pre}_bn", f"{key}.module.0"),
                        (f"{pre}_basis", "basis", [f"{key}.module.2.weight"]),
                        _conv(f"{pre}_coef", f"{key}.module.3", bias=False)]
            else:
                out += [_bn(f"{pre}_bn", f"{key}.0"), _conv(f"{pre}_conv", f"{key}.2", False)]
    out += [_bn("final_bn", "features.6"),
            ("fc", "dense", ["classifier.weight", "classifier.bias"])]
    return out, aliases


def _upsampler(scale, act):
    r = 3 if scale == 3 else 2
    steps = 1 if scale in (2, 3) else 2
    out = []
    for k in range(steps):
        base = k * (3 if act else 2)
        out.append((f"up{k + 1}_conv", f"shuffle{r}", [f"tail.0.{base}.weight",
                                                       f"tail.0.{base}.bias"]))
        if act:
            out.append((f"up{k + 1}_act", "prelu", [f"tail.0.{base + 2}.weight"]))
    return out


def _sr_basis(p, k, key, share):
    """Entries of one basis conv ``key`` (basis + bias) of block prefix ``p``."""
    if share:
        return [(f"{p}_conv{k}_basis_bias", "bias", [f"{key}basis_bias"])]
    return [(f"{p}_conv{k}_basis", "basis", [f"{key}basis_weight", f"{key}basis_bias"])]


def _srresnet(info):
    basis = info["network"] == "SRResNet_Basis"
    n, share = info["num_blocks"], info["share"]
    out = [_conv("head_conv", "head.0"), ("act", "prelu", ["head.1.weight"])]
    aliases = []
    for i in range(n):
        p = f"block{i + 1:02d}"
        for k in (1, 2):
            if basis:
                key = f"body.{i}.body.{k - 1}.conv."
                if share and k == 1:
                    out.append((f"{p}_basis", "basis", [f"{key}0.basis_weight"]))
                if share and k == 2:
                    aliases.append((f"{key}0.basis_weight", f"body.{i}.body.0.conv.0.basis_weight"))
                out += _sr_basis(p, k, f"{key}0.", share)
                out += [_bn(f"{p}_conv{k}_basis_bn", f"{key}1"),
                        _conv(f"{p}_conv{k}_coef", f"{key}3"), _bn(f"{p}_conv{k}_bn", f"{key}4")]
                aliases += [(f"{key}{j}.weight", "head.1.weight") for j in (2, 5)]
            else:
                idx = 0 if k == 1 else 3
                out += [_conv(f"{p}_conv{k}", f"body.{i}.body.{idx}"),
                        _bn(f"{p}_conv{k}_bn", f"body.{i}.body.{idx + 1}")]
                if k == 1:
                    aliases.append((f"body.{i}.body.2.weight", "head.1.weight"))
    out += [_conv("body_conv", f"body.{n}"), _bn("body_bn", f"body.{n + 1}")]
    out += _upsampler(info["scale"], act=True) + [_conv("tail_conv", "tail.1")]
    return out, aliases


def _edsr(info):
    basis = info["network"] == "EDSR_Basis"
    n, share = info["num_blocks"], info["share"]
    out = [("sub_mean", "meanshift", ["sub_mean.weight", "sub_mean.bias"]),
           _conv("head_conv", "head.0")]
    aliases = []
    for i in range(n):
        p = f"block{i + 1:02d}"
        for k, idx in ((1, 0), (2, 2)):
            key = f"body.{i}.body.{idx}"
            if not basis:
                out.append(_conv(f"{p}_conv{k}", key))
                continue
            if share and k == 1:
                out.append((f"{p}_basis", "basis", [f"{key}.basis_weight"]))
            if share and k == 2:
                aliases.append((f"{key}.basis_weight", f"body.{i}.body.0.basis_weight"))
            out += _sr_basis(p, k, f"{key}.", share)
            out.append((f"{p}_conv{k}_coef", "conv", [f"{key}.proj_weight", f"{key}.proj_bias"]))
    out.append(_conv("body_conv", f"body.{n}"))
    out += _upsampler(info["scale"], act=False) + [_conv("tail_conv", "tail.1")]
    out.append(("add_mean", "meanshift", ["add_mean.weight", "add_mean.bias"]))
    return out, aliases


def entries(info):
    """``(entries, aliases)`` of the network described by ``info`` (from ``args.build``)."""
    network = info["network"]
    if network.startswith("ResNet"):
        return _resnet(info)
    if network.startswith("VGG"):
        return _vgg(info)
    if network.startswith("DenseNet"):
        return _densenet(info)
    if network.startswith("SRResNet"):
        return _srresnet(info)
    return _edsr(info)


def shuffle_permutation(n, r):
    """Keras output channel t holds PyTorch channel perm[t] (PixelShuffle vs depth_to_space)."""
    c = n // (r * r)
    perm = np.empty(n, dtype=np.int64)
    for i in range(r):
        for j in range(r):
            for ch in range(c):
                perm[(i * r + j) * c + ch] = ch * r * r + i * r + j
    return perm


def to_keras(kind, arrays):
    """The PyTorch tensors of one entry in the layout of the Keras layer's weights."""
    if kind in ("conv", "basis", "meanshift") or kind.startswith("shuffle"):
        w = np.transpose(arrays[0], (2, 3, 1, 0))
        rest = list(arrays[1:])
        if kind.startswith("shuffle"):
            perm = shuffle_permutation(w.shape[-1], int(kind[len("shuffle"):]))
            w = w[..., perm]
            rest = [b[perm] for b in rest]
        return [w] + rest
    if kind == "dense":
        return [arrays[0].T, arrays[1]]
    if kind == "prelu":
        return [arrays[0].reshape(1, 1, 1)]
    return list(arrays)  # bn, bias


def torch_shape(kind, keras_shape):
    """The PyTorch shape that ``to_keras`` maps to ``keras_shape`` (for error messages)."""
    if len(keras_shape) == 4:
        kh, kw, i, o = keras_shape
        return (o, i, kh, kw)
    if kind == "dense" and len(keras_shape) == 2:
        return tuple(reversed(keras_shape))
    if kind == "prelu":
        return (1,)
    return tuple(keras_shape)
