"""The authors' command-line arguments -> the Keras network that computes their model.

Only the options that change the network are read; their defaults are those of the
authors' ``image_classification/option.py`` and ``super_resolution/option.py`` (commit
dc3cdd5). Options that only concern training (``--epochs``, ``--save``...) are ignored.
"""

from __future__ import annotations

import shlex

__all__ = ["CLASSIFICATION", "SUPER_RESOLUTION", "NetworkSpec", "build", "parse"]

CLASSIFICATION = ("ResNet", "ResNet_Basis", "VGG", "VGG_Basis", "DenseNet", "DenseNet_Basis")
SUPER_RESOLUTION = ("EDSR", "EDSR_Basis", "SRResNet", "SRResNet_Basis")

# option -> (type, default); flags have type bool.
_CLS_OPTIONS = {
    "model": (str, None), "template": (str, ""), "data_train": (str, "CIFAR10"),
    "n_colors": (int, 3), "depth": (int, 100), "k": (int, 12), "reduction": (float, 1.0),
    "bottleneck": (bool, False), "kernel_size": (int, 3), "no_bias": (bool, False),
    "n_group": (int, 1), "k_size1": (int, 3), "k_size2": (int, 3),
    "inverse_index": (bool, False), "transition_group": (int, 6),
    "basis_size1": (int, 16), "basis_size2": (int, 32), "basis_size3": (int, 64),
    "n_basis1": (int, 24), "n_basis2": (int, 48), "n_basis3": (int, 84),
    "vgg_type": (str, "16"), "vgg_decom_type": (str, "all"),
    "basis_size": (int, 128), "n_basis": (int, 128),
}
_SR_OPTIONS = {
    "model": (str, None), "scale": (str, "4"), "rgb_range": (int, 255), "n_colors": (int, 3),
    "n_resblocks": (int, 5), "n_feats": (int, 64), "res_scale": (float, 1.0),
    "bn_every": (bool, False), "basis_size": (int, 64), "n_basis": (int, 16),
    "share_basis": (bool, False),
}


class NetworkSpec:
    """What :func:`parse` found: the authors' model name, task and options.

    Attributes:
        model: the authors' ``--model`` (e.g. ``"ResNet_Basis"``).
        task: ``"classification"`` or ``"super_resolution"``.
        options: dict of the options that define the network (defaults filled in).
    """

    def __init__(self, model, task, options):
        self.model, self.task, self.options = model, task, options

    def __repr__(self):
        return f"NetworkSpec({self.model!r}, {self.task!r})"


def _unsupported(option, value, expected):
    return ValueError(
        f"Invalid value for the authors' argument `--{option}`: the port supports "
        f"{expected}. Received --{option} {value!r}."
    )


def parse(args):
    """Reads the authors' command line (a string or a list of tokens).

    Args:
        args: e.g. ``"--template ResNet --model ResNet_Basis --depth 56 --k_size2 1"``.

    Returns:
        NetworkSpec.

    Raises:
        ValueError: no ``--model``, an unknown model, or a bad option value.

    Example:

    >>> parse("--model EDSR --n_resblocks 8 --n_feats 128 --scale 4").model
    'EDSR'
    """
    tokens = shlex.split(args) if isinstance(args, str) else [str(t) for t in args]
    given = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            i += 1
            continue
        name = tok[2:].split("=", 1)[0]
        if "=" in tok:
            given[name], i = tok.split("=", 1)[1], i + 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            given[name], i = tokens[i + 1], i + 2
        else:
            given[name], i = True, i + 1
    model = given.get("model")
    if model is None or model is True:
        raise ValueError(
            "The authors' arguments need `--model` (one of "
            f"{sorted(CLASSIFICATION + SUPER_RESOLUTION)}). Received args={args!r}."
        )
    if model in CLASSIFICATION:
        table, task = _CLS_OPTIONS, "classification"
    elif model in SUPER_RESOLUTION:
        table, task = _SR_OPTIONS, "super_resolution"
    else:
        raise ValueError(
            "Unknown network in the authors' argument `--model`. Expected one of "
            f"{sorted(CLASSIFICATION + SUPER_RESOLUTION)}. Received --model {model!r}."
        )
    options = {}
    for name, (kind, default) in table.items():
        value = given.get(name, default)
        if kind is bool:
            options[name] = bool(value)
            continue
        if value is True:
            raise ValueError(
                f"The authors' argument `--{name}` needs a value. Received args={args!r}."
            )
        try:
            options[name] = None if value is None else kind(value)
        except ValueError:
            raise ValueError(
                f"Invalid value for the authors' argument `--{name}`. Expected a "
                f"{kind.__name__}. Received --{name} {value!r}."
            ) from None
    return NetworkSpec(model, task, options)


def _check_common(spec):
    o = spec.options
    if o["n_colors"] != 3:
        raise _unsupported("n_colors", o["n_colors"], "3")
    if spec.task == "classification":
        if not o["data_train"].startswith("CIFAR"):
            raise _unsupported("data_train", o["data_train"], "CIFAR10 / CIFAR100")
        if o["kernel_size"] != 3:
            raise _unsupported("kernel_size", o["kernel_size"], "3")


