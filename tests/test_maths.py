"""The decomposition maths against direct NumPy constructions."""

import itertools
import math

import numpy as np
import pytest

from keras_basis import maths


def _kernel(rng, kh=3, kw=3, c=12, n=10):
    return rng.standard_normal((kh, kw, c, n)).astype(np.float64)


def test_split_matrix_columns_are_split_filters(rng):
    w = _kernel(rng, c=12, n=5)
    s, p = 3, 4
    m = maths.split_matrix(w, s)
    assert m.shape == (3 * 3 * p, 5 * s)
    for g, i in itertools.product(range(s), range(5)):
        np.testing.assert_array_equal(m[:, g * 5 + i], w[:, :, g * p : (g + 1) * p, i].ravel())
    np.testing.assert_array_equal(maths.unsplit_matrix(m, w.shape), w)


@pytest.mark.parametrize("shape,s,m", [((3, 3, 16, 8), 4, 5), ((1, 1, 24, 12), 3, 4),
                                       ((5, 3, 6, 9), 2, 7), ((3, 3, 8, 8), 8, 3)])
def test_decompose_reaches_eckart_young(rng, shape, s, m):
    w = rng.standard_normal(shape)
    d = maths.decompose(w, s, m)
    kh, kw, c, n = shape
    assert d.basis.shape == (kh, kw, c // s, m)
    assert d.coefficients.shape == (s * m, n)
    approx = maths.reconstruct(d.basis, d.coefficients)
    err = np.sum((w - approx) ** 2)
    expected = np.sum(d.singular_values[m:] ** 2)
    assert err == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert err == pytest.approx(maths.approximation_error(w, s, m), rel=1e-9, abs=1e-9)
    # Eckart-Young: a random rank-m factorisation of the same matrix is never better.
    mat = maths.split_matrix(w, s)
    b = rng.standard_normal((mat.shape[0], m))
    a, *_ = np.linalg.lstsq(b, mat, rcond=None)
    assert np.sum((mat - b @ a) ** 2) >= expected - 1e-9


def test_coefficients_are_split_major(rng):
    """W[:, :, g*p:(g+1)*p, i] == sum_j A[g*m + j, i] * B[..., j] (authors' order)."""
    w = _kernel(rng, c=8, n=6)
    s, m = 2, 5
    d = maths.decompose(w, s, m)
    p = 4
    for g, i in itertools.product(range(s), range(6)):
        direct = sum(d.coefficients[g * m + j, i] * d.basis[..., j] for j in range(m))
        np.testing.assert_allclose(
            maths.reconstruct(d.basis, d.coefficients)[:, :, g * p : (g + 1) * p, i], direct
        )


def test_full_rank_is_exact_and_extra_basis_is_padded(rng):
    w = _kernel(rng, c=4, n=6)
    bound = maths.rank_bound(4, 6, 3, 3, 2)  # min(2*9, 6*2) = 12
    assert bound == 12
    for m in (bound, bound + 3):
        d = maths.decompose(w, 2, m)
        assert d.basis.shape[-1] == m
        np.testing.assert_allclose(maths.reconstruct(d.basis, d.coefficients), w, atol=1e-10)


def test_s1_equals_3d_low_rank(rng):
    """s = 1 is Zhang et al.'s low-rank decomposition of the (kh*kw*c, n) matrix."""
    w = _kernel(rng, c=6, n=8)
    m = 3
    mat = w.reshape(-1, 8)
    u, sv, vt = np.linalg.svd(mat, full_matrices=False)
    direct = ((u[:, :m] * sv[:m]) @ vt[:m]).reshape(w.shape)
    d = maths.decompose(w, 1, m)
    np.testing.assert_allclose(maths.reconstruct(d.basis, d.coefficients), direct, atol=1e-10)


def test_s_equals_c_is_channel_wise(rng):
    """s = c is Jaderberg et al.'s channel-wise decomposition: every 2D filter of every
    input channel is a combination of m shared kh x kw filters."""
    w = _kernel(rng, c=5, n=4)
    m = 4
    cols = np.stack([w[:, :, ch, i].ravel() for ch in range(5) for i in range(4)], axis=1)
    u, sv, vt = np.linalg.svd(cols, full_matrices=False)
    low = (u[:, :m] * sv[:m]) @ vt[:m]
    direct = np.zeros_like(w)
    for k, (ch, i) in enumerate(itertools.product(range(5), range(4))):
        direct[:, :, ch, i] = low[:, k].reshape(3, 3)
    d = maths.decompose(w, 5, m)
    assert d.basis.shape == (3, 3, 1, m)
    np.testing.assert_allclose(maths.reconstruct(d.basis, d.coefficients), direct, atol=1e-10)


def test_decompose_shared_joint_svd_and_slicing(rng):
    w1 = _kernel(rng, c=8, n=8)
    w2 = _kernel(rng, c=8, n=4)
    w3 = _kernel(rng, c=3, n=5)  # sliced: uses the first 3 of 4 basis channels
    basis, coefs, sv = maths.decompose_shared([w1, w2, w3], [2, 2, 1], 6)
    assert basis.shape == (3, 3, 4, 6)
    err = sum(
        np.sum((w - maths.reconstruct(basis, a, channels=w.shape[2])) ** 2)
        for w, a in zip([w1, w2, w3], coefs)
    )
    # The joint SVD minimises the error over the zero-padded matrix; the sliced layer
    # never sees the padding, so its real error is that minus the padding's share.
    pad = np.concatenate([w3, np.zeros((3, 3, 1, 5))], axis=2)
    pad_err = np.sum(maths.reconstruct(basis, coefs[2])[:, :, 3:, :] ** 2)
    assert err + pad_err == pytest.approx(np.sum(sv[6:] ** 2), rel=1e-9)
    # the joint SVD is the SVD of the concatenated (zero-padded) split matrices
    mats = [maths.split_matrix(w1, 2), maths.split_matrix(w2, 2), pad.reshape(36, 5)]
    np.testing.assert_allclose(
        sv, np.linalg.svd(np.concatenate(mats, axis=1), compute_uv=False), rtol=1e-10
    )


def test_rates_and_costs():
    c, n, kh, kw, s, m = 64, 64, 3, 3, 2, 14
    p = c // s
    assert maths.conv_params(c, n, kh, kw) == 36864
    assert maths.basis_params(c, n, kh, kw, s, m) == m * p * 9 + m * n * s == 5824
    assert maths.compression_rate(c, n, kh, kw, s, m) == pytest.approx(m / (n * s) + m / (p * 9))
    # Eq. 12 with s = 1 and s = c reduces to Eqs. 7 and 8
    assert maths.compression_rate(c, n, kh, kw, 1, m) == pytest.approx(m / n + m / (c * 9))
    assert maths.compression_rate(c, n, kh, kw, c, m) == pytest.approx(m / (n * c) + m / 9)
    # MACs: s splits x (p*kh*kw*m) per position + 1x1 (s*m -> n), per output pixel
    assert maths.conv_macs(c, n, kh, kw, 10, 8) == c * n * 9 * 80
    assert maths.basis_macs(c, n, kh, kw, s, m, 10, 8) == (s * p * 9 * m + s * m * n) * 80


@pytest.mark.parametrize("c,n,k", [(64, 64, 3), (16, 16, 3), (256, 256, 3), (444, 12, 3),
                                   (48, 96, 1), (12, 40, 5), (7, 7, 3)])
def test_optimal_splits_is_best_divisor(c, n, k):
    s = maths.optimal_splits(c, n, k, k)
    divisors = [d for d in range(1, c + 1) if c % d == 0]
    rates = {d: maths.compression_rate(c, n, k, k, d, 1) for d in divisors}
    best = min(rates.values())
    assert rates[s] == pytest.approx(best)
    assert s == min(d for d in divisors if rates[d] <= best * (1 + 1e-12))  # tie -> smaller s
    s_star = math.sqrt(c * k * k / n)
    lower = max([d for d in divisors if d <= s_star], default=1)
    upper = min([d for d in divisors if d >= s_star], default=c)
    assert s in (lower, upper)


def test_optimal_splits_known_values():
    assert maths.optimal_splits(64, 64, 3, 3) == 4  # s* = 3 -> best divisor 4
    assert maths.optimal_splits(128, 128, 3, 3) == 4
    assert maths.optimal_splits(16, 16, 1, 1) == 1


@pytest.mark.parametrize("ratio", [0.05, 0.2, 0.5, 1.0])
def test_num_basis_for_ratio(ratio):
    c, n, k, s = 64, 128, 3, 4
    m = maths.num_basis_for_ratio(ratio, c, n, k, k, s)
    dense = maths.conv_params(c, n, k, k)
    bound = maths.rank_bound(c, n, k, k, s)
    assert 1 <= m <= bound
    if m < bound and m > 1:
        assert maths.basis_params(c, n, k, k, s, m) <= ratio * dense
        assert maths.basis_params(c, n, k, k, s, m + 1) > ratio * dense


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda w: maths.split_matrix(w, 5), ValueError,
         r"`splits`.*divisor.*c=12.*splits=5"),
        (lambda w: maths.split_matrix(w, 2.0), TypeError, r"`splits`.*int.*splits=2.0"),
        (lambda w: maths.decompose(w, 2, 0), ValueError, r"`num_basis`.*>= 1.*num_basis=0"),
        (lambda w: maths.decompose(w, 2, -3), ValueError, r"num_basis=-3"),
        (lambda w: maths.decompose(w[0], 2, 3), ValueError, r"`kernel`.*4D.*\(3, 12, 10\)"),
        (lambda w: maths.num_basis_for_ratio(1.5, 12, 10, 3, 3, 2), ValueError,
         r"`ratio`.*0 < ratio <= 1.*ratio=1.5"),
        (lambda w: maths.num_basis_for_ratio(0, 12, 10, 3, 3, 2), ValueError, r"ratio=0"),
        (lambda w: maths.num_basis_for_ratio("a", 12, 10, 3, 3, 2), TypeError, r"ratio='a'"),
        (lambda w: maths.decompose_shared([w, w[:2]], 1, 2), ValueError, r"spatial size"),
    ],
)
def test_bad_arguments(rng, call, exc, match):
    with pytest.raises(exc, match=match):
        call(_kernel(rng))


