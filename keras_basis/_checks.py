"""The one finite check for arrays entering keras-basis (pure NumPy).

NaN or inf in calibration data, representative datasets, comparison inputs or
kernels never helps: the least-squares refit turns them into NaN weights, the
TFLite converter silently gives up on int8, and a NaN output "matches"
anything under ``max``. Every entry point calls :func:`check_finite` on what it
receives, so the error names the argument and says what was found.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_finite", "nonfinite"]


def nonfinite(array):
    """``(count, first_index, first_value)`` of the non-finite entries, or None.

    Integer, boolean and non-numeric arrays are finite by definition.
    """
    a = np.asarray(array)
    if a.dtype.kind in "biuOSU" or a.size == 0:
        return None
    try:
        finite = np.isfinite(a)
    except TypeError:  # a dtype NumPy cannot test (e.g. strings in an object array)
        return None
    if finite.all():
        return None
    bad = np.argwhere(~finite)
    first = tuple(int(i) for i in bad[0])
    return int(len(bad)), first, a[first] if first else a[()]


def check_finite(name, array, where=None):
    """Return ``np.asarray(array)``; raise if it holds NaN or inf.

    Args:
        name: the argument the array came in (quoted in the message).
        array: array-like.
        where: optional context, e.g. ``"sample 3"`` or ``"input 'x'"``.

    Returns:
        The array as a NumPy array.

    Raises:
        ValueError: naming ``name``, the expectation, the number of non-finite
            values, the size, and the first one with its index.

    Example:

    >>> check_finite("calibration_data", np.array([1.0, np.nan]))
    Traceback (most recent call last):
    ValueError: Invalid value for argument `calibration_data`: expected finite
    values (no NaN or inf). Received 1 non-finite value(s) of 2; the first is nan
    at index (1,).
    """
    a = np.asarray(array)
    found = nonfinite(a)
    if found is None:
        return a
    count, first, value = found
    context = f" ({where})" if where else ""
    raise ValueError(
        f"Invalid value for argument `{name}`{context}: expected finite values (no NaN "
        f"or inf). Received {count} non-finite value(s) of {a.size}; the first is "
        f"{value} at index {first}."
    )
