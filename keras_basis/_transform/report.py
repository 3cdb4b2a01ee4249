"""report(): per-layer table of a compressed (or candidate) model."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_basis._transform import graph, plan
from keras_basis._transform.macs import count_macs


@dataclasses.dataclass
class Report:
    """Result of :func:`keras_basis.report`.

    Attributes:
        model_name: name of the reported model.
        kind: ``"compressed"`` (it holds basis pairs) or ``"candidates"``.
        rows: one dict per basis pair (or candidate Conv2D).
        skipped: ``(layer name, reason)`` of convolutions left dense (with
            ``compress(ratio=...)``: why its objective kept each one dense).
        totals: sums over the rows, whole-model parameter counts and MACs
            (``model_macs``, ``reference_macs``: :func:`keras_basis.count_macs`).
    """

    model_name: str
    kind: str
    rows: list
    skipped: list
    totals: dict

    def __str__(self):
        return _format(self)


def _spatial(shape):
    if not shape or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def _reference_kernels(reference):
    out = {}
    if reference is None:
        return out
    for layer, _ in graph.walk(reference):
        if isinstance(layer, keras.layers.Conv2D) and not plan.skip_reason(layer):
            out[layer.name] = keras.ops.convert_to_numpy(layer.kernel)
    return out


def _rel_error(w, recon):
    if w is None or w.shape != recon.shape:
        return None
    total = float(np.sum(w.astype(np.float64) ** 2))
    return float(np.sum((w - recon) ** 2)) / total if total > 0 else 0.0


def _pair_rows(pairs, kernels, maths):
    rows, seen_bases = [], set()
    for pr in pairs:
        kh, kw = pr.kernel_size
        before = maths.conv_params(pr.c, pr.n, kh, kw)
        first = id(pr.basis_layer) not in seen_bases
        seen_bases.add(id(pr.basis_layer))
        basis_w = int(np.prod(pr.basis_layer.basis.shape)) if first else 0
        after = basis_w + pr.m * pr.s * pr.n
        hw = _spatial(pr.output_shape)
        rows.append({
            "layer": pr.name,
            "basis": pr.basis_layer.name,
            "c": pr.c, "n": pr.n, "kernel": f"{kh}x{kw}",
            "s": pr.s, "p": pr.p, "m": pr.m,
            # the split form the layer runs (BasisConv2D(split_mode=...)); "-" at s = 1
            "split_mode": (getattr(pr.basis_layer, "split_mode", "batch") if pr.s > 1
                           else "-"),
            "params_before": before,
            "params_after": after,
            "flops_before": None if hw is None else 2 * maths.conv_macs(pr.c, pr.n, kh, kw, *hw),
            "flops_after": (None if hw is None
                            else 2 * maths.basis_macs(pr.c, pr.n, kh, kw, pr.s, pr.m, *hw)),
            "rel_error": _rel_error(kernels.get(pr.name), pr.kernel()),
            "shared_with": list(pr.shared_with),
        })
    return rows


def _candidate_rows(model, maths):
    rows, skipped = [], []
    for layer, owner in graph.walk(model):
        if not plan.is_conv_like(layer):
            continue
        why = plan.skip_reason(layer)
        if why:
            skipped.append((layer.name, why))
            continue
        w = keras.ops.convert_to_numpy(layer.kernel)
        kh, kw, c, n = w.shape
        s = maths.optimal_splits(c, n, kh, kw)
        sv = maths.singular_values(w, s).astype(np.float64)
        _, out_shape = graph.io_shapes(layer, owner)
        hw = _spatial(out_shape)
        rows.append({
            "layer": layer.name, "c": c, "n": n, "kernel": f"{kh}x{kw}", "s": s,
            "p": c // s, "rank": maths.rank_bound(c, n, kh, kw, s),
            "m90": maths.rank_for_energy(sv, 0.90),
            "m99": maths.rank_for_energy(sv, 0.99),
            "params_before": maths.conv_params(c, n, kh, kw),
            "flops_before": None if hw is None else 2 * maths.conv_macs(c, n, kh, kw, *hw),
            "sv_max": float(sv[0]) if sv.size else 0.0,
            "sv_min": float(sv[-1]) if sv.size else 0.0,
        })
    return rows, skipped


def _pair_totals(rows, totals):
    for key in ("params_before", "params_after", "flops_before", "flops_after"):
        vals = [r[key] for r in rows]
        totals[key] = None if any(v is None for v in vals) else int(sum(vals))
    totals["params_ratio"] = totals["params_after"] / max(totals["params_before"], 1)
    if totals["flops_before"]:
        totals["flops_ratio"] = totals["flops_after"] / totals["flops_before"]
    errs = [r["rel_error"] for r in rows if r["rel_error"] is not None]
    totals["mean_rel_error"] = float(np.mean(errs)) if errs else None
    return totals


def build_pairs(pairs, reference, info, maths):
    """Report of given BasisPair records only."""
    kernels = dict(info.get("kernels", {}))
    kernels.update(_reference_kernels(reference))
    rows = _pair_rows(pairs, kernels, maths)
    layers = {id(ly): ly for pr in pairs for ly in (pr.basis_layer, pr.coef_layer)}
    totals = {"model_params": int(sum(ly.count_params() for ly in layers.values()))}
    return Report(pairs[0].owner.name, "compressed", rows, [], _pair_totals(rows, totals))


def build(model, reference, info, maths):
    pairs = graph.basis_pairs(model)
    totals = {"model_params": int(model.count_params()), "model_macs": count_macs(model)}
    if reference is not None:
        totals["reference_params"] = int(reference.count_params())
        totals["reference_macs"] = count_macs(reference)
    if pairs:
        kernels = dict(info.get("kernels", {}))
        kernels.update(_reference_kernels(reference))
        rows = _pair_rows(pairs, kernels, maths)
        pair_names = {pr.name for pr in pairs}
        skipped = [(nm, why) for nm, why in info.get("skipped", []) if nm not in pair_names]
        known = {nm for nm, _ in skipped}
        for layer, _ in graph.walk(model):
            if (plan.is_conv_like(layer) and layer.name not in pair_names
                    and layer.name not in known):
                skipped.append((layer.name, plan.skip_reason(layer) or "dense Conv2D"))
        return Report(model.name, "compressed", rows, skipped, _pair_totals(rows, totals))
    rows, skipped = _candidate_rows(model, maths)
    reasons = dict(info.get("skipped", []))
    skipped = [(nm, reasons.get(nm, why)) for nm, why in skipped]
    skipped += [(nm, why) for nm, why in info.get("skipped", [])
                if nm not in {s for s, _ in skipped}]
    totals["params_before"] = int(sum(r["params_before"] for r in rows))
    flops = [r["flops_before"] for r in rows]
    totals["flops_before"] = None if any(f is None for f in flops) else int(sum(flops))
    return Report(model.name, "candidates", rows, skipped, totals)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return ",".join(v) if v else "-"
    return str(v)


def _format(rep):
    if rep.kind == "compressed":
        cols = [("layer", "Layer"), ("c", "c"), ("n", "n"), ("kernel", "k"), ("s", "s"),
                ("split_mode", "split"), ("p", "p"), ("m", "m"), ("params_before", "Params"),
                ("params_after", "-> basis"), ("flops_before", "FLOPs"),
                ("flops_after", "-> basis"), ("rel_error", "rel.err"),
                ("shared_with", "shared with")]
        title = f'Compression report: "{rep.model_name}" (basis pairs)'
    else:
        cols = [("layer", "Layer"), ("c", "c"), ("n", "n"), ("kernel", "k"),
                ("s", "s*"), ("p", "p"), ("rank", "rank"), ("m90", "m@90%"),
                ("m99", "m@99%"), ("params_before", "Params"), ("flops_before", "FLOPs")]
        title = f'Compression report: "{rep.model_name}" (candidate Conv2D layers)'
    table = [[h for _, h in cols]] + [[_fmt(r[k]) for k, _ in cols] for r in rep.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    widths[-1] = min(widths[-1], 40)

    def line(row):
        return "  ".join(
            cell[:w].ljust(w) if i == 0 or i == len(row) - 1 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()

    total_w = sum(widths) + 2 * (len(widths) - 1)
    out = [title, "=" * total_w, line(table[0]), "=" * total_w]
    out += [line(r) for r in table[1:]]
    out.append("=" * total_w)
    t = rep.totals
    if rep.kind == "compressed":
        out.append(f"Compressed convolutions: {len(rep.rows)}; weights "
                   f"{_fmt(t['params_before'])} -> {_fmt(t['params_after'])} "
                   f"({t['params_ratio']:.1%})")
        if t.get("flops_ratio") is not None:
            out.append(f"FLOPs of these layers: {_fmt(t['flops_before'])} -> "
                       f"{_fmt(t['flops_after'])} ({t['flops_ratio']:.1%})")
        if t.get("mean_rel_error") is not None:
            out.append(f"Mean relative approximation error: {t['mean_rel_error']:.4g}")
    else:
        out.append(f"Candidate convolutions: {len(rep.rows)}; weights "
                   f"{_fmt(t['params_before'])}, FLOPs {_fmt(t['flops_before'])}")
    line_params = f"Total model params: {_fmt(t['model_params'])}"
    if "reference_params" in t:
        line_params += f" (reference: {_fmt(t['reference_params'])})"
    out.append(line_params)
    if "model_macs" in t:
        line_macs = f"Total model MACs: {_fmt(t['model_macs'])}"
        if t.get("reference_macs"):
            line_macs += (f" (reference: {_fmt(t['reference_macs'])}, "
                          f"{t['model_macs'] / t['reference_macs']:.1%})")
        out.append(line_macs)
    if rep.skipped:
        out.append(f"Left dense ({len(rep.skipped)}):")
        out += [f"  {nm}: {why}" for nm, why in rep.skipped]
    out.append("=" * total_w)
    return "\n".join(out)
