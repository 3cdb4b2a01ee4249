"""``keras-basis profile``: a measured latency table of a model's convolution forms.

Three uses, one JSON format (``keras_basis.latency.FORMAT``):

- ``profile MODEL.keras``: time, on this machine, every compressible conv of
  the model as one-layer TFLite files (dense and candidate basis pairs,
  interleaved), print the per-layer table and write ``--out``;
- ``profile --emit-models DIR MODEL.keras``: write those one-layer files and
  ``DIR/manifest.json`` instead, to time them on a phone with LiteRT's
  ``benchmark_model``;
- ``profile --from-logs LOGDIR --manifest DIR/manifest.json --out T.json``:
  read the phone's ``benchmark_model`` logs back into a table.

The phone route's file naming, manifest and log parsing live here
(:func:`emit_models`, :func:`parse_benchmark_log`, :func:`table_from_logs`).
"""

from __future__ import annotations

import argparse
import glob
import json
import pathlib
import re
import time

from keras_basis.cli import options
from keras_basis.cli.io_helpers import (
    CLIError,
    NothingToDo,
    check_input_file,
    check_keras_file,
    check_output_dir,
    check_output_file,
    format_table,
    load_model,
)

NAME = "profile"
SUMMARY = "time a model's conv layers as dense and basis-pair TFLite files (latency table)"
DESCRIPTION = (
    "Time every compressible Conv2D of MODEL.keras (and every basis pair of a\n"
    "compressed model) as one-layer TFLite files at batch 1 with XNNPACK: the\n"
    "dense conv and candidate basis pairs (s = 1 and Eq. 13's split, m multiples\n"
    "of 8 or 16 below the dense conv's MACs, the transpose-free 'dilated' split\n"
    "form where exact), interleaved so that machine load touches all forms alike.\n"
    "Prints, per layer, the dense latency, the fastest pair and the pair with the\n"
    "most MACs still faster than dense, and writes the table (JSON) that\n"
    "compress(objective='latency', latency_table=...) reads.\n"
    "--table extends an existing table (only missing entries are timed).\n"
    "For a phone: --emit-models DIR writes the one-layer files and a manifest;\n"
    "time them with LiteRT's benchmark_model, then --from-logs builds the table\n"
    "(see tflite/README.md)."
)
EXAMPLES = (
    "model.keras --out table.json",
    "model.keras --quantize int8 --threads 4 --out table.json   # one mode",
    "model.keras --table table.json --out table.json   # extend it",
    "sr.keras --input-shape 128,128,3 --out sr_table.json",
    "--emit-models phone_models/ model.keras --quantize int8",
    "--from-logs logs/ --manifest phone_models/manifest.json --out phone_table.json",
)
MANIFEST_FORMAT = "keras-basis/latency-models/1"


def _quantize(text):
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in ("float32", "int8")]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"expected float32 or int8, received {text!r}")
    return values


