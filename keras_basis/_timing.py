"""Interleaved timing of ``.tflite`` files: the ratio-safe way to compare latencies.

One interpreter per file stays alive; every round times each file once (the
starting file rotates), so a change of machine load touches all the files
alike and ratios taken from one call share the machine's conditions.

A file faster than ``min_sample_ms`` is timed over several back-to-back
invocations per sample (as LiteRT's ``benchmark_model`` runs them): a single
invocation of a model that takes tens of microseconds is mostly timer and
thread wake-up jitter, worst with a thread pool (2+ threads).
"""

from __future__ import annotations

import math
import time

import numpy as np

from keras_basis import tflite

__all__ = ["paired_ratios", "time_interleaved"]


def _invalid(name, value, expected):
    return ValueError(f"Invalid value for argument `{name}`. Expected {expected}. "
                      f"Received {name}={value!r}.")


def _random_inputs(interp, rng):
    for d in interp.get_input_details():
        info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
        interp.set_tensor(d["index"], rng.integers(info.min, info.max, d["shape"], d["dtype"])
                          if info else rng.standard_normal(d["shape"]).astype(d["dtype"]))


def time_interleaved(contents, *, threads=1, runs=30, warmup=5, min_sample_ms=2.0,
                     samples=False):
    """Per-file latency (ms per invocation) of ``.tflite`` files timed round-robin.

    Args:
        contents: the files' bytes (or paths), one interpreter each.
        threads: interpreter threads (XNNPACK on).
        runs: timed rounds; warmup: untimed rounds first (at least one when
            ``min_sample_ms`` > 0: they size the samples).
        min_sample_ms: each sample of a file lasts at least about this long:
            ``ceil(min_sample_ms / warm-up median)`` invocations back to back,
            their mean being the sample; 0 times single invocations.
        samples: also return each file's per-round samples (``samples_ms``,
            for :func:`paired_ratios`).

    Returns:
        a list of dicts (``median_ms``, ``p90_ms``, ``min_ms``, ``reps``: the
        invocations per sample), one per file, in order.
    """
    for name, value, low in (("threads", threads, 1), ("runs", runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise _invalid(name, value, f"an int >= {low}")
    if (isinstance(min_sample_ms, bool) or not isinstance(min_sample_ms, (int, float))
            or not min_sample_ms >= 0):
        raise _invalid("min_sample_ms", min_sample_ms, "a number >= 0")
    rng = np.random.default_rng(0)
    interps = []
    for content in contents:
        interp = tflite._interpreter(content, int(threads), True, content=content)
        interp.allocate_tensors()
        _random_inputs(interp, rng)
        interps.append(interp)
    warm = np.zeros((len(interps), max(warmup, 1 if min_sample_ms else 0)))
    for r in range(warm.shape[1]):
        for i, interp in enumerate(interps):
            t0 = time.perf_counter()
            interp.invoke()
            warm[i, r] = time.perf_counter() - t0
    reps = [1 if not min_sample_ms else
            max(1, math.ceil(min_sample_ms / max(float(np.median(w)) * 1e3, 1e-6)))
            for w in warm]
    times = np.empty((len(interps), runs))
    for r in range(runs):
        for k in range(len(interps)):
            i = (r + k) % len(interps)
            interp, n = interps[i], reps[i]
            t0 = time.perf_counter()
            for _ in range(n):
                interp.invoke()
            times[i, r] = (time.perf_counter() - t0) / n
    times *= 1e3
    out = [{"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
            "min_ms": float(t.min()), "reps": n} for t, n in zip(times, reps)]
    if samples:
        for row, t in zip(out, times):
            row["samples_ms"] = t.tolist()
    return out


def paired_ratios(results, reference=0):
    """Each file's latency ratio to file ``reference``: the median over the rounds of
    the ratio of their samples in the same round.

    ``results`` is what ``time_interleaved(..., samples=True)`` returned. A
    round's files run within milliseconds of each other, so a load burst that
    lasts several rounds (another process, the host of a virtual machine)
    scales both samples of a round and drops out of their ratio; the ratio of
    the two medians keeps it when the burst covers the rounds unevenly.
    """
    try:
        base = np.asarray(results[reference]["samples_ms"], dtype=float)
        rows = [np.asarray(r["samples_ms"], dtype=float) for r in results]
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError("Invalid value for argument `results`. Expected the list "
                         "time_interleaved(..., samples=True) returns and a `reference` index "
                         f"into it. Received reference={reference!r} ({err!r}).") from None
    return [float(np.median(r / base)) for r in rows]
