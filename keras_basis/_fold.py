"""fold_plan(): the fastest TFLite form of every basis pair, from the latency table.

Each pair is looked up (or measured on this machine) in a
:class:`keras_basis.latency.LatencyTable` in three forms: the dense ``Conv2D``
it equals, the pair with the batch split form and, for ``s > 1`` where it is
exact, the transpose-free dilated split form. ``export_tflite(fold="auto")``
folds the pairs whose dense form is fastest and gives each kept basis its
fastest split form. The same table drives ``compress(objective="latency")``,
so a table measured on a phone drives both.
"""

from __future__ import annotations

from keras_basis import _convert, latency
from keras_basis._geometry import dilated_form_exact
from keras_basis._transform import graph

__all__ = ["fold_plan", "split_modes"]

# export_tflite's quantize -> the table's kernels: float16 weights are
# dequantised to float32 at load time (float32 kernels); dynamic-range files
# run hybrid kernels, which the table does not hold: timed as float32.
_TABLE_QUANTIZE = {None: "float32", "float16": "float32", "dynamic": "float32", "int8": "int8"}


def fold_plan(model, *, quantize=None, threads=1, input_shape=None, runs=20, warmup=3,
              latency_table=None):
    """The fastest TFLite form of every basis pair; says which to fold back.

    Each pair (basis conv + 1x1 coefficients) is costed in up to three forms
    at its input shape, batch 1: ``"dense"`` (the ``Conv2D`` it equals),
    ``"batch"`` and, for ``s > 1`` at stride 1, ``"dilated"`` (the two split
    forms of ``BasisConv2D(split_mode=...)``). The costs come from
    ``latency_table`` when it holds them (e.g. timed on a phone with
    LiteRT's ``benchmark_model``, see tflite/README.md); the missing ones are
    measured on this machine as one-layer TFLite files, timed interleaved
    (:meth:`keras_basis.latency.LatencyTable.measure`), and added to the
    table. Pairs of identical geometry are measured once.

    Args:
        model: a ``keras.Model`` with basis pairs (``keras_basis.basis_pairs``).
        quantize: as in ``export_tflite`` (``"int8"`` uses the table's int8
            timings, the others its float32 ones).
        threads: interpreter threads for the timing.
        input_shape: model input shape without batch, when it has unknown
            spatial dims (a list for several inputs).
        runs, warmup: timed and untimed rounds of the measurements.
        latency_table: None (measure into a fresh table), a path or a
            ``keras_basis.latency.LatencyTable`` (extended in place).

    Returns:
        list of dicts, one per pair in graph order: ``coefficients`` (the 1x1
        conv's name, what ``decompress(layers=...)`` takes), ``basis``,
        ``input_shape``, ``dense_ms``, ``batch_ms``, ``dilated_ms`` (None
        where that form is not exact), ``basis_ms`` (the faster split form),
        ``form`` (the fastest of ``"dense"``, ``"batch"``, ``"dilated"``; a
        tie keeps the pair), ``fold`` (``form == "dense"``), ``basis_macs``
        and ``dense_macs`` (per image).

    Example:

    >>> [r["coefficients"] for r in keras_basis.export.fold_plan(model) if r["fold"]]
    ['stage1_block1_coef']
    """
    _convert.check_model(model)
    table = latency.LatencyTable.of(latency_table)
    mode = _TABLE_QUANTIZE[quantize]
    pairs = {pair.name: pair for pair in graph.basis_pairs(model)}
    sites = [site for site in latency.layer_geometries(model, input_shape=input_shape)
             if site.layer in pairs]
    plan = []
    for site in sites:
        pair, g = pairs[site.layer], site.geometry
        forms = {"dense": "dense", "batch": latency.pair_form(pair.s, pair.m)}
        if pair.s > 1 and dilated_form_exact(g.kernel_size, g.strides, g.padding,
                                             g.dilation_rate):
            forms["dilated"] = latency.pair_form(pair.s, pair.m, dilated=True)
        ms = table.measure(g, list(forms.values()), mode, threads, runs=runs, warmup=warmup)
        cost = {name: ms[form] for name, form in forms.items()}
        split = min((name for name in cost if name != "dense"), key=cost.get)
        form = "dense" if cost["dense"] < cost[split] else split
        plan.append({
            "coefficients": pair.name,
            "basis": pair.basis_layer.name,
            "input_shape": (1, g.height, g.width, g.c),
            "dense_ms": cost["dense"],
            "batch_ms": cost["batch"],
            "dilated_ms": cost.get("dilated"),
            "basis_ms": cost[split],
            "form": form,
            "fold": form == "dense",
            "basis_macs": int(g.macs(forms["batch"])),
            "dense_macs": int(g.macs("dense")),
        })
    return plan


def split_modes(plan):
    """``{basis layer name: "batch" | "dilated"}`` for the bases a plan keeps.

    A basis shared by several pairs gets the split form with the smaller
    total time over its kept pairs (a pair without a dilated form counts its
    batch time for both).
    """
    totals = {}
    for row in plan:
        if row["fold"]:
            continue
        t = totals.setdefault(row["basis"], {"batch": 0.0, "dilated": 0.0})
        t["batch"] += row["batch_ms"]
        t["dilated"] += row["batch_ms"] if row["dilated_ms"] is None else row["dilated_ms"]
    return {name: "dilated" if t["dilated"] < t["batch"] else "batch"
            for name, t in totals.items()}