def _shape(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C (e.g. 128,128,3), received {text!r}")
    return values


def register(subparsers, prog, common=()):
    """Add the ``profile`` subcommand to ``subparsers``; returns its parser."""
    p = options.add_command(
        subparsers, NAME, summary=SUMMARY, description=DESCRIPTION, examples_=EXAMPLES,
        prog=prog, common=common,
    )
    p.add_argument("model", metavar="MODEL.keras", nargs="?")
    p.add_argument("--quantize", type=_quantize, nargs="+", default=[("float32", "int8")],
                   metavar="Q", help="float32 and/or int8 (space- or comma-separated) "
                   "(default: float32 int8)")
    p.add_argument("--threads", type=options.thread_list, nargs="+", default=[(1, 2)],
                   metavar="N", help="interpreter thread counts, space- or comma-separated "
                   "(default: 1 2, the modes compress --objective latency budgets)")
    p.add_argument("--out", metavar="TABLE.json", help="write the table here (atomically)")
    p.add_argument("--table", metavar="TABLE.json", help="an existing table to extend: its "
                   "entries are not timed again; written back only to --out")
    p.add_argument("--runs", type=options.positive_int, default=30, metavar="N",
                   help="timed rounds, each running every form once (default: %(default)s)")
    p.add_argument("--warmup", type=options.non_negative_int, default=5, metavar="N",
                   help="untimed rounds first (default: %(default)s)")
    p.add_argument("--input-shape", type=_shape, metavar="H,W,C",
                   help="input shape when the model's is not fixed")
    phone = p.add_argument_group("phone route (LiteRT benchmark_model)")
    phone.add_argument("--emit-models", metavar="DIR", help="write the one-layer .tflite "
                       "files and DIR/manifest.json instead of timing them here")
    phone.add_argument("--from-logs", metavar="LOGDIR", help="build the table from "
                       "benchmark_model logs LOGDIR/<file>.log or <file>.t<N>.log (no model)")
    phone.add_argument("--manifest", metavar="MANIFEST.json", help="with --from-logs: the "
                       "manifest written by --emit-models")
    options.add_load_args(p)
    p.set_defaults(run=run)
    return p


def check_args(args):
    """Errors in the combination of flags, before any file is read."""
    if args.from_logs:
        if args.model or args.emit_models:
            raise CLIError("--from-logs reads logs, not a model: drop MODEL.keras and "
                           "--emit-models")
        if not args.manifest or not args.out:
            raise CLIError("--from-logs needs --manifest DIR/manifest.json and --out TABLE.json")
        return
    if not args.model:
        raise CLIError("expected MODEL.keras (or --from-logs LOGDIR)")
    if args.manifest:
        raise CLIError("--manifest goes with --from-logs")
    if args.emit_models and (args.out or args.table):
        raise CLIError("--emit-models writes files for a phone, no table: drop --out/--table")


# ------------------------------------------------------------ phone route
def file_stem(geometry, form, quantize):
    """File stem of a one-layer model: ``<geometry key>__<form slug>__<quantize>``."""
    slug = form.replace("pair:", "pair-").replace(",", "-").replace("=", "")
    return f"{geometry.key()}__{slug}__{quantize}"


def emit_models(model, directory, *, quantize=("float32", "int8"), forms="auto",
                input_shape=None):
    """Write the one-layer ``.tflite`` files of ``model``'s forms and ``manifest.json``.

    One file per geometry x form x quantization (:func:`file_stem`), as
    ``keras_basis.latency.profile_model`` would time them. Returns the
    manifest's entries (``file``, ``geometry``, ``key``, ``form``, ``quantize``).
    """
    from keras_basis import fileio, latency

    directory = pathlib.Path(directory)
    entries, seen = [], set()
    for site in latency.layer_geometries(model, input_shape=input_shape):
        chosen = latency.candidate_forms(site.geometry) if forms == "auto" else forms(
            site.geometry)
        for form in dict.fromkeys(["dense", *chosen, site.form]):
            for q in quantize:
                stem = file_stem(site.geometry, form, q)
                if stem not in seen:
                    seen.add(stem)
                    content = latency.convert_form(site.geometry, form, q)
                    fileio.write_bytes(directory / f"{stem}.tflite", content)
                    entries.append({"file": f"{stem}.tflite", "key": site.geometry.key(),
                                    "geometry": site.geometry.to_dict(), "form": form,
                                    "quantize": q})
    manifest = {"format": MANIFEST_FORMAT, "meta": {"machine": "phone", "runtime":
                latency.RUNTIME, "tool": "benchmark_model"}, "models": entries}
    fileio.write_text(directory / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return entries


_AVG = re.compile(r"Inference \(avg\):\s*([0-9.eE+-]+)")
_COUNT_AVG = re.compile(r"count=\d+.*?\bavg=([0-9.eE+-]+)")
_THREADS = re.compile(r"Num threads:\s*\[(\d+)\]")


def parse_benchmark_log(text):
    """``(avg_ms, threads or None)`` of LiteRT ``benchmark_model`` output.

    The timing is ``Inference timings in us: ... Inference (avg): X`` (else
    the last ``count=... avg=X`` line, the timed runs), in microseconds;
    threads come from ``Num threads: [N]``. ``(None, ...)`` without a timing.
    """
    found = _AVG.findall(text) or _COUNT_AVG.findall(text)
    threads = _THREADS.findall(text)
    try:
        ms = float(found[-1]) / 1000.0 if found else None
    except ValueError:
        ms = None
    return ms, int(threads[-1]) if threads else None


def table_from_logs(manifest, log_dir, *, threads=1):
    """A ``LatencyTable`` from the ``benchmark_model`` logs of :func:`emit_models`' files.

    File ``X.tflite`` of the manifest is looked up as ``log_dir/X.log`` and
    ``log_dir/X.t<N>.log``; its thread count is the log's ``Num threads``
    line, else the ``.t<N>`` of the name, else ``threads``.

    Returns:
        ``(table, missing)``: the table and the files without a usable log.
    """
    from keras_basis import latency

    with open(manifest, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as err:
            raise ValueError(f"{manifest}: not a manifest: not JSON ({err}).") from err
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(
            data.get("models"), list):
        raise ValueError(f"{manifest}: not a manifest: expected \"format\": "
                         f"{MANIFEST_FORMAT!r} and a \"models\" list.")
    meta = dict(data.get("meta") or {}, tool="benchmark_model",
                date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    table, log_dir, missing = latency.LatencyTable(meta=meta), pathlib.Path(log_dir), []
    for item in data["models"]:
        stem = pathlib.Path(item["file"]).stem
        logs = [p for p in sorted(log_dir.glob(f"{glob.escape(stem)}*.log"))
                if re.fullmatch(re.escape(stem) + r"(\.t\d+)?\.log", p.name)]
        used = 0
        for log in logs:
            ms, found = parse_benchmark_log(log.read_text(encoding="utf-8", errors="replace"))
            named = re.fullmatch(re.escape(stem) + r"\.t(\d+)\.log", log.name)
            if ms is not None and ms > 0:
                table.set(latency.LayerGeometry.from_dict(item["geometry"]), item["form"],
                          item["quantize"], found or (int(named.group(1)) if named else threads),
                          ms, statistic="avg", log=log.name)
                used += 1
        if not used:
            missing.append(item["file"])
    return table, missing


# ------------------------------------------------------------------ printing
def describe(geometry):
    """``"32x32 64->64 k3x3"`` plus stride, padding and dilation when not 1 / same."""
    g = geometry
    text = f"{g.height}x{g.width} {g.c}->{g.n} k{g.kernel_size[0]}x{g.kernel_size[1]}"
    if g.strides != (1, 1):
        text += f" s{g.strides[0]}x{g.strides[1]}"
    if g.dilation_rate != (1, 1):
        text += f" d{g.dilation_rate[0]}x{g.dilation_rate[1]}"
    return text + (" valid" if g.padding == "valid" else "")


def layer_rows(sites, table, quantize, threads):
    """Per layer x quantize x threads: dense ms, the fastest pair, the largest pair faster.

    "largest pair faster" is the pair form with the most MACs (the most
    capacity) that still runs faster than the dense conv; a compressed
    model's rows also show its current form.
    """
    compressed = any(site.form != "dense" for site in sites)
    rows = []
    for site in sites:
        g = site.geometry
        for q in quantize:
            for t in threads:
                dense = table.get(g, "dense", q, t)
                pairs = [(e["ms"], e["form"]) for e in table.entries
                         if e["key"] == g.key() and e["quantize"] == q
                         and e["threads"] == t and e["form"] != "dense"]
                best_ms, best = min(pairs) if pairs else (None, "-")
                faster = [(g.macs(f), f) for ms, f in pairs if ms < dense]
                row = [site.layer, describe(g), q, t, f"{dense:.3f}", best,
                       "-" if best_ms is None else f"{best_ms:.3f}",
                       "-" if best_ms is None else f"{best_ms / dense:.2f}",
                       max(faster)[1] if faster else "none"]
                if compressed:
                    now = table.get(g, site.form, q, t)
                    row += [site.form, f"{now / dense:.2f}"]
                rows.append(row)
    header = ["layer", "geometry", "quantize", "threads", "dense ms", "fastest pair",
              "pair ms", "pair/dense", "largest pair faster"] + (
                  ["current", "current/dense"] if compressed else [])
    return header, rows


def _flat(groups):
    return tuple(dict.fromkeys(v for group in groups for v in group))


def run(args):
    """Profile, emit or read back; returns the exit status."""
    check_args(args)
    quantize, threads = _flat(args.quantize), _flat(args.threads)
    if args.from_logs:
        return run_from_logs(args, threads)
    src = check_keras_file(args.model)
    if args.out:
        check_output_file(args.out, ".json", source=src, name="--out")
    if args.emit_models:
        check_output_dir(args.emit_models)
    from keras_basis import latency

    model = load_model(src, safe_mode=args.safe_mode)
    sites = latency.layer_geometries(model, input_shape=args.input_shape)
    if not sites:
        raise NothingToDo(f"{args.model}: no compressible Conv2D layer or basis pair to time")
    start = time.perf_counter()
    if args.emit_models:
        entries = emit_models(model, args.emit_models, quantize=quantize,
                              input_shape=args.input_shape)
        print(f"wrote {len(entries)} one-layer .tflite files and "
              f"{pathlib.Path(args.emit_models) / 'manifest.json'} "
              f"({len(sites)} layers) in {time.perf_counter() - start:.1f} s")
        return 0
    table = load_table(args.table) if args.table else None
    before = len(table) if table is not None else 0
    table = latency.profile_model(model, quantize=quantize, threads=threads, table=table,
                                  runs=args.runs, warmup=args.warmup,
                                  input_shape=args.input_shape)
    print(format_table(*layer_rows(sites, table, quantize, threads)))
    print(f"{len(table) - before} form(s) timed, {before} from {args.table or 'no table'}, "
          f"in {time.perf_counter() - start:.1f} s; batch 1, XNNPACK, median of "
          f"{args.runs} interleaved rounds after {args.warmup} warm-up; "
          "pair/dense < 1: the pair is faster")
    if args.out:
        table.save(args.out)
        print(f"wrote {args.out} ({len(table)} entries)")
    else:
        print("table not saved: pass --out TABLE.json")
    return 0


def run_from_logs(args, threads):
    """``--from-logs``: the table of a phone's ``benchmark_model`` logs."""
    logs = pathlib.Path(args.from_logs)
    if not logs.is_dir():
        raise CLIError(f"{args.from_logs}: no such folder (--from-logs)")
    manifest = check_input_file(args.manifest, ".json")
    check_output_file(args.out, ".json", name="--out")
    table, missing = table_from_logs(manifest, logs, threads=threads[0])
    if not len(table):
        raise CLIError(f"{args.from_logs}: no benchmark_model timing found for any file of "
                       f"{args.manifest} (expected <file>.log with 'Inference (avg): X')")
    if args.table:  # the logs' entries replace the old table's
        old = load_table(args.table)
        table = type(table)(old.entries + table.entries, meta=old.meta)
    table.save(args.out)
    print(f"wrote {args.out} ({len(table)} entries); {len(missing)} file(s) without a log"
          + (f", e.g. {missing[0]}" if missing else ""))
    return 0


def load_table(path):
    """The ``LatencyTable`` at ``path`` (CLIError when it is not one)."""
    from keras_basis import latency

    check_input_file(path, ".json")
    return latency.LatencyTable.load(path)
