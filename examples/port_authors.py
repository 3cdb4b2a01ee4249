"""Port a checkpoint of the authors' PyTorch code to a Keras model (then TFLite).

Reads a state_dict of one of the networks of ofsoundof/learning_filter_basis (ResNet-20/56
and ResNet_Basis, VGG-16 and VGG_Basis, DenseNet-12-40 and DenseNet_Basis, SRResNet /
EDSR / EDSR-8-128 and their basis versions) as saved by their code, recognises the
network from the authors' command-line arguments, builds our Keras model (the builders
of ``examples/cifar10`` and ``examples/div2k``, which compute the authors' functions),
maps every weight and writes a ``.keras`` file atomically::

    python -m examples.port_authors model_best.pt resnet56_basis.keras \\
        --args "--template ResNet --model ResNet_Basis --depth 56 --k_size2 1" \\
        --tflite resnet56_basis.tflite

``--tflite`` writes the float32 TFLite file too (``keras_basis.export_tflite``; SR
networks at ``--input-shape``, default 96,96). ``keras-basis export`` on the ``.keras``
file needs the examples' custom layers (``PixelShuffle``, ``MeanShift``)
registered, i.e. ``import examples.cifar10.models, examples.div2k.models`` first, which
the CLI does not do.

Inputs: a ``.pt`` file (``torch.save`` of a state_dict, or of a dict holding one under
``state_dict``/``model``; needs ``torch``, an optional extra, imported only then), or an
``.npz`` of the state_dict (each key an array; optional ``args`` string). The network's
arguments come from ``--args`` or, when absent, from the file's ``args``.

Our models keep NHWC and the batch axis: the authors' classifiers squeeze the pooled
features (``x.squeeze()``), so at batch 1 they return logits of shape ``(10,)``; ours
return ``(1, 10)`` for every batch size (compare ``ours.reshape(theirs.shape)``).

``--check-fixtures DIR`` ports every ``.npz`` of ``DIR`` (the authors' networks with
their inputs and outputs, e.g. ``../shared/authors-fixtures``) and prints the maximum
relative error of the Keras and of the float32 TFLite outputs.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from examples.authors import args as authors_args  # noqa: E402
from examples.authors import mapping  # noqa: E402

__all__ = ["check_fixture", "load_state", "main", "namespace_to_args", "port", "relative_error"]

FIXTURE_KEYS = ("input", "output", "args", "model_class")
_MEAN_SHIFT = {"sub_mean": -1, "add_mean": 1}


def _torch_state(path, trust_pickle):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading the PyTorch checkpoint {str(path)!r} needs `torch` (an optional "
            "extra: `pip install torch`), or convert it to .npz first: "
            "numpy.savez(out, **{k: v.numpy() for k, v in state_dict.items()})."
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:  # torch raises UnpicklingError and others
        if trust_pickle:
            raise
        raise ValueError(
            f"{str(path)!r} holds more than tensors (e.g. the authors' argparse args), which "
            "torch only loads with full unpickling: pass `--trust-pickle` (trust_pickle=True) "
            f"for a file you trust. Received: {str(err).splitlines()[0][:200]}"
        ) from None
    args = None
    if isinstance(obj, dict) and not any(hasattr(v, "numpy") for v in obj.values()):
        args = obj.get("args")
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    state = {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "numpy")}
    return state, args


def namespace_to_args(options):
    """The authors' parsed ``args`` (an argparse Namespace or a dict) as a command line."""
    import shlex

    if not isinstance(options, dict):
        options = vars(options)
    tokens = []
    for key, value in options.items():
        if value is False or value is None:
            continue
        tokens.append(f"--{key}")
        if value is not True:
            value = "+".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            tokens.append(shlex.quote(str(value)))
    return " ".join(tokens)


def load_state(path, trust_pickle=False):
    """Reads a state_dict from ``.pt`` or ``.npz``.

    Args:
        path: the checkpoint.
        trust_pickle: ``.pt`` only: allow full unpickling (``torch.load(...,
            weights_only=False)``), needed when the file stores more than tensors.

    Returns:
        ``(state, args, extras)``: dict key -> float array (``num_batches_tracked``
        dropped; module prefixes ``module.`` of DataParallel and ``model.`` of the
        authors' wrapper removed), the stored arguments or None, and the fixture
        entries (``input``, ``output``, ``model_class``) when present.
    """
    path = pathlib.Path(path)
    extras = {}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
        for key in FIXTURE_KEYS:
            if key in state:
                extras[key] = state.pop(key)
        args = extras.pop("args", None)
        args = None if args is None else str(args)
    elif path.suffix in (".pt", ".pth"):
        state, args = _torch_state(path, trust_pickle)
    else:
        raise ValueError(
            "Invalid value for argument `checkpoint`. Expected a .pt/.pth or .npz file. "
            f"Received checkpoint={str(path)!r}."
        )
    if args is not None and not isinstance(args, str):
        args = namespace_to_args(args)
    clean = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        clean[key] = np.asarray(value, dtype=np.float32)
    return clean, args, extras


