"""The ``ratio`` budget on parameters, MACs or measured latency: options and knapsack.

A *unit* is one compressed layer or one share group (its members keep the
group's splits, so its options differ in ``m`` only). Its options are
``"dense"`` (its dense cost, error 0) and basis pairs ``(s, m)`` with the
normalised approximation error ``||W - BA||^2 / ||W||^2`` read from the
singular values of the split matrix (the tail beyond ``m``), as
``plan.allocate`` does. :func:`choose` picks one option per unit minimising
the summed error under a budget on the summed cost: a multiple-choice
knapsack (``knapsack.py``), solved greedily over each unit's lower convex hull
of ``(cost, error)`` (the Lagrangian relaxation's order), then improved by
single option changes that fit the budget left. With costs linear in ``m`` and
non-increasing error decrements (parameters) the hull is every ``m`` and the
greedy is today's ``plan.allocate``.

Costs: ``"params"`` the weights; ``"macs"`` the multiply-accumulates of every
call (``maths.conv_macs`` / ``maths.basis_macs``, the formulas of
``count_macs``), the budget being ``ratio`` times the whole model's MACs less
those of the layers that are not candidates; ``"latency"`` the milliseconds of
a ``keras_basis.latency.LatencyTable`` in each ``(quantize, threads)`` mode,
the convolutions' summed latency kept under ``ratio`` times their dense
latency in every mode (summed normalised cost optimised, then the budget
tightened by bisection until each mode holds).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os

import numpy as np

from keras_basis import maths
from keras_basis._geometry import dilated_form_exact
from keras_basis._transform import graph, plan
from keras_basis._transform.knapsack import Option, choose, choose_uniform
from keras_basis._transform.macs import _spatial, count_macs

OBJECTIVES = ("params", "macs", "latency")
# The default objective of ``ratio=``: deterministic (no timing inside compress).
DEFAULT_OBJECTIVE = "macs"
# Speed guard of objective="macs": a pair is admissible only if its MACs are at
# most this fraction of the dense layer's. Measured with TFLite/XNNPACK on this
# CPU, an int8 pair only wins clearly below about half of the dense MACs.
MAX_PAIR_MACS = 0.5
# m is a multiple of this under each objective (oneDNN and XNNPACK block channels).
MULTIPLE_OF = {"params": 1, "macs": 8, "latency": 8}
# The modes the latency budget holds in when the table has none (issue 12's benchmark:
# float32 and int8, 1 and 2 threads); a table with dense timings budgets its own modes.
LATENCY_MODES = (("float32", 1), ("int8", 1), ("float32", 2), ("int8", 2))
QUANTIZE = ("float32", "int8")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked objective arguments of compress() / spectra()."""

    objective: str
    multiple_of: object  # int, {layer name: int} or callable layer -> int
    max_pair_macs: float
    table: object = None
    modes: tuple = ()

    @property
    def today(self):
        """Whether this is the historical parameter allocation (plan.allocate)."""
        return self.objective == "params" and self.multiple_of == 1 and self.max_pair_macs >= 1


def _bad(argument, expected, value):
    return ValueError(
        f"Invalid value for argument `{argument}`. Expected {expected}. "
        f"Received {argument}={value!r}."
    )


