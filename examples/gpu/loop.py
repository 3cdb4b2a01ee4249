"""The GPU runner's outer loop: budget planning, lr milestones, checkpoints and resume.

The output folder follows ``examples.run`` (``args.json``, ``metrics.csv``,
``state.json`` naming the newest checkpoint; a rerun resumes after it). A checkpoint of
a paired run holds the states of all its members (weights, BatchNorm statistics and
optimiser slots, in ``Member.variables()`` order) and the plan, in one ``.npz`` file:
``ckpt-epochNNNN.npz``.

A "unit" is what one compiled call trains: an epoch (CIFAR) or a fixed number of steps
(SR). Without ``--epochs`` the number of units is fitted to ``--budget`` after the first
unit has been timed (the compile is done before), then cut again while the learning
rate has not yet changed if later units turn out slower; the lr milestones are
fractions of that plan (``examples.run.milestones``).
"""

from __future__ import annotations

import json
import time

import numpy as np

from examples import run
from keras_basis import fileio

__all__ = ["load_states", "save_states", "train_units", "units_that_fit"]

SAFETY = 0.95  # of the time left, when fitting the plan to the budget


def log(t0, *parts):
    print(f"[{time.time() - t0:7.1f}s]", *parts, flush=True)


def units_that_fit(done, planned, unit_s, deadline):
    """Planned units cut to what still fits before ``deadline`` (at least one more)."""
    fits = done + int((deadline - time.time()) / unit_s)
    return planned if fits >= planned else max(fits, done + 1)


def save_states(path, members, states, meta):
    """Writes the members' states and ``meta`` (JSON-able) to one ``.npz``, atomically."""
    arrays = {"meta": np.asarray(json.dumps({**meta, "members": [m.name for m in members]}))}
    for i, state in enumerate(states):
        for g, values in enumerate(state):
            for j, value in enumerate(values):
                arrays[f"{i}/{g}/{j}"] = np.asarray(value)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return fileio.atomic_write(path, write)


def load_states(path, members):
    """``(states, meta)`` from :func:`save_states`; checks names and shapes."""
    import jax.numpy as jnp

    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        names = [m.name for m in members]
        if meta["members"] != names:
            raise ValueError(f"Invalid checkpoint {path}: expected members {names}. "
                             f"Received members={meta['members']}.")
        states = []
        for i, m in enumerate(members):
            groups = []
            for g, group in enumerate(m.variables()):
                values = []
                for j, var in enumerate(group):
                    value = z[f"{i}/{g}/{j}"]
                    if value.shape != tuple(var.shape):
                        raise ValueError(
                            f"Invalid checkpoint {path}: variable {var.path} of {m.name} "
                            f"expected shape {tuple(var.shape)}. Received {value.shape}.")
                    values.append(jnp.asarray(value))
                groups.append(values)
            states.append(tuple(groups))
    return tuple(states), meta


def _checkpoint(rd, epoch, members, states, meta):
    """``examples.run`` order: checkpoint, then ``state.json``, then old ones removed."""
    name = f"ckpt-epoch{epoch:04d}.npz"
    save_states(rd.path / name, members, states, meta)
    run.write_json(rd.path / run.STATE_FILE, {"epoch": epoch, "checkpoint": name})
    for old in rd.path.glob("ckpt-epoch*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)
    rd.epoch, rd.checkpoint = epoch, rd.path / name


def train_units(args, rd, members, states, run_unit, evaluate, t0, meta=None):
    """Trains units until the plan is done, the budget is spent or ``--stop-after``.

    Args:
        args: ``lr``, ``lr_milestones``, ``lr_factor``, ``epochs`` (0: fit to the
            budget), ``max_epochs``, ``budget`` (seconds from ``t0``), ``eval_every``,
            ``checkpoint_every``, ``stop_after`` (0: no limit).
        rd: the ``examples.run.RunDir`` (its epoch is the first unit to train).
        members, states: the members and their states (resumed ones included).
        run_unit: ``run_unit(states, lr, unit)`` -> ``(states, losses)`` with losses
            ``(steps, members)``.
        evaluate: ``evaluate(states)`` -> dict of metrics, or None.
        t0: the start time of the run (``time.time()``).
        meta: the resumed checkpoint's meta (``{"units": plan}``) or None.

    Returns:
        ``(states, plan, done)``: the final states, the planned units and the units done.
    """
    deadline = t0 + args.budget
    plan = (meta or {}).get("units") or args.epochs or None
    fitted = not args.epochs  # the plan follows the budget (may be cut)
    u = rd.epoch
    unit_s, eval_s, stop = None, 0.0, u + args.stop_after if args.stop_after else None
    while plan is None or u < plan:
        cost = (unit_s or 0.0) + eval_s / args.eval_every
        if unit_s and fitted and u < min(run.milestones(args.lr_milestones, plan) or [plan]):
            fits = units_that_fit(u, plan, cost, deadline)
            if fits < plan:  # the lr has not changed yet: the schedule can still shrink
                plan = fits
                log(t0, f"re-planned: {plan} units, milestones "
                        f"{run.milestones(args.lr_milestones, plan)}")
        if (unit_s and time.time() + cost > deadline) or u == stop:
            log(t0, f"stopping before unit {u + 1} of {plan} (budget or --stop-after); "
                    f"resumable")
            break
        bounds = run.milestones(args.lr_milestones, plan) if plan else []
        lr = run.step_lr(u, args.lr, bounds, args.lr_factor)
        start = time.time()
        states, losses = run_unit(states, lr, u)
        losses = np.asarray(losses).mean(axis=0)  # waits for the device
        unit_s = time.time() - start
        row = {"epoch": u + 1, "lr": lr}
        row.update({f"{m.name}_loss": float(v) for m, v in zip(members, losses)})
        u += 1
        if plan is None or (evaluate and (u == plan or u % args.eval_every == 0)):
            start = time.time()
            row.update(evaluate(states) if evaluate else {})
            eval_s = time.time() - start if evaluate else 0.0
        if plan is None:  # the first unit is timed (compiled before): fit the plan
            left = (deadline - time.time()) * SAFETY
            plan = min(args.max_epochs, u + max(int(left / (unit_s + eval_s /
                                                             args.eval_every)), 0))
            log(t0, f"unit {unit_s:.2f} s, eval {eval_s:.2f} s -> plan {plan} units, "
                    f"milestones {run.milestones(args.lr_milestones, plan)}")
        row["seconds"] = round(unit_s, 3)
        rd.rows = [r for r in rd.rows if int(r["epoch"]) < u] + [row]
        rd.write_metrics()
        log(t0, json.dumps(row))
        if u % args.checkpoint_every == 0 or u == plan:
            _checkpoint(rd, u, members, states, {"units": plan})
    if rd.epoch < u:
        _checkpoint(rd, u, members, states, {"units": plan})
    return states, plan, u