# ------------------------------------------------------------ rank_for_energy
@pytest.mark.parametrize("sv,fraction,expected", [
    ([3.0, 2.0, 1.0], 0.9, 2),     # energies 9, 4, 1 of 14: 9/14 < 0.9 <= 13/14
    ([3.0, 2.0, 1.0], 13 / 14, 2),  # exactly reached (rounding absorbed)
    ([3.0, 2.0, 1.0], 0.95, 3),
    ([3.0, 2.0, 1.0], 0.5, 1),
    ([3.0, 2.0, 1.0], 1.0, 3),
    ([1.0, 0.0, 0.0], 0.99, 1),
    ([0.0, 0.0], 0.9, 2),           # no energy: clipped to the length
])
def test_rank_for_energy_by_hand(sv, fraction, expected):
    assert maths.rank_for_energy(np.array(sv), fraction) == expected


def test_rank_for_energy_is_the_first_truncation_keeping_the_energy(rng):
    w = rng.standard_normal((3, 3, 8, 6))
    sv = maths.singular_values(w, 2)
    total = np.sum(w ** 2)
    for fraction in (0.5, 0.9, 0.99):
        m = maths.rank_for_energy(sv, fraction)
        kept = lambda k: 1 - maths.approximation_error(w, 2, k) / total  # noqa: E731
        assert kept(m) >= fraction - 1e-12
        assert m == 1 or kept(m - 1) < fraction


@pytest.mark.parametrize("fraction,exc,match", [
    (0.0, ValueError, r"`fraction`.*0 < fraction <= 1.*fraction=0.0"),
    (1.5, ValueError, r"fraction=1.5"),
    ("0.9", TypeError, r"`fraction`.*fraction='0.9'"),
    (True, TypeError, r"fraction=True"),
])
def test_rank_for_energy_bad_fraction(fraction, exc, match):
    with pytest.raises(exc, match=match):
        maths.rank_for_energy([1.0], fraction)
    with pytest.raises(ValueError, match="`singular_values`.*at least one"):
        maths.rank_for_energy([], 0.9)