def check(num_basis, objective, multiple_of, max_pair_macs, latency_table, latency_modes):
    """Validate the objective arguments; returns :class:`Settings` (None with num_basis)."""
    if num_basis is not None:
        given = [(nm, v) for nm, v in (("objective", objective), ("multiple_of", multiple_of),
                                       ("max_pair_macs", max_pair_macs),
                                       ("latency_table", latency_table),
                                       ("latency_modes", latency_modes)) if v is not None]
        if given:
            nm, v = given[0]
            raise ValueError(
                f"Invalid value for argument `{nm}`: it applies to the `ratio` budget; with "
                f"an explicit `num_basis` the m are yours. Received {nm}={v!r} with "
                f"num_basis={num_basis!r}."
            )
        return None
    objective = DEFAULT_OBJECTIVE if objective is None else objective
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise _bad("objective", f"None or one of {OBJECTIVES}", objective)
    if multiple_of is None:
        multiple_of = MULTIPLE_OF[objective]
    if isinstance(multiple_of, dict):
        multiple_of = {k: _alignment(v, f"multiple_of[{k!r}]") for k, v in multiple_of.items()}
    elif not callable(multiple_of):
        multiple_of = _alignment(multiple_of, "multiple_of")
    if max_pair_macs is None:
        max_pair_macs = MAX_PAIR_MACS if objective == "macs" else 1.0
    if isinstance(max_pair_macs, bool) or not isinstance(max_pair_macs, numbers.Real):
        raise TypeError(
            "Invalid type for argument `max_pair_macs`. Expected None or a float in (0, 1]. "
            f"Received max_pair_macs={max_pair_macs!r} of type {type(max_pair_macs).__name__}."
        )
    if not 0 < max_pair_macs <= 1:
        raise _bad("max_pair_macs", "None or a float in (0, 1] (1 = no guard)", max_pair_macs)
    if objective != "latency":
        for name, value in (("latency_table", latency_table), ("latency_modes", latency_modes)):
            if value is not None:
                raise ValueError(
                    f"Invalid value for argument `{name}`: it is read with "
                    f"objective='latency' only. Received {name}={value!r} with "
                    f"objective={objective!r}."
                )
        return Settings(objective, multiple_of, float(max_pair_macs))
    table = _table(latency_table)
    if latency_modes is None:
        latency_modes = tuple(getattr(table, "modes", ())) or LATENCY_MODES
    return Settings(objective, multiple_of, float(max_pair_macs), table, _modes(latency_modes))


def _alignment(value, name, where=""):
    """An ``m`` alignment: an int >= 1 (``name`` and ``where`` in the error)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"Invalid type for argument `{name}`{where}. Expected None, an int >= 1, a dict "
            "{layer name: int} or a callable layer -> int. Received "
            f"{name}={value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"Invalid value for argument `{name}`{where}. Expected an int >= 1. "
                         f"Received {name}={value!r}.")
    return int(value)


def align_of(group, settings):
    """The ``m`` alignment of a unit: ``multiple_of`` for every member (a dict by layer
    name, the objective's default for the layers it lacks, or a callable of the
    layer), their least common multiple for a share group."""
    spec = settings.multiple_of
    if isinstance(spec, int):
        return spec
    default = MULTIPLE_OF[settings.objective]
    values = [spec.get(mb.name, default) if isinstance(spec, dict)
              else _alignment(spec(mb.layer), "multiple_of", f" for layer '{mb.name}'")
              for mb in group.members]
    return math.lcm(*values)


def _fmt_align(settings):
    spec = settings.multiple_of
    return f"multiple_of={spec}" if isinstance(spec, int) else "multiple_of (per layer)"


def _modes(modes):
    expected = ("None (the table's modes, else float32 and int8 at 1 and 2 threads) or a "
                f"non-empty list of (quantize, threads) pairs, quantize in {QUANTIZE} and "
                "threads an int >= 1")
    if isinstance(modes, (str, bytes)) or not isinstance(modes, (list, tuple)) or not modes:
        raise _bad("latency_modes", expected, modes)
    out = []
    for mode in modes:
        if not isinstance(mode, (list, tuple)) or len(mode) != 2:
            raise _bad("latency_modes", expected, modes)
        quantize, threads = mode
        if (quantize not in QUANTIZE or isinstance(threads, bool)
                or not isinstance(threads, (int, np.integer)) or threads < 1):
            raise _bad("latency_modes", expected, modes)
        if (quantize, int(threads)) not in out:
            out.append((quantize, int(threads)))
    return tuple(out)


def _latency_module():
    from keras_basis import latency  # the profiler; imported only for objective="latency"
    return latency


def _table(latency_table):
    if latency_table is None:
        return _latency_module().LatencyTable()
    if isinstance(latency_table, (str, os.PathLike)):
        try:
            return _latency_module().LatencyTable.load(latency_table)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"Invalid value for argument `latency_table`: could not load the table "
                f"({err}). Received latency_table={latency_table!r}."
            ) from err
    if callable(getattr(latency_table, "get", None)) and callable(
            getattr(latency_table, "measure", None)):
        return latency_table
    raise TypeError(
        "Invalid type for argument `latency_table`. Expected None (measure on this machine), "
        "a path to a table file or a keras_basis.latency.LatencyTable. Received "
        f"latency_table={latency_table!r} of type {type(latency_table).__name__}."
    )


def geometry_of(layer, input_shape):
    """The latency table's key for one call of ``layer`` (``LayerGeometry.of_layer``)."""
    return _latency_module().LayerGeometry.of_layer(layer, input_shape)


