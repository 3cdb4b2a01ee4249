"""Why ``objective="macs"`` misses "latency <= 1.25 x MACs" at small ratios: a split.

For each (network, ratio): the original, ``keras_basis.compress(original,
ratio=r, objective="macs")`` and the original's **skeleton** (every
compressible ``Conv2D`` replaced by what its output costs without arithmetic:
slices, reshapes and a zero pad to its output size and channels; the
BatchNorm and ReLU layers, which TFLite folds or fuses into convolutions, made
identities) exported as float32 and int8 TFLite
(batch 1, ``export_tflite`` defaults) and timed whole in the same interleaved
rounds (``keras_basis.latency.time_interleaved``). The skeleton's latency is
what no budget on the convolutions can remove: additions, pooling, depthwise
convolutions, the classifier, pixel shuffles, PReLUs, the convolutions'
output writes and the invocation's fixed cost (an estimate: its slices and
pads cost a little more than nothing). So

* ``rest share`` = skeleton / original;
* ``convs latency x`` = (compressed - skeleton) / (original - skeleton): how
  the convolutions' own time shrank, against ``conv MACs x``, how their MACs
  did (basis pairs with small ``m`` run above their MACs share);
* ``floor x`` = rest share + (1 - rest share) x conv MACs x: the latency ratio
  if the convolutions' time shrank exactly with their MACs. Where the floor
  exceeds 1.25 x the MACs ratio, no choice of pairs meets the target on this
  machine.

    python benchmarks/macs_gap.py                        # the rows the frontier missed
    python benchmarks/macs_gap.py --rows demo:0.25 vgg16:0.5 --threads 1
    python benchmarks/macs_gap.py --report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import keras_basis  # noqa: E402
from benchmarks.latency_frontier import (  # noqa: E402
    NETS, build, calibration_data, export, randomize_bn)
from keras_basis import fileio, latency  # noqa: E402
from keras_basis.cli.options import ratio as ratio_type  # noqa: E402

# the rows of the latency frontier (RESULTS.md) where "macs" missed 1.25 x MACs
MISSED = ("demo:0.25", "resnet20:0.5", "resnet56:0.5", "vgg16:0.5", "vgg16:0.25",
          "srresnet:0.25", "edsr:0.25", "mobilenetv2:0.5", "resnet50:0.25")
FORMATS = ("float32", "int8")


def _row_arg(text):
    net, _, value = text.partition(":")
    if net not in NETS:
        raise argparse.ArgumentTypeError(f"{text!r}: NET must be one of {NETS}")
    return net, ratio_type(value)


FUSED = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation)


class Skeleton(keras.layers.Layer):
    """A Conv2D's output shape without its arithmetic: stride-1 slices, reshapes and a
    zero pad only (ops XNNPACK runs in float32 and int8)."""

    def __init__(self, conv_config, **kwargs):
        super().__init__(**kwargs)
        self.conv_config = dict(conv_config)
        self.conv = keras.layers.Conv2D.from_config(self.conv_config)  # shapes only

    def get_config(self):
        return {**super().get_config(), "conv_config": self.conv_config}

    def call(self, x):
        _, h, w, n = self.conv.compute_output_shape(tuple(x.shape))
        sh, sw = self.conv.strides
        big_h, big_w = x.shape[1], x.shape[2]
        if (h * sh, w * sw) != (big_h, big_w):
            pad_h, pad_w = max(h * sh - big_h, 0), max(w * sw - big_w, 0)
            if pad_h or pad_w:
                x = keras.ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
            x = x[:, : h * sh, : w * sw, :]
        if (sh, sw) != (1, 1):  # every sh-th row and sw-th column
            c = x.shape[-1]
            x = keras.ops.reshape(x, (-1, h, sh, w, sw * c))[:, :, 0, :, :c]
        c = x.shape[-1]
        return x[..., :n] if n <= c else keras.ops.pad(
            x, [[0, 0], [0, 0], [0, 0], [0, n - c]])

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)


class Passthrough(keras.layers.Layer):
    """An identity that takes the arguments of the layer it replaces."""

    def call(self, x, **kwargs):
        return x


def skeleton(model):
    """``model`` with every compressible Conv2D replaced by a :class:`Skeleton`, and
    the BatchNorm and ReLU layers (which TFLite folds or fuses into the convolutions)
    by identities: what stays is what no budget on the convolutions removes."""
    def swap(layer):
        if (type(layer) is keras.layers.Conv2D and layer.groups == 1
                and layer.data_format == "channels_last"):
            return Skeleton(layer.get_config(), name=layer.name)
        if isinstance(layer, FUSED):
            return Passthrough(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    bare = keras.models.clone_model(model, clone_function=swap)
    for old, new in zip(model.layers, bare.layers):  # the rest's weights (Dense head, PReLU)
        if new.weights and old.weights:
            new.set_weights(old.get_weights())
    return bare


def conv_macs(model):
    """MACs of the compressible convolutions and basis pairs of ``model``."""
    return sum(s.geometry.macs(s.form) for s in latency.layer_geometries(model))


def measure_row(net, ratio, args, log):
    original, _, shape, sr = build(net, args.sr_size)
    randomize_bn(original)
    small = keras_basis.compress(original, ratio=ratio, objective="macs", verbose=0)
    bare = skeleton(original)
    data = calibration_data(shape, sr)
    names = ("original", "macs", "skeleton")
    files = {(name, fmt): export(model, fmt, data)
             for fmt in FORMATS for name, model in zip(names, (original, small, bare))}
    macs_o, macs_c = keras_basis.count_macs(original), keras_basis.count_macs(small)
    conv_o, conv_c = conv_macs(original), conv_macs(small)
    row = {"net": net, "ratio": ratio, "macs_x": macs_c / macs_o,
           "conv_macs_share": conv_o / macs_o, "conv_macs_x": conv_c / conv_o,
           "pairs": len(keras_basis.basis_pairs(small)), "modes": {}}
    for fmt in FORMATS:
        for t in args.threads:
            res = latency.time_interleaved([files[n, fmt] for n in names], threads=t,
                                           runs=args.runs, warmup=3, samples=True)
            t_o, t_c, t_s = (r["median_ms"] for r in res)
            _, lat, rest = latency.paired_ratios(res)  # same-round ratios to the original
            row["modes"][f"{fmt}_{t}t"] = {
                "ms_original": t_o, "ms_macs": t_c, "ms_skeleton": t_s,
                "latency_x": lat, "rest_share": rest,
                "convs_latency_x": (lat - rest) / (1 - rest) if rest < 1 else None,
                "floor_x": rest + (1 - rest) * row["conv_macs_x"],
            }
    log(f"  {net} r={ratio:g}: timed")
    return row


def markdown(rows):
    head = ["net", "r", "MACs x", "mode", "latency x", "1.25 x MACs", "rest share",
            "convs latency x", "conv MACs x", "floor x", "floor > 1.25 x MACs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for mode, m in row["modes"].items():
            target = 1.25 * row["macs_x"]
            convs = "-" if m["convs_latency_x"] is None else f"{m['convs_latency_x']:.2f}"
            lines.append(
                f"| {row['net']} | {row['ratio']:g} | {row['macs_x']:.2f} | "
                f"{mode.replace('_', ' ')} | {m['latency_x']:.2f} | {target:.2f} | "
                f"{m['rest_share']:.2f} | {convs} | {row['conv_macs_x']:.2f} | "
                f"{m['floor_x']:.2f} | {'yes' if m['floor_x'] > target else 'no'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", type=_row_arg,
                        default=[_row_arg(r) for r in MISSED], help="NET:RATIO pairs")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=30, help="interleaved rounds per file")
    parser.add_argument("--sr-size", type=int, default=32, help="LR input size of SR nets")
    parser.add_argument("--out", default="runs/macs_gap.json")
    parser.add_argument("--report", action="store_true", help="print --out's table only")
    args = parser.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    done = (json.loads(pathlib.Path(args.out).read_text()) if os.path.exists(args.out)
            else {"rows": []})
    if not args.report:
        have = {(r["net"], r["ratio"]) for r in done["rows"]}
        done.update(machine=platform.processor() or platform.machine(),
                    date=datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="minutes"))
        for net, ratio in args.rows:
            if (net, ratio) in have:
                continue
            done["rows"].append(measure_row(net, ratio, args, log))
            pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            fileio.write_text(args.out, json.dumps(done, indent=1) + "\n")
    print(markdown(done["rows"]))


if __name__ == "__main__":
    main()