def _mean_shift_kind(spec, state):
    """``"constant"`` when EDSR's MeanShift convs hold their constructed values."""
    if spec.task != "super_resolution" or not spec.model.startswith("EDSR"):
        return "constant"
    from examples.div2k.models import DIV2K_RGB_MEAN

    for name, sign in _MEAN_SHIFT.items():
        w, b = state.get(f"{name}.weight"), state.get(f"{name}.bias")
        if w is None or b is None or w.shape != (3, 3, 1, 1) or b.shape != (3,):
            return "conv"  # the mapping reports the missing key or the bad shape
        shift = np.float32(sign * 255) * np.asarray(DIV2K_RGB_MEAN, np.float32)
        if not (np.array_equal(w.reshape(3, 3), np.eye(3, dtype=np.float32))
                and np.allclose(b, shift, rtol=1e-6, atol=1e-4)):
            return "conv"
    return "constant"


def port(state, args, input_shape=None):
    """Builds our Keras model of the authors' network and loads ``state`` into it.

    Args:
        state: dict PyTorch key -> array (see :func:`load_state`).
        args: the authors' command-line arguments (string or list).
        input_shape: ``(H, W, 3)``; default 32x32 for CIFAR, any size for SR.

    Returns:
        keras.Model.

    Raises:
        ValueError: unknown network or unsupported argument, missing key, unexpected
            key, shape mismatch, or shared tensors whose copies differ.

    Example:

    >>> state, args, _ = load_state("resnet56_basis.npz")
    >>> model = port(state, args)
    """
    if args is None:
        raise ValueError(
            "The network is unknown: pass the authors' arguments (`--args`), e.g. "
            "'--model ResNet_Basis --depth 56 --k_size2 1'. Received args=None."
        )
    spec = authors_args.parse(args)
    model, info = authors_args.build(spec, input_shape, _mean_shift_kind(spec, state))
    net = spec.model
    entries, aliases = mapping.entries(info)
    used = set()

    def get(key, layer):
        if key not in state:
            raise ValueError(
                f"Missing key {key!r} in the state_dict of {net} (needed by layer "
                f"'{layer}'). Received {len(state)} keys, e.g. {sorted(state)[:3]}."
            )
        used.add(key)
        return state[key]

    for layer_name, kind, keys in entries:
        layer = model.get_layer(layer_name)
        arrays = [get(k, layer_name) for k in keys]
        if kind == "meanshift" and not layer.weights:
            continue  # constant MeanShift: checked equal to the constants
        values = mapping.to_keras("conv" if kind == "meanshift" else kind, arrays)
        targets = layer.get_weights()
        if len(values) != len(targets):
            raise ValueError(
                f"Layer '{layer_name}' of {net} has {len(targets)} weights; the keys "
                f"{keys} give {len(values)}."
            )
        for key, value, target in zip(keys, values, targets):
            if value.shape != target.shape:
                raise ValueError(
                    f"Shape mismatch for key {key!r} of {net} (layer '{layer_name}'). "
                    f"Expected {mapping.torch_shape(kind, target.shape)}. Received "
                    f"{state[key].shape}."
                )
        layer.set_weights(values)
    for alias, key in aliases:
        a, b = get(alias, f"shared with {key}"), get(key, f"shared with {alias}")
        if a.shape != b.shape or not np.array_equal(a, b):
            raise ValueError(
                f"Key {alias!r} of {net} must hold the tensor shared with {key!r} (one "
                f"parameter in the authors' model). Expected equal arrays. Received "
                f"shapes {a.shape} and {b.shape}, max diff "
                f"{np.abs(a - b).max() if a.shape == b.shape else 'n/a'}."
            )
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(
            f"Unexpected key(s) in the state_dict of {net}: {extra[:5]}"
            f"{' ...' if len(extra) > 5 else ''} ({len(extra)} in all). Expected only the "
            f"keys of the network built from args={args!r}."
        )
    return model