def pair_form(s, m, dilated=False):
    return _latency_module().pair_form(s, m, dilated=dilated)


# ------------------------------------------------------------------- units
def _calls(mb):
    return graph.call_shapes(mb.layer, mb.owner) or [(mb.in_shape, mb.out_shape)]


def _positions(shape):
    return _spatial(shape) if shape else 0


def _dense_macs(mb):
    kh, kw = mb.kernel_size
    return sum(maths.conv_macs(mb.c, mb.n, kh, kw, _positions(out), 1) for _, out in _calls(mb))


def _pair_macs(mb, s, m):
    kh, kw = mb.kernel_size
    return sum(maths.basis_macs(mb.c, mb.n, kh, kw, s, m, _positions(out), 1)
               for _, out in _calls(mb))


def _fmt_macs(v):
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}MACs"
    return f"{v:g} MACs"


@dataclasses.dataclass
class Unit:
    """A group, its dense form and its admissible options (dense first unless forced)."""

    group: plan.Group
    dense: Option
    options: list
    why_dense: str = ""
    rank: int = 0
    align: int = 1


def _options(group, s_list, align, forced):
    """Pair options of ``group`` for each split choice (None: keep the members' s)."""
    members = group.members
    out, ranks = [], []
    for s in s_list:
        if s is not None:
            members[0].s = s
            group.p = members[0].c // s
        sv = plan.spectrum(group).astype(np.float64)
        norm = sum(float(np.sum(mb.kernel.astype(np.float64) ** 2)) for mb in members)
        tail = np.concatenate([np.cumsum((sv ** 2)[::-1])[::-1], [0.0]])
        rank = group.rank
        ranks.append(rank)
        ms = list(range(align, rank + 1, align)) or ([rank] if forced else [])
        for m in ms:
            err = len(members) * float(tail[min(m, len(sv))]) / norm if norm > 0 else 0.0
            macs = sum(_pair_macs(mb, mb.s, m) for mb in members)
            out.append(Option(members[0].s, m, err, macs, params=group.params(m),
                              splits=tuple(mb.s for mb in members)))
    return out, max(ranks)


