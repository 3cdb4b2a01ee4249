"""Sizing a compression: the checks and the plan shared by compress() and spectra().

``plan_groups`` runs selection, splits, share groups and the choice of ``m``
(``num_basis`` or the ``ratio`` allocation under the objective of
``_transform/objective.py``) without building any layer, so that
``keras_basis.transform.spectra`` reports exactly the ``m`` that ``compress``
would use.
"""

from __future__ import annotations

import numbers

from keras_basis._transform import graph, objective, plan

ALLOCATIONS = ("error", "uniform")


def check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise TypeError(
            "Invalid type for argument `ratio`. Expected a float in (0, 1]. "
            f"Received ratio={ratio!r} of type {type(ratio).__name__}."
        )
    if not 0 < ratio <= 1:
        raise ValueError(
            f"Invalid value for argument `ratio`. Expected 0 < ratio <= 1. Received ratio={ratio}."
        )
    return float(ratio)


def resolve_num_basis(groups, num_basis):
    for g in groups:
        value = None
        if isinstance(num_basis, dict):
            if g.name in num_basis:
                value = num_basis[g.name]
            else:
                for mb in g.members:
                    if mb.name in num_basis:
                        value = num_basis[mb.name]
                        break
            if value is None:
                continue  # left uncompressed: caller drops groups with m == 0
        elif callable(num_basis):
            value = num_basis(g.members[0].layer)
        else:
            value = num_basis
        value = plan.check_int("num_basis", value, g.members[0].name)
        g.m = min(value, g.rank)


def check_size(model, num_basis, ratio, allocation):
    """Checks at the door shared by compress() and spectra(); returns ``ratio``."""
    graph.check_model(model)
    if (num_basis is None) == (ratio is None):
        raise ValueError(
            "Expected exactly one of the arguments `num_basis` and `ratio`. Received "
            f"num_basis={num_basis!r}, ratio={ratio!r}."
        )
    if ratio is not None:
        ratio = check_ratio(ratio)
    if allocation not in ALLOCATIONS:
        raise ValueError(
            f"Invalid value for argument `allocation`. Expected one of {ALLOCATIONS}. "
            f"Received allocation={allocation!r}."
        )
    if isinstance(num_basis, (bool, str, float)):
        raise TypeError(
            "Invalid type for argument `num_basis`. Expected an int, a dict or a callable. "
            f"Received num_basis={num_basis!r}."
        )
    return ratio


def plan_groups(model, num_basis, splits, ratio, layers, share, allocation, settings=None):
    """Selection, splits, share groups and each group's ``m``, without any model.

    ``settings`` (:class:`objective.Settings`, from ``objective.check``) is the
    ``ratio`` budget's objective; None is the historical parameter budget.

    Returns ``(groups, skipped)``: the :class:`plan.Group` records to build
    (``m`` set, members' ``s`` set) and ``(layer name, reason)`` of the
    convolutions left dense.
    """
    candidates, skipped, forced = plan.select(model, layers)
    members = [plan.make_member(ly, ow) for ly, ow in candidates]
    member_names = {mb.name for mb in members}
    plan.check_dict_keys("splits", splits, member_names)
    plan.resolve_splits(members, splits)
    splits_auto = isinstance(splits, str) and splits == "auto"
    taken = {ly.name for ly, _ in graph.walk(model)}
    groups = plan.make_groups(members, share, splits_auto, taken)

    if num_basis is not None:
        plan.check_dict_keys("num_basis", num_basis, member_names | {g.name for g in groups})
        resolve_num_basis(groups, num_basis)
        for g in groups:
            if not g.m:
                skipped += [(mb.name, "not in `num_basis`") for mb in g.members]
        groups = [g for g in groups if g.m]
    elif settings is not None and not settings.today:
        groups, dense = objective.allocate(model, groups, ratio, settings, splits_auto, forced,
                                           allocation)
        return groups, skipped + dense
    else:
        for g in groups:
            plan.spectrum(g)
        plan.allocate(groups, ratio, allocation)
    if not forced:
        kept = []
        for g in groups:
            if g.params() >= g.dense_params:
                why = (f"no parameter saving (s={g.members[0].s}, m={g.m}: "
                       f"{g.params()} >= {g.dense_params} weights)")
                skipped += [(mb.name, why) for mb in g.members]
            else:
                kept.append(g)
        groups = kept

    return groups, skipped