def relative_error(ours, theirs):
    """``max |ours - theirs| / max |theirs|`` (ours reshaped to theirs: batch-1 squeeze)."""
    ours = np.asarray(ours, np.float64).reshape(np.shape(theirs))
    theirs = np.asarray(theirs, np.float64)
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def _nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _nchw(y):
    return y if y.ndim == 2 else np.transpose(y, (0, 3, 1, 2))


def check_fixture(path, tflite=True, workdir=None):
    """Ports one fixture ``.npz`` and compares with its stored output.

    Args:
        path: a fixture (state_dict + ``input``, ``output``, ``args``).
        tflite: also export float32 TFLite and compare its output.
        workdir: folder for the ``.tflite`` file (default: a temporary folder).

    Returns:
        dict with ``network``, ``keras`` and ``tflite`` (max relative errors; tflite
        None when skipped) and ``scale`` (max |output|).
    """
    import keras

    state, args, extras = load_state(path)
    x, theirs = extras["input"], extras["output"]
    model = port(state, args)
    ours = keras.ops.convert_to_numpy(model(_nhwc(x), training=False))
    result = {"network": pathlib.Path(path).stem, "model": authors_args.parse(args).model,
              "keras": relative_error(_nchw(ours), theirs), "tflite": None,
              "scale": float(np.abs(theirs).max())}
    if tflite:
        import keras_basis
        from keras_basis.tflite import run_tflite

        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            file = keras_basis.export_tflite(model, pathlib.Path(tmp) / "m.tflite",
                                             input_shape=x.shape[2:] + x.shape[1:2])
            lite = run_tflite(file, _nhwc(x))
        result["tflite"] = relative_error(_nchw(np.asarray(lite)), theirs)
    return result


def _table(folder, tflite):
    files = sorted(pathlib.Path(folder).glob("*.npz"))
    if not files:
        raise ValueError(
            f"Invalid value for `--check-fixtures`. Expected a folder with .npz fixtures. "
            f"Received {str(folder)!r} (no .npz files)."
        )
    print(f"{'fixture':<30} {'authors model':<16} {'max|out|':>9} {'Keras rel':>10} "
          f"{'TFLite rel':>10}")
    rows = []
    for f in files:
        r = check_fixture(f, tflite=tflite)
        lite = "-" if r["tflite"] is None else f"{r['tflite']:.1e}"
        print(f"{r['network']:<30} {r['model']:<16} {r['scale']:>9.3g} {r['keras']:>10.1e} "
              f"{lite:>10}", flush=True)
        rows.append(r)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m examples.port_authors", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="the authors' .pt or .npz state_dict")
    parser.add_argument("output", nargs="?", help="the .keras file to write")
    parser.add_argument("--args", dest="authors_args", default=None,
                        help="the authors' command-line arguments (default: the file's)")
    parser.add_argument("--input-shape", default=None,
                        help="H,W of the model input (default 32,32 for CIFAR, any for SR)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help=".pt files holding more than tensors: full unpickling (trusted "
                             "files only)")
    parser.add_argument("--tflite", default=None,
                        help="also write this float32 .tflite file")
    parser.add_argument("--check-fixtures", metavar="DIR", default=None,
                        help="port every .npz fixture of DIR and print the parity table")
    parser.add_argument("--no-tflite", action="store_true",
                        help="with --check-fixtures: Keras only")
    opts = parser.parse_args(argv)
    if opts.check_fixtures:
        return _table(opts.check_fixtures, not opts.no_tflite)
    if not opts.checkpoint or not opts.output:
        parser.error("CHECKPOINT and OUTPUT are required (or --check-fixtures DIR)")
    if not opts.output.endswith(".keras"):
        parser.error(f"OUTPUT must end with .keras. Received {opts.output!r}")
    shape = None
    if opts.input_shape:
        h, w = (int(v) for v in opts.input_shape.split(","))
        shape = (h, w, 3)
    state, stored, _ = load_state(opts.checkpoint, trust_pickle=opts.trust_pickle)
    model = port(state, opts.authors_args or stored, shape)
    from keras_basis.fileio import atomic_write

    atomic_write(opts.output, model.save)
    print(f"wrote {opts.output} ({model.count_params():,} weights)")
    if opts.tflite:
        import keras_basis

        size = shape or (model.input_shape[1] or 96, model.input_shape[2] or 96, 3)
        keras_basis.export_tflite(model, opts.tflite, input_shape=size)
        print(f"wrote {opts.tflite} (float32, input {size})")
    return model


if __name__ == "__main__":
    main()
