"""Decomposition maths of the split-basis convolution (pure NumPy, no Keras).

Li, Gu, Van Gool, Timofte, "Learning Filter Basis for Convolutional Neural
Network Compression", ICCV 2019, Sec. 3 (Eqs. 12-17).

Notation (Keras kernel layout): a convolution kernel ``W`` has shape
``(kh, kw, c, n)``.  It is cut along the input channels into ``s`` splits of
``p = c / s`` channels.  Each of the ``n * s`` split filters
``W[:, :, g*p:(g+1)*p, i]`` is approximated by a combination of ``m`` basis
filters ``B[:, :, :, j]`` of shape ``(kh, kw, p)``::

    W[:, :, g*p:(g+1)*p, i] ~= sum_j A[g*m + j, i] * B[:, :, :, j]

``A`` (shape ``(s*m, n)``) is the kernel of the 1x1 coefficient convolution
that follows the basis convolution; its input channels are ordered
split-major (``g*m + j``), as in the authors' code.

The *split matrix* stacks the ``n*s`` vectorised split filters as columns,
giving a ``(p*kh*kw, n*s)`` matrix ``M`` with column ``g*n + i`` equal to
``W[:, :, g*p:(g+1)*p, i].reshape(-1)``.  The truncated SVD
``M ~= U_m S_m V_m^T`` is the Frobenius-optimal rank-``m`` approximation
(Eckart-Young): the basis is ``U_m`` and the coefficients ``S_m V_m^T``.

Cost convention: parameters count weights only (biases are reported
separately by callers); MACs are multiply-accumulates of one forward pass
for one image, FLOPs = 2 * MACs.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from keras_basis._checks import check_finite

__all__ = [
    "Decomposition",
    "split_matrix",
    "unsplit_matrix",
    "singular_values",
    "decompose",
    "decompose_shared",
    "reconstruct",
    "approximation_error",
    "rank_bound",
    "conv_params",
    "basis_params",
    "compression_rate",
    "conv_macs",
    "basis_macs",
    "optimal_splits",
    "num_basis_for_ratio",
    "rank_for_energy",
]


class Decomposition(NamedTuple):
    """Result of :func:`decompose`.

    Attributes:
        basis: ``(kh, kw, p, m)`` basis filters (orthonormal columns of the
            split matrix's left singular vectors).
        coefficients: ``(s*m, n)`` combination weights, split-major rows.
        singular_values: all singular values of the split matrix, descending.
    """

    basis: np.ndarray
    coefficients: np.ndarray
    singular_values: np.ndarray


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected an int. "
            f"Received {name}={value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer >= {minimum}. "
            f"Received {name}={value}."
        )
    return int(value)


def _check_kernel(kernel):
    kernel = check_finite("kernel", kernel)
    if kernel.ndim != 4:
        raise ValueError(
            "Invalid value for argument `kernel`. Expected a 4D array of shape "
            f"(kh, kw, c, n). Received kernel.shape={kernel.shape}."
        )
    return kernel


def _check_splits(splits, channels):
    splits = _check_int("splits", splits)
    if channels % splits:
        raise ValueError(
            "Invalid value for argument `splits`. Expected a divisor of the "
            f"number of input channels c={channels}. Received splits={splits}."
        )
    return splits


def split_matrix(kernel, splits):
    """Return the ``(p*kh*kw, n*s)`` split matrix of a ``(kh, kw, c, n)`` kernel.

    Column ``g*n + i`` is split filter ``kernel[:, :, g*p:(g+1)*p, i]``
    flattened in C order over ``(kh, kw, p)``.
    """
    kernel = _check_kernel(kernel)
    kh, kw, c, n = kernel.shape
    s = _check_splits(splits, c)
    p = c // s
    # (kh, kw, s, p, n) -> (kh, kw, p, s, n) -> (kh*kw*p, s*n)
    m = kernel.reshape(kh, kw, s, p, n).transpose(0, 1, 3, 2, 4)
    return m.reshape(kh * kw * p, s * n)


def unsplit_matrix(matrix, kernel_shape):
    """Inverse of :func:`split_matrix`: rebuild the kernel of ``kernel_shape``.

    ``kernel_shape`` is ``(kh, kw, c, n)``; the number of splits is inferred
    from the matrix shape.
    """
    matrix = np.asarray(matrix)
    kh, kw, c, n = (int(d) for d in kernel_shape)
    if matrix.ndim != 2 or matrix.shape[1] % n or (matrix.shape[1] // n) == 0:
        raise ValueError(
            "Invalid value for argument `matrix`. Expected a 2D array with a "
            f"multiple of n={n} columns. Received matrix.shape={matrix.shape}."
        )
    s = matrix.shape[1] // n
    if c % s or matrix.shape[0] != kh * kw * (c // s):
        raise ValueError(
            f"Invalid value for argument `matrix`: shape {matrix.shape} does not "
            f"match kernel_shape={tuple(kernel_shape)}."
        )
    p = c // s
    k = matrix.reshape(kh, kw, p, s, n).transpose(0, 1, 3, 2, 4)
    return k.reshape(kh, kw, c, n)


def singular_values(kernel, splits):
    """Singular values (descending) of the kernel's split matrix."""
    return np.linalg.svd(split_matrix(kernel, splits), compute_uv=False)


def rank_bound(c, n, kh, kw, splits):
    """Largest useful ``m``: ``min(p*kh*kw, n*s)`` (the split matrix rank bound)."""
    s = _check_splits(splits, _check_int("c", c))
    return min((c // s) * kh * kw, n * s)


def _svd_factors(matrix, num_basis):
    u, sv, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    m = num_basis
    r = sv.shape[0]
    basis = np.zeros((matrix.shape[0], m))
    coef = np.zeros((m, matrix.shape[1]))
    k = min(m, r)
    basis[:, :k] = u[:, :k]
    coef[:k] = sv[:k, None] * vt[:k]
    if m > k:
        # Pad with further orthonormal directions (unused, coefficient zero)
        # so the basis keeps the requested width.
        q, _ = np.linalg.qr(
            np.concatenate([u[:, :k], np.eye(matrix.shape[0])], axis=1)
        )
        extra = q[:, k:m]
        if extra.shape[1] < m - k:  # basis wider than its own dimension
            extra = np.concatenate(
                [extra, np.zeros((matrix.shape[0], m - k - extra.shape[1]))], axis=1
            )
        basis[:, k:] = extra
    return basis, coef, sv


def _coef_to_conv(coef, s, n, m):
    # coef: (m, s*n) with column g*n + i  ->  A[g*m + j, i]
    return coef.reshape(m, s, n).transpose(1, 0, 2).reshape(s * m, n)


def decompose(kernel, splits, num_basis):
    """Truncated-SVD split-basis decomposition of a conv kernel.

    Args:
        kernel: ``(kh, kw, c, n)`` array.
        splits: ``s``, a divisor of ``c``.
        num_basis: ``m >= 1``. With ``m >= rank_bound`` the decomposition is
            exact; extra basis filters get zero coefficients.

    Returns:
        :class:`Decomposition` with ``basis`` ``(kh, kw, p, m)`` and
        ``coefficients`` ``(s*m, n)``, in the kernel's dtype. The squared
        Frobenius error of ``reconstruct(basis, coefficients)`` equals the sum
        of the discarded squared singular values (Eckart-Young).
    """
    kernel = _check_kernel(kernel)
    kh, kw, c, n = kernel.shape
    s = _check_splits(splits, c)
    m = _check_int("num_basis", num_basis)
    basis, coef, sv = _svd_factors(split_matrix(kernel, s), m)
    dtype = kernel.dtype if np.issubdtype(kernel.dtype, np.floating) else np.float64
    return Decomposition(
        basis.reshape(kh, kw, c // s, m).astype(dtype),
        _coef_to_conv(coef, s, n, m).astype(dtype),
        sv,
    )


def decompose_shared(kernels: Sequence[np.ndarray], splits, num_basis):
    """Joint decomposition of several kernels sharing one basis.

    The split matrices of all kernels (same ``kh, kw`` and split depth ``p``;
    a kernel with fewer split channels than the deepest one is zero-padded,
    i.e. it uses the first channels of the basis) are concatenated column-wise
    and one truncated SVD gives the common basis.

    Args:
        kernels: list of ``(kh, kw, c_l, n_l)`` kernels.
        splits: int or list of ints, the ``s_l`` of each kernel.
        num_basis: ``m``.

    Returns:
        ``(basis, [coefficients_l], singular_values)`` with basis
        ``(kh, kw, p_max, m)``.
    """
    if not kernels:
        raise ValueError("Invalid value for argument `kernels`: expected at least one kernel.")
    kernels = [_check_kernel(k) for k in kernels]
    if isinstance(splits, (int, np.integer)):
        splits = [splits] * len(kernels)
    if len(splits) != len(kernels):
        raise ValueError(
            f"Invalid value for argument `splits`: expected {len(kernels)} values, "
            f"received {len(splits)}."
        )
    kh, kw = kernels[0].shape[:2]
    depths = []
    for k, s in zip(kernels, splits):
        if k.shape[:2] != (kh, kw):
            raise ValueError(
                "Invalid value for argument `kernels`: kernels sharing a basis must "
                f"have the same spatial size; got {kernels[0].shape[:2]} and {k.shape[:2]}."
            )
        depths.append(k.shape[2] // _check_splits(s, k.shape[2]))
    p = max(depths)
    for d, s in zip(depths, splits):
        if d != p and s != 1:
            raise ValueError(
                "Invalid value for argument `splits`: a kernel whose split depth "
                f"({d}) is smaller than the shared basis depth ({p}) must use "
                f"splits=1 (it uses the first {d} channels of the basis); got splits={s}."
            )
    m = _check_int("num_basis", num_basis)
    mats = []
    for k, s, d in zip(kernels, splits, depths):
        mat = split_matrix(k, s).reshape(kh, kw, d, -1)
        if d < p:
            mat = np.concatenate([mat, np.zeros((kh, kw, p - d, mat.shape[-1]))], axis=2)
        mats.append(mat.reshape(kh * kw * p, -1))
    basis, coef, sv = _svd_factors(np.concatenate(mats, axis=1), m)
    coefs, start = [], 0
    for k, s in zip(kernels, splits):
        width = k.shape[3] * s
        coefs.append(_coef_to_conv(coef[:, start:start + width], s, k.shape[3], m))
        start += width
    dtype = kernels[0].dtype if np.issubdtype(kernels[0].dtype, np.floating) else np.float64
    return (
        basis.reshape(kh, kw, p, m).astype(dtype),
        [c.astype(dtype) for c in coefs],
        sv,
    )


def reconstruct(basis, coefficients, channels=None):
    """Kernel ``(kh, kw, c, n)`` represented by a basis and its coefficients.

    Args:
        basis: ``(kh, kw, P, m)``.
        coefficients: ``(s*m, n)`` (a 1x1 conv kernel ``(1, 1, s*m, n)`` is
            accepted too).
        channels: input channels ``c`` of the layer. Defaults to ``s * P``;
            when smaller than the basis depth (``s = 1``, sliced sharing) the
            first ``c`` basis channels are used.
    """
    basis = check_finite("basis", basis)
    coefficients = check_finite("coefficients", coefficients)
    if coefficients.ndim == 4:
        coefficients = coefficients.reshape(coefficients.shape[-2:])
    if basis.ndim != 4 or coefficients.ndim != 2:
        raise ValueError(
            "Expected basis of shape (kh, kw, p, m) and coefficients of shape "
            f"(s*m, n). Received basis.shape={basis.shape}, "
            f"coefficients.shape={coefficients.shape}."
        )
    kh, kw, depth, m = basis.shape
    sm, n = coefficients.shape
    if sm % m:
        raise ValueError(
            f"coefficients have {sm} rows, which is not a multiple of the basis "
            f"size m={m}."
        )
    s = sm // m
    p = depth
    if channels is not None and channels != s * depth:
        if s != 1 or channels > depth:
            raise ValueError(
                f"Invalid value for argument `channels`: {channels} is neither "
                f"s*p={s * depth} nor a slice (<= {depth}) of a single-split basis."
            )
        p = channels
    b = basis[:, :, :p, :].reshape(kh * kw * p, m)
    a = coefficients.reshape(s, m, n).transpose(1, 0, 2).reshape(m, s * n)
    return unsplit_matrix(b @ a, (kh, kw, s * p, n))


def approximation_error(kernel, splits, num_basis, relative=False):
    """Squared Frobenius error of the best rank-``m`` split approximation.

    Equals the sum of the discarded squared singular values; with
    ``relative=True`` it is divided by ``||W||_F^2``.
    """
    sv = singular_values(kernel, splits)
    m = _check_int("num_basis", num_basis)
    err = float(np.sum(sv[m:] ** 2))
    if relative:
        total = float(np.sum(sv ** 2))
        return err / total if total > 0 else 0.0
    return err


def conv_params(c, n, kh, kw):
    """Weights of a dense ``kh x kw`` convolution ``c -> n`` (no bias)."""
    return c * n * kh * kw


def basis_params(c, n, kh, kw, splits, num_basis):
    """Weights of the basis form: ``m*p*kh*kw + m*n*s`` (no bias)."""
    s = _check_splits(splits, c)
    return num_basis * (c // s) * kh * kw + num_basis * n * s


def compression_rate(c, n, kh, kw, splits, num_basis):
    """Eq. 12: ``m/(n*s) + m/(p*kh*kw)`` = basis params / dense params."""
    return basis_params(c, n, kh, kw, splits, num_basis) / conv_params(c, n, kh, kw)


def conv_macs(c, n, kh, kw, out_h, out_w):
    """MACs of a dense conv producing an ``out_h x out_w`` map (one image)."""
    return c * n * kh * kw * out_h * out_w


def basis_macs(c, n, kh, kw, splits, num_basis, out_h, out_w):
    """MACs of the basis pair: ``(m*c*kh*kw + s*m*n) * out_h * out_w``.

    Every one of the ``s`` splits is convolved with the ``m`` basis filters
    (``s*m*p*kh*kw = m*c*kh*kw`` per position: a ``c -> m`` convolution's
    count) and the 1x1 coefficient conv maps ``s*m -> n`` channels.
    """
    s = _check_splits(splits, c)
    return (conv_macs(c, num_basis, kh, kw, out_h, out_w)
            + conv_macs(s * num_basis, n, 1, 1, out_h, out_w))


def optimal_splits(c, n, kh, kw):
    """Eq. 13 rounded to a divisor of ``c``.

    The continuous optimum is ``s* = sqrt(c*kh*kw/n)``.  Since the rate
    ``m * (1/(n*s) + s/(c*kh*kw))`` is convex in ``s`` with ``m`` a common
    factor, the divisor of ``c`` with the smallest rate is returned (this is
    one of the two divisors that bracket ``s*``).  Tie rule: on equal rate the
    smaller ``s`` (deeper basis) wins.
    """
    c = _check_int("c", c)
    n = _check_int("n", n)
    area = kh * kw
    best, best_rate = None, math.inf
    for s in range(1, c + 1):
        if c % s:
            continue
        rate = 1.0 / (n * s) + s / (c * area)
        if rate < best_rate * (1 - 1e-12):
            best, best_rate = s, rate
    return best


def num_basis_for_ratio(ratio, c, n, kh, kw, splits):
    """Largest ``m >= 1`` whose basis form keeps at most ``ratio`` of the weights.

    ``m = floor(ratio * c*n*kh*kw / (p*kh*kw + n*s))``, at least 1, and at
    most :func:`rank_bound` (beyond it the decomposition is already exact).
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)):
        raise TypeError(
            f"Invalid type for argument `ratio`. Expected a float. Received ratio={ratio!r}."
        )
    if not 0 < ratio <= 1:
        raise ValueError(
            f"Invalid value for argument `ratio`. Expected 0 < ratio <= 1. Received ratio={ratio}."
        )
    s = _check_splits(splits, c)
    per_basis = (c // s) * kh * kw + n * s
    m = int(math.floor(ratio * conv_params(c, n, kh, kw) / per_basis + 1e-9))
    return max(1, min(m, rank_bound(c, n, kh, kw, s)))


def rank_for_energy(singular_values, fraction):
    """Smallest ``m`` whose first ``m`` singular values keep ``fraction`` of the energy.

    The energy of a rank-``m`` truncation is ``sum_{j<m} sv_j^2 / sum_j sv_j^2``
    (the squared Frobenius norm it keeps, Eckart-Young); ``m`` is the first
    count reaching ``fraction`` (a relative tolerance of 1e-12 absorbs
    rounding), at most ``len(singular_values)``.

    Args:
        singular_values: 1D array, descending (e.g. :func:`singular_values`).
        fraction: the energy to keep, in (0, 1].

    Returns:
        int in ``[1, len(singular_values)]`` (1 for an all-zero spectrum).

    Example:

    >>> rank_for_energy([3.0, 2.0, 1.0], 0.9)   # 9/14 < 0.9 <= 13/14
    2
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise TypeError(
            "Invalid type for argument `fraction`. Expected a float in (0, 1]. "
            f"Received fraction={fraction!r}."
        )
    if not 0 < fraction <= 1:
        raise ValueError(
            "Invalid value for argument `fraction`. Expected 0 < fraction <= 1. "
            f"Received fraction={fraction}."
        )
    sv = check_finite("singular_values", np.asarray(singular_values, dtype=np.float64))
    sv = sv.reshape(-1)
    if sv.size == 0:
        raise ValueError(
            "Invalid value for argument `singular_values`. Expected at least one value. "
            "Received an empty array."
        )
    energy = sv ** 2
    kept = np.cumsum(energy) / max(energy.sum(), 1e-30)
    m = int(np.sum(kept < fraction - 1e-12)) + 1
    return min(m, sv.size)
