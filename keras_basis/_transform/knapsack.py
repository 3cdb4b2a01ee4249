"""The ``ratio`` allocation's solver: a multiple-choice knapsack over each unit's options.

One option per unit, the summed error minimal, the summed cost within a
budget: greedy over each unit's lower convex hull of ``(cost, error)`` (the
Lagrangian relaxation's order), then single option changes that fit the budget
left (:func:`choose`); or every unit at one common fraction of its dense cost
(:func:`choose_uniform`). ``objective.py`` builds the options.
"""

from __future__ import annotations

import dataclasses
import heapq

__all__ = ["Option", "choose", "choose_options", "choose_uniform"]


@dataclasses.dataclass
class Option:
    """One form of a unit: ``m == 0`` is the dense convolution."""

    s: int
    m: int
    error: float
    macs: int
    cost: tuple = ()  # one value per mode (params/macs: one)
    scalar: float = 0.0  # what choose() adds up
    params: int = 0
    splits: tuple = ()  # each member's s
    split_mode: str = "batch"  # the basis layer's split form (latency: the faster one)


def _hull(options):
    """Indices of the lower convex hull of (scalar cost, error), cheapest first."""
    order = sorted(range(len(options)), key=lambda i: (options[i].scalar, options[i].error))
    pareto = []
    for i in order:
        if not pareto or options[i].error < options[pareto[-1]].error:
            if pareto and options[i].scalar == options[pareto[-1]].scalar:
                pareto.pop()
            pareto.append(i)
    hull = []
    for i in pareto:
        while len(hull) >= 2:
            a, b = options[hull[-2]], options[hull[-1]]
            c = options[i]
            # b is above the chord a-c: drop it (slopes must increase)
            if ((b.error - a.error) * (c.scalar - a.scalar)
                    >= (c.error - a.error) * (b.scalar - a.scalar)):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def choose(units, budget):
    """Indices (one per unit) minimising the summed error with summed scalar <= budget.

    ``units`` is a list of lists of :class:`Option`. Returns None if even the
    cheapest options exceed the budget.
    """
    tol = 1e-9 * max(abs(budget), 1.0)
    hulls = [_hull(opts) for opts in units]
    pos = [0] * len(units)
    spent = sum(opts[h[0]].scalar for opts, h in zip(units, hulls))
    if spent > budget + tol:
        return None
    heap = []

    def push(u):
        if pos[u] + 1 < len(hulls[u]):
            a, b = units[u][hulls[u][pos[u]]], units[u][hulls[u][pos[u] + 1]]
            heapq.heappush(heap, (-(a.error - b.error) / (b.scalar - a.scalar), u))

    for u in range(len(units)):
        push(u)
    while heap:
        _, u = heapq.heappop(heap)
        a, b = units[u][hulls[u][pos[u]]], units[u][hulls[u][pos[u] + 1]]
        if spent + b.scalar - a.scalar > budget + tol:
            continue  # later hull points of u cost more still
        spent += b.scalar - a.scalar
        pos[u] += 1
        push(u)
    picked = [h[p] for h, p in zip(hulls, pos)]
    while True:  # single changes that fit the budget left and lower the error
        best = None
        for u, opts in enumerate(units):
            cur = opts[picked[u]]
            for i, o in enumerate(opts):
                gain = cur.error - o.error
                if gain > 1e-15 and spent + o.scalar - cur.scalar <= budget + tol and (
                        best is None or gain > best[0]):
                    best = (gain, u, i)
        if best is None:
            return picked
        _, u, i = best
        spent += units[u][i].scalar - units[u][picked[u]].scalar
        picked[u] = i


def choose_options(costs, errors, budget):
    """Multiple-choice knapsack: one option per unit, summed error minimal, summed cost
    within ``budget`` (the ``ratio`` allocation's solver, on plain numbers).

    Args:
        costs, errors: one sequence per unit, one value per option.
        budget: the bound on the summed cost.

    Returns:
        The chosen option index of each unit, or None when even the cheapest
        options exceed the budget.
    """
    units = [[Option(1, k, float(e), 0, cost=(float(c),), scalar=float(c))
              for k, (c, e) in enumerate(zip(cs, es))] for cs, es in zip(costs, errors)]
    return choose(units, budget)


def choose_uniform(units, dense, budget):
    """Every unit at most the same fraction of its dense scalar cost (the largest
    fraction that fits), its lowest-error option within it (its cheapest if none)."""
    def pick(frac):
        out = []
        for opts, d in zip(units, dense):
            fits = [i for i, o in enumerate(opts) if o.scalar <= frac * d * (1 + 1e-12)]
            out.append(min(fits, key=lambda i: (opts[i].error, opts[i].scalar)) if fits
                       else min(range(len(opts)), key=lambda i: opts[i].scalar))
        return out, sum(opts[i].scalar for opts, i in zip(units, out))

    picked, total = pick(0.0)
    if total > budget * (1 + 1e-9):
        return None
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if pick(mid)[1] <= budget * (1 + 1e-9):
            lo = mid
        else:
            hi = mid
    return pick(lo)[0]
