"""Size and speed of compressed models per objective: the latency frontier.

For each network (random weights: size and latency do not depend on them),
``keras_basis.compress(original, ratio=r, objective=o)`` for r in
{0.75, 0.5, 0.25} and o in {"params", "macs" (the default), "latency"}, plus
the paper configuration where there is one, exported as float32 and int8
TFLite (batch 1, builtin ops, ``export_tflite`` defaults) and timed with
XNNPACK at 1 and 2 threads. Every file of one network, format and thread
count is timed in the same interleaved rounds
(``keras_basis.latency.time_interleaved``), and each ratio to the original is
the median over the rounds of the two files' ratio in the same round
(``keras_basis.latency.paired_ratios``), so it shares the machine's conditions.
The peer row is int8 post-training quantisation alone (the original's int8
file against its float32 file, a ratio of medians: two timing calls).

Targets (issue 12): default objective (``"macs"``): latency ratio <= 1.0
everywhere; ``"macs"``: latency ratio <= 1.25 x MACs ratio; ``"latency"``:
<= r + 0.1. The ``"latency"`` objective measures its layer table on this
machine into ``--table`` (reused across runs and networks).

Results go to ``--out`` (JSON, one record per network; a rerun skips the
networks already there) and a Markdown table on stdout (``--report`` prints
the table of an existing ``--out`` without measuring).

    python benchmarks/latency_frontier.py --nets demo resnet20 --out runs/frontier.json
    python benchmarks/latency_frontier.py --out runs/frontier.json --report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_basis  # noqa: E402
from benchmarks.tflite_bench import stored_params  # noqa: E402
from keras_basis import fileio, latency  # noqa: E402

NETS = ("demo", "resnet20", "resnet56", "vgg16", "mobilenetv2", "resnet50", "srresnet",
        "edsr")
OBJECTIVES = ("params", "macs", "latency")
DEFAULT_OBJECTIVE = "macs"


def build(net, sr_size):
    """``(original, paper config or None, input shape, is_sr)`` of a network."""
    if net == "demo":
        from keras_basis.demo import build_cnn

        return build_cnn(), None, (16, 16, 1), False
    if net in ("resnet20", "resnet56"):
        from examples.cifar10 import resnet

        fn = getattr(resnet, net)
        paper = fn("basis") if net == "resnet56" else None
        return fn("baseline"), paper, (32, 32, 3), False
    if net == "vgg16":
        from examples.cifar10.vgg import vgg16

        return vgg16("baseline"), vgg16("basis"), (32, 32, 3), False
    if net == "mobilenetv2":
        return (keras.applications.MobileNetV2(weights=None, input_shape=(160, 160, 3)),
                None, (160, 160, 3), False)
    if net == "resnet50":
        return (keras.applications.ResNet50(weights=None, input_shape=(160, 160, 3)),
                None, (160, 160, 3), False)
    from examples.div2k.models import build as build_sr

    shape = (sr_size, sr_size, 3)
    presets = {"srresnet": ("srresnet", "srresnet-basis-64-14"),
               "edsr": ("edsr-8-128", "edsr-8-128-basis-128-40")}[net]
    return (build_sr(presets[0], scale=4, input_shape=shape),
            build_sr(presets[1], scale=4, input_shape=shape), shape, True)


def leaf_layers(model):
    """Every layer of ``model``, nested models entered."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics (random weights, as a trained net has)."""
    rng = np.random.default_rng(seed)
    for layer in leaf_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))


def variants(net, original, paper, args, table, log):
    """``[(label, objective, ratio, model or error text)]``."""
    out = [("original", None, None, original)]
    for objective in args.objectives:
        for r in args.ratios:
            label = f"{objective} r={r:g}"
            t0 = time.perf_counter()
            try:
                model = keras_basis.compress(original, ratio=r, objective=objective,
                                             latency_table=table if objective == "latency"
                                             else None, verbose=0)
            except ValueError as err:
                log(f"  {label}: {err}")
                out.append((label, objective, r, f"not reachable: {err}"))
                continue
            log(f"  {label}: compressed in {time.perf_counter() - t0:.0f} s")
            out.append((label, objective, r, model))
            if objective == "latency" and args.table:
                table.save(args.table)
    if paper is not None:
        out.append(("paper config", None, None, paper))
    return out


def calibration_data(shape, sr):
    """8 seeded inputs: pixel values for SR networks, standard normal otherwise."""
    rng = np.random.default_rng(0)
    data = (rng.uniform(0, 255, (8,) + shape) if sr else rng.standard_normal((8,) + shape))
    return data.astype("float32")


def export(model, fmt, data):
    """The bytes of ``model`` as a float32 or full-int8 TFLite file (``data`` calibrates)."""
    return keras_basis.export_tflite(
        model, None, quantize=None if fmt == "float32" else "int8",
        representative_dataset=data if fmt == "int8" else None, calibration_steps=8,
        return_content=True)[1]