def build(spec, input_shape=None, mean_shift="constant"):
    """Builds our Keras model that computes the network of ``spec``.

    Args:
        spec: a :class:`NetworkSpec` (or the authors' argument string).
        input_shape: ``(H, W, 3)``; default ``(32, 32, 3)`` for CIFAR networks and
            ``(None, None, 3)`` (any size) for super-resolution.
        mean_shift: EDSR's mean shift, ``"constant"`` or ``"conv"`` (see
            ``examples.div2k.models.edsr``).

    Returns:
        ``(keras.Model, info)`` with ``info`` a dict of what the mapping needs
        (``network``, ``scale``, ``num_blocks``...).
    """
    if isinstance(spec, (str, list, tuple)):
        spec = parse(spec)
    _check_common(spec)
    o, m = spec.options, spec.model
    if spec.task == "classification":
        from examples.cifar10 import densenet, resnet, vgg

        classes = int(o["data_train"][5:])
        shape = input_shape or (32, 32, 3)
        kw = {"num_classes": classes, "input_shape": shape}
        if m in ("ResNet", "ResNet_Basis"):
            depth = o["depth"]
            if depth < 8 or (depth - 2) % 6:
                raise _unsupported("depth", depth, "the CIFAR ResNets 6n + 2 (20, 56...)")
            if m == "ResNet":
                return resnet.resnet(depth, "baseline", **kw), {"network": m, "depth": depth}
            if o["k_size2"] != 1:
                raise _unsupported("k_size2", o["k_size2"], "1 (1x1 coefficients, the "
                                   "authors' ResNet_Basis script)")
            widths = (16, 32, 64)
            sizes = (o["basis_size1"], o["basis_size2"], o["basis_size3"])
            for i, (w, p) in enumerate(zip(widths, sizes)):
                if w % p:
                    raise _unsupported(f"basis_size{i + 1}", p, f"a divisor of {w}")
            model = resnet.resnet(
                depth, "basis", share="stage",
                num_basis=(o["n_basis1"], o["n_basis2"], o["n_basis3"]),
                splits=tuple(w // p for w, p in zip(widths, sizes)), **kw)
            return model, {"network": m, "depth": depth}
        if m in ("VGG", "VGG_Basis"):
            if o["vgg_type"] != "16":
                raise _unsupported("vgg_type", o["vgg_type"], "'16'")
            if o["no_bias"]:
                raise _unsupported("no_bias", True, "biases (no --no_bias)")
            if m == "VGG":
                return vgg.vgg16("baseline", bn=False, **kw), {"network": m}
            if o["vgg_decom_type"] != "all":
                raise _unsupported("vgg_decom_type", o["vgg_decom_type"], "'all'")
            model = vgg.vgg16("basis", num_basis=o["n_basis"], basis_depth=o["basis_size"],
                              keep_first=3, **kw)
            return model, {"network": m}
        # DenseNet, DenseNet_Basis
        if o["bottleneck"] or o["reduction"] != 1:
            raise _unsupported("bottleneck", o["bottleneck"], "DenseNet without bottleneck "
                               "or reduction (--template DenseNet)")
        depth = o["depth"]
        if (depth - 4) % 3:
            raise _unsupported("depth", depth, "3n + 4 (40)")
        if m == "DenseNet":
            return (densenet.densenet(depth, o["k"], "baseline", **kw),
                    {"network": m, "layers": (depth - 4) // 3})
        for opt, ok in (("n_group", 1), ("k_size1", 3), ("inverse_index", False)):
            if o[opt] != ok:
                raise _unsupported(opt, o[opt], repr(ok))
        if o["transition_group"] < 2:
            raise _unsupported("transition_group", o["transition_group"],
                               "T >= 2 (our T = 1 transition is one conv, theirs two)")
        model = densenet.densenet(
            depth, o["k"], "basis", config=f"M{o['n_basis']}T{o['transition_group']}",
            coef_kernel=o["k_size2"], **kw)
        return model, {"network": m, "layers": (depth - 4) // 3}

    from examples.div2k import models as sr

    if o["rgb_range"] != 255:
        raise _unsupported("rgb_range", o["rgb_range"], "255")
    try:
        scale = int(o["scale"])
    except ValueError:
        raise _unsupported("scale", o["scale"], "one scale, 2, 3 or 4") from None
    shape = input_shape or (None, None, 3)
    kw = {"num_blocks": o["n_resblocks"], "channels": o["n_feats"], "input_shape": shape}
    basis = m.endswith("_Basis")
    if basis:
        kw.update(num_basis=o["n_basis"], basis_depth=o["basis_size"],
                  share_basis=o["share_basis"])
    info = {"network": m, "scale": scale, "num_blocks": o["n_resblocks"],
            "share": basis and o["share_basis"]}
    if m.startswith("SRResNet"):
        if basis and not o["bn_every"]:
            raise _unsupported("bn_every", False, "--bn_every (the paper's SRResNet basis)")
        return sr.srresnet(scale, shared_prelu=True, **kw), info
    if basis and o["bn_every"]:
        raise _unsupported("bn_every", True, "EDSR_Basis without --bn_every")
    return sr.edsr(scale, res_scale=o["res_scale"], mean_shift=mean_shift, **kw), info