def _latency_costs(units, settings):
    """Fill ``cost`` (ms per mode) and ``split_mode`` of every option from the table.

    A geometry the table lacks (no dense entry in that mode) is measured here
    in every form; where it holds the geometry, a form it lacks costs ``inf``
    (not a candidate), so that a table filled elsewhere (a phone) is never
    mixed with this machine's timings. A pair with ``s > 1`` on a layer whose
    transpose-free form is exact (``BasisConv2D(split_mode="dilated")``) is
    costed in both split forms; the option takes the one whose latency,
    summed over the modes as ratios to the dense layer's, is lower.
    """
    table = settings.table
    variants = ("batch", "dilated")
    sites = []  # (option, geometry, {variant: form})
    for unit in units:
        for mb_i, mb in enumerate(unit.group.members):
            for in_shape, _ in _calls(mb):
                geo = geometry_of(mb.layer, in_shape)
                for opt in unit.options:
                    if not opt.m:
                        sites.append((opt, geo, {"batch": "dense"}))
                        continue
                    s = opt.splits[mb_i]
                    forms = {"batch": pair_form(s, opt.m)}
                    if s > 1 and dilated_form_exact(geo.kernel_size, geo.strides,
                                                    geo.padding, geo.dilation_rate):
                        forms["dilated"] = pair_form(s, opt.m, dilated=True)
                    sites.append((opt, geo, forms))
    wanted = {}  # {geometry: [form, ...]}
    for _, geo, forms in sites:
        wanted.setdefault(geo, {"dense": None}).update(dict.fromkeys(forms.values()))
    timed = {mode: {} for mode in settings.modes}  # per mode: {geometry: {form: ms or None}}
    for geo, forms in wanted.items():
        to_measure = {}  # quantize -> threads whose dense timing the table lacks
        for quantize, threads in settings.modes:
            got = {f: table.get(geo, f, quantize, threads) for f in forms}
            timed[quantize, threads][geo] = got
            if got["dense"] is None:
                to_measure.setdefault(quantize, []).append(threads)
        for quantize, threads in to_measure.items():
            for t, got in _measure(table, geo, list(forms), quantize, threads).items():
                timed[quantize, t][geo].update(got or {})
    timed = [timed[mode] for mode in settings.modes]

    def ms(k, geo, form):
        v = timed[k][geo].get(form)
        return np.inf if v is None else float(v)

    totals, scores = {}, {}  # (id(option), variant) -> per-mode ms / summed ratio
    for opt, geo, forms in sites:
        dense = [ms(k, geo, "dense") for k in range(len(timed))]
        for variant in variants:
            form = forms.get(variant, forms["batch"])
            key = (id(opt), variant)
            per_mode = [ms(k, geo, form) for k in range(len(timed))]
            totals[key] = [a + b for a, b in zip(totals.get(key, [0.0] * len(timed)), per_mode)]
            scores[key] = scores.get(key, 0.0) + sum(
                v / d if np.isfinite(d) and d > 0 else v for v, d in zip(per_mode, dense))
    has_dilated = {id(opt) for opt, _, forms in sites if "dilated" in forms}
    for unit in units:
        for opt in unit.options:
            best = "batch"
            if id(opt) in has_dilated and (
                    scores[(id(opt), "dilated")] < scores[(id(opt), "batch")]):
                best = "dilated"
            opt.split_mode = best
            opt.cost = opt.cost + tuple(totals[(id(opt), best)])


def _measure(table, geo, forms, quantize, threads):
    """``{threads: {form: ms}}`` measured by ``table`` (each form converted once where
    the table can time several thread counts)."""
    if callable(getattr(table, "measure_threads", None)):
        return table.measure_threads(geo, forms, quantize, tuple(threads))
    return {t: table.measure(geo, forms, quantize, t) for t in threads}


def _mode_name(settings, k):
    if settings.objective != "latency":
        return ""
    quantize, threads = settings.modes[k]
    return f" ({quantize}, {threads} thread{'s' if threads > 1 else ''})"


def _fmt_cost(settings, v):
    if settings.objective == "latency":
        return f"{v:.3g} ms"
    return _fmt_macs(v) if settings.objective == "macs" else f"{v:,} weights"