def measure(net, args, table, log):
    original, paper, shape, sr = build(net, args.sr_size)
    randomize_bn(original)
    if paper is not None:
        randomize_bn(paper, seed=1)
    data = calibration_data(shape, sr)
    rows = []
    models = variants(net, original, paper, args, table, log)
    live = [(label, obj, r, m) for label, obj, r, m in models if not isinstance(m, str)]
    files = {(label, fmt): export(model, fmt, data)
             for fmt in ("float32", "int8") for label, _, _, model in live}
    timing, paired = {}, {}
    for fmt in ("float32", "int8"):
        for threads in args.threads:
            res = latency.time_interleaved([files[label, fmt] for label, *_ in live],
                                           threads=threads, runs=args.runs, warmup=3,
                                           samples=True)
            for (label, *_), r, x in zip(live, res, latency.paired_ratios(res)):
                timing[label, fmt, threads] = r["median_ms"]
                paired[label, fmt, threads] = x
    base_params = stored_params(original)
    base_macs = keras_basis.count_macs(original)
    for label, obj, r, model in models:
        row = {"net": net, "variant": label, "objective": obj, "ratio": r}
        if isinstance(model, str):
            row["error"] = model
            rows.append(row)
            continue
        row.update(params=stored_params(model), macs=keras_basis.count_macs(model))
        row.update(params_x=row["params"] / base_params, macs_x=row["macs"] / base_macs)
        for fmt in ("float32", "int8"):
            row[f"bytes_{fmt}"] = len(files[label, fmt])
            row[f"bytes_{fmt}_x"] = len(files[label, fmt]) / len(files["original", fmt])
            for threads in args.threads:
                ms = timing[label, fmt, threads]
                row[f"ms_{fmt}_{threads}t"] = ms
                row[f"lat_{fmt}_{threads}t_x"] = paired[label, fmt, threads]
        rows.append(row)
    # the peer: int8 post-training quantisation of the original alone
    peer = {"net": net, "variant": "int8 PTQ alone (vs float32)", "objective": None,
            "ratio": None, "params_x": 1.0, "macs_x": 1.0,
            "bytes_int8_x": len(files["original", "int8"]) / len(files["original", "float32"])}
    for threads in args.threads:
        peer[f"lat_int8_{threads}t_x"] = (timing["original", "int8", threads]
                                         / timing["original", "float32", threads])
    rows.append(peer)
    return {"net": net, "input_shape": list(shape), "rows": rows}


def check_targets(row):
    """Which target of issue 12 a row misses (empty string if none applies or all hold)."""
    lats = [v for k, v in row.items() if k.startswith("lat_") and k.endswith("_x")]
    if not lats or row.get("objective") is None:
        return ""
    worst = max(lats)
    missed = []
    if row["objective"] == DEFAULT_OBJECTIVE and worst > 1.0:
        missed.append(f"default > 1.0 ({worst:.2f})")
    if row["objective"] == "macs" and worst > 1.25 * row["macs_x"]:
        missed.append(f"> 1.25 x MACs ({worst:.2f} > {1.25 * row['macs_x']:.2f})")
    if row["objective"] == "latency" and worst > row["ratio"] + 0.1:
        missed.append(f"> r + 0.1 ({worst:.2f})")
    return "; ".join(missed)


def _fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def markdown(records, threads):
    cols = [f"lat_{fmt}_{t}t_x" for fmt in ("float32", "int8") for t in threads]
    head = (["net", "variant", "params x", "MACs x", "f32 bytes x", "int8 bytes x"]
            + [c[4:-2].replace("_", " ") + " x" for c in cols] + ["missed target"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in records:
        for row in rec["rows"]:
            if "error" in row:
                reach = re.search(r"smallest reachable ratio .*? is ([0-9.]+)", row["error"])
                why = (f"not reachable (smallest: {float(reach.group(1)):.2f})" if reach
                       else row["error"][:90])
                lines.append(f"| {row['net']} | {row['variant']} | "
                             + " | ".join(["-"] * (len(head) - 3)) + f" | {why} |")
                continue
            cells = [row["net"], row["variant"], _fmt(row.get("params_x")),
                     _fmt(row.get("macs_x")), _fmt(row.get("bytes_float32_x")),
                     _fmt(row.get("bytes_int8_x"))] + [_fmt(row.get(c)) for c in cols]
            cells.append(check_targets(row) or "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.75, 0.5, 0.25])
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=30, help="interleaved rounds per file")
    parser.add_argument("--sr-size", type=int, default=32, help="LR input size of SR nets")
    parser.add_argument("--out", default="runs/latency_frontier.json")
    parser.add_argument("--table", default="runs/latency_table.json",
                        help="latency table of the 'latency' objective (read and extended)")
    parser.add_argument("--report", action="store_true", help="print --out's table only")
    args = parser.parse_args(argv)

    out = pathlib.Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"records": []}
    if not args.report:
        def log(text):
            print(text, file=sys.stderr, flush=True)

        table = (latency.LatencyTable.load(args.table)
                 if args.table and os.path.exists(args.table) else latency.LatencyTable())
        done = {rec["net"] for rec in data["records"]}
        for net in args.nets:
            if net in done:
                log(f"{net}: already in {out}, skipped")
                continue
            t0 = time.perf_counter()
            log(f"{net}:")
            rec = measure(net, args, table, log)
            rec["seconds"] = round(time.perf_counter() - t0, 1)
            rec["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="minutes")
            rec["machine"] = latency.machine()
            data["records"].append(rec)
            out.parent.mkdir(parents=True, exist_ok=True)
            fileio.write_text(out, json.dumps(data, indent=1) + "\n")
            log(f"{net}: done in {rec['seconds']:.0f} s")
    print(f"# latency frontier ({platform.machine()}, {os.cpu_count()} cores; "
          f"ratios to the original of the same format, same interleaved rounds)\n")
    print(markdown(data["records"], args.threads))


if __name__ == "__main__":
    main()