def _why_dense(unit, pairs, settings):
    dense = unit.options[0]
    if not pairs:
        return (f"stays dense: rank bound {unit.rank} < its alignment {unit.align} "
                f"({_fmt_align(settings)}; no pair has an aligned m)")
    guarded = [o for o in pairs if o.macs <= settings.max_pair_macs * dense.macs]
    if not guarded and (settings.objective != "macs"
                        or min(o.macs for o in pairs) < dense.macs):
        best = min(pairs, key=lambda o: o.macs)
        return (f"stays dense: best pair s={best.s}, m={best.m} has {best.macs / dense.macs:.2f}x "
                f"its MACs ({_fmt_macs(best.macs)} vs dense {_fmt_macs(dense.macs)}), above "
                f"max_pair_macs={settings.max_pair_macs:g}")
    guarded = guarded or pairs

    def worst(o):
        ratios = [c / d if d > 0 else np.inf for c, d in zip(o.cost, dense.cost)]
        return max(ratios), int(np.argmax(ratios))

    best = min(guarded, key=lambda o: worst(o)[0])
    k = worst(best)[1]
    return (f"stays dense: best pair s={best.s}, m={best.m} costs "
            f"{_fmt_cost(settings, best.cost[k])} >= dense "
            f"{_fmt_cost(settings, dense.cost[k])}{_mode_name(settings, k)}")


def _units(groups, settings, splits_auto, forced):
    if isinstance(settings.multiple_of, dict):
        names = {mb.name for g in groups for mb in g.members}
        unknown = sorted(set(settings.multiple_of) - names)
        if unknown:
            raise ValueError(
                f"Invalid value for argument `multiple_of`: {unknown} are not layers being "
                f"compressed (candidates: {sorted(names)}). Received "
                f"multiple_of={settings.multiple_of!r}.")
    units = []
    for g in groups:
        s_list = [None]
        if splits_auto and not g.shared and settings.objective != "params":
            s_list = sorted({1, g.members[0].s})
        align = align_of(g, settings)
        pairs, rank = _options(g, s_list, align, forced)
        dense = Option(0, 0, 0.0, sum(_dense_macs(mb) for mb in g.members),
                       params=g.dense_params)
        units.append(Unit(g, dense, [dense] + pairs, rank=rank, align=align))
    if settings.objective == "latency":
        for unit in units:  # measure only what the MACs guard admits
            pairs = unit.options[1:]
            unit.options = [unit.dense] + [
                o for o in pairs if forced or o.macs <= settings.max_pair_macs * unit.dense.macs]
            if len(unit.options) == 1 and not forced:  # no cost needed to say why
                unit.why_dense = _why_dense(unit, pairs, settings)
        _latency_costs(units, settings)
    else:
        key = "params" if settings.objective == "params" else "macs"
        for unit in units:
            for o in unit.options:
                o.cost = (getattr(o, key),)
    for unit in units:
        dense = unit.options[0]
        pairs = [o for o in unit.options[1:] if np.all(np.isfinite(o.cost))]
        if forced and pairs:
            unit.options = pairs
            continue
        if len(pairs) < len(unit.options) - 1 and not pairs and not unit.why_dense:
            unit.why_dense = ("stays dense: latency_table holds its geometry but no pair form "
                              f"with m a multiple of {unit.align} (m <= rank bound "
                              f"{unit.rank})")
        kept = [o for o in pairs if o.macs <= settings.max_pair_macs * dense.macs
                and all(c < d for c, d in zip(o.cost, dense.cost))]
        if not kept and not unit.why_dense:
            unit.why_dense = _why_dense(unit, pairs, settings)
        unit.options = [dense] + kept
    return units


def allocate(model, groups, ratio, settings, splits_auto, forced, allocation):
    """Choose every group's form under ``settings``; returns ``(kept groups, skipped)``."""
    if not groups:
        return [], []
    units = _units(groups, settings, splits_auto, forced)
    nmodes = len(units[0].dense.cost)
    dense_cost = [sum(u.dense.cost[k] for u in units) for k in range(nmodes)]
    if settings.objective == "latency":
        for k, total in enumerate(dense_cost):
            if not total > 0:
                raise ValueError(
                    f"Invalid value for argument `latency_table`: the dense convolutions "
                    f"measure {total} ms{_mode_name(settings, k)}; cannot budget latency.")
        for u in units:
            for o in [u.dense] + u.options:
                o.scalar = sum(c / d for c, d in zip(o.cost, dense_cost))
        budget = ratio * nmodes
        limits = [ratio * d for d in dense_cost]
    else:
        for u in units:
            for o in [u.dense] + u.options:
                o.scalar = float(o.cost[0])
        rest = 0
        if settings.objective == "macs":
            total = count_macs(model)
            rest = total - dense_cost[0]
            budget = ratio * total - rest
        else:
            total = dense_cost[0]
            budget = ratio * total
        limits = [budget]

    def fits(picked):
        return picked is not None and all(
            sum(u.options[i].cost[k] for u, i in zip(units, picked)) <= lim * (1 + 1e-9)
            for k, lim in enumerate(limits))

    def solve(b):
        if allocation == "uniform":
            return choose_uniform([u.options for u in units],
                                  [u.dense.scalar for u in units], b)
        return choose([u.options for u in units], b)

    cheapest = [min(range(len(u.options)), key=lambda i: u.options[i].scalar) for u in units]
    if not fits(cheapest):
        _infeasible(model, units, cheapest, ratio, settings, dense_cost,
                    total if settings.objective != "latency" else None,
                    rest if settings.objective == "macs" else 0)
    picked = solve(budget)
    if not fits(picked):  # latency: tighten until every mode holds
        lo, hi, picked = sum(u.options[i].scalar for u, i in zip(units, cheapest)), budget, cheapest
        for _ in range(40):
            mid = (lo + hi) / 2
            trial = solve(mid)
            if fits(trial):
                lo, picked = mid, trial
            else:
                hi = mid
    return _apply(units, picked, settings)


def _infeasible(model, units, cheapest, ratio, settings, dense_cost, total, rest):
    if settings.objective == "latency":
        per_mode = [sum(u.options[i].cost[k] for u, i in zip(units, cheapest)) / d
                    for k, d in enumerate(dense_cost)]
        reach = max(per_mode)
        what = "latency of the compressible convolutions (every listed mode: " + ", ".join(
            f"{r:.3g}{_mode_name(settings, k)}" for k, r in enumerate(per_mode)) + (
            "; `latency_modes=` names the modes to budget" if len(per_mode) > 1 else "") + ")"
    else:
        reach = (rest + sum(u.options[i].cost[0] for u, i in zip(units, cheapest))) / total
        what = ("MACs of the whole model" if settings.objective == "macs"
                else "weights of the compressed convolutions")
    extra = (f"; {_fmt_macs(rest)} of its {_fmt_macs(total)} are in layers that are not "
             "compressed" if settings.objective == "macs" and rest else "")
    raise ValueError(
        f"Invalid value for argument `ratio`: objective={settings.objective!r} cannot reach "
        f"ratio={ratio:g} on model '{model.name}': the smallest reachable ratio of the {what} "
        f"is {reach:.4g} (every compressible convolution at its cheapest admissible form, "
        f"m aligned by {_fmt_align(settings)}, max_pair_macs={settings.max_pair_macs:g}"
        f"{extra}). Received ratio={ratio:g}."
    )


def _apply(units, picked, settings):
    kept, skipped = [], []
    for unit, i in zip(units, picked):
        g, opt = unit.group, unit.options[i]
        if not opt.m:
            why = unit.why_dense
            if not why:
                near = min(unit.options[1:], key=lambda o: o.error)
                label = {"params": "weights", "macs": "MACs"}.get(settings.objective, "latency")
                why = (f"stays dense: the allocation keeps it whole (its closest pair s={near.s}, "
                       f"m={near.m} would cost {near.scalar / opt.scalar:.2f}x the dense "
                       f"{label} for error {near.error:.3g})")
            skipped += [(mb.name, why) for mb in g.members]
            continue
        for mb, s in zip(g.members, opt.splits):
            mb.s = s
        if not g.shared:
            g.p = g.members[0].c // opt.s
        g.m = opt.m
        g.split_mode = opt.split_mode
        kept.append(g)
    return kept, skipped
