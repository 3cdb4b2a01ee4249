"""PSNR / SSIM of the SR recipes against hand-computed values and scikit-image."""


import numpy as np
import pytest

from examples.div2k import metrics as M

KY = np.array([65.738, 129.057, 25.064]) / 256.0
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def test_rgb_to_y_bt601_values():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 20, 30]]], dtype=np.uint8)
    y = M.rgb_to_y(img)
    expected = [16.0, 16 + 219.859 * 255 / 256, 16 + 65.738 * 255 / 256,
                16 + (657.38 + 2581.14 + 751.92) / 256]
    np.testing.assert_allclose(y[0], expected, rtol=0, atol=1e-12)
    assert y[0, 1] == pytest.approx(235.0, abs=0.01)


def test_quantize_rounds_and_clips():
    out = M.quantize([-3.0, 10.4, 10.6, 254.6, 300.0])
    np.testing.assert_array_equal(out, [0, 10, 11, 255, 255])


def test_psnr_y_one_pixel_by_hand():
    hr = np.zeros((20, 20, 3))
    sr = hr.copy()
    sr[7, 9, 0] = 100  # red +100 at one interior pixel
    dy = 65.738 / 256 * 100
    mse = dy**2 / (16 * 16)  # shave 2 leaves 16 x 16 pixels of Y
    assert M.psnr(sr, hr, shave=2) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)


def test_psnr_ignores_shaved_border_and_extra_hr():
    hr = np.full((24, 22, 3), 50.0)
    sr = hr[:20, :20].copy()
    sr[1, 5] = 255          # inside the 2-pixel border: shaved
    hr[20:, :] = 0          # beyond the SR size: cropped
    assert M.psnr(sr, hr, shave=2) == float("inf")
    assert np.isfinite(M.psnr(sr, hr, shave=1))


def test_psnr_rgb_by_hand_and_skimage():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (30, 30, 3)).astype(np.float64)
    sr = hr.copy()
    sr[3, 4, 1] += 10
    assert M.psnr(sr, hr, 0, y_only=False) == pytest.approx(
        10 * np.log10(255**2 / (100 / (30 * 30 * 3))), abs=1e-10
    )
    from skimage.metrics import peak_signal_noise_ratio

    sr = np.clip(hr + rng.normal(0, 7, hr.shape), 0, 255).round()
    assert M.psnr(sr, hr, 3, y_only=False) == pytest.approx(
        peak_signal_noise_ratio(hr[3:-3, 3:-3], sr[3:-3, 3:-3], data_range=255), abs=1e-10
    )


def test_ssim_constant_images_closed_form():
    x = np.full((16, 16, 3), 100.0)
    y = np.full((16, 16, 3), 120.0)
    expected = (2 * 100 * 120 + C1) / (100**2 + 120**2 + C1)  # sigma terms = C2 / C2
    assert M.ssim(x, y, 0, y_only=False) == pytest.approx(expected, abs=1e-12)


def test_ssim_single_window_by_hand():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (11, 11)).astype(np.float64)
    y = np.clip(x + rng.normal(0, 30, x.shape), 0, 255)
    # One 11x11 window: weighted statistics written out with loops.
    g = [np.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)]
    w = np.array([[gi * gj for gj in g] for gi in g])
    w /= w.sum()
    mx = sum(w[i, j] * x[i, j] for i in range(11) for j in range(11))
    my = sum(w[i, j] * y[i, j] for i in range(11) for j in range(11))
    vx = sum(w[i, j] * (x[i, j] - mx) ** 2 for i in range(11) for j in range(11))
    vy = sum(w[i, j] * (y[i, j] - my) ** 2 for i in range(11) for j in range(11))
    cxy = sum(w[i, j] * (x[i, j] - mx) * (y[i, j] - my) for i in range(11) for j in range(11))
    expected = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    rgb = lambda a: np.repeat(a[..., None], 3, axis=-1)  # noqa: E731
    assert M.ssim(rgb(x), rgb(y), 0, y_only=False) == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_skimage_on_y_and_rgb():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (9, 12, 3)).astype(np.float64)
    hr = np.kron(base, np.ones((5, 5, 1)))  # piecewise-flat image, 45 x 60
    sr = np.clip(hr + rng.normal(0, 12, hr.shape), 0, 255).round()
    opts = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    y_sr = 16 + sr @ KY
    y_hr = 16 + hr @ KY
    s = 4
    expected = structural_similarity(y_hr[s:-s, s:-s], y_sr[s:-s, s:-s], **opts)
    assert M.ssim(sr, hr, shave=s) == pytest.approx(expected, abs=1e-10)
    expected_rgb = np.mean([
        structural_similarity(hr[..., c], sr[..., c], **opts) for c in range(3)
    ])
    assert M.ssim(sr, hr, shave=0, y_only=False) == pytest.approx(expected_rgb, abs=1e-10)
    assert 0.0 < expected < 1.0


def test_sr_metrics_protocols_shave_and_channel():
    hr = np.full((60, 60, 3), 128.0)
    sr = hr.copy()
    sr[6, 30] += 40.0  # row 6: inside the DIV2K shave (4 + 6 = 10), outside shave 4
    p_bench, s_bench = M.sr_metrics(sr, hr, 4, "benchmark")
    p_div2k, s_div2k = M.sr_metrics(sr, hr, 4, "div2k")
    assert p_div2k == float("inf") and s_div2k == pytest.approx(1.0)
    dy = 40.0 * KY.sum()
    assert p_bench == pytest.approx(10 * np.log10(255**2 * 52 * 52 / dy**2), abs=1e-9)
    assert s_bench < 1.0
    # the output is quantised: +0.4 everywhere rounds away
    assert M.sr_metrics(hr + 0.4, hr, 2)[0] == float("inf")


def test_grey_ground_truth_is_replicated():
    hr = np.full((20, 20), 77.0)
    sr = np.full((20, 20, 3), 77.0)
    assert M.psnr(sr, hr, 2) == float("inf")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.sr_metrics(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), 4, "y"),
         r"argument `protocol`. Expected 'benchmark' or 'div2k'. Received protocol='y'"),
        (lambda: M.psnr(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), shave=4),
         r"argument `shave`: 4 border pixels leave nothing of a 8x8 image"),
        (lambda: M.psnr(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), shave=-1),
         r"argument `shave`. Expected an int >= 0. Received shave=-1"),
        (lambda: M.psnr(np.zeros((10, 10, 3)), np.zeros((8, 8, 3))),
         r"ground truth \(8x8\) is smaller than the super-resolved image \(10x10\)"),
        (lambda: M.ssim(np.zeros((12, 12, 3)), np.zeros((12, 12, 3)), shave=2),
         r"8x8 after shaving is smaller than the 11x11 SSIM window"),
        (lambda: M.rgb_to_y(np.zeros((4, 4))),
         r"argument `image`. Expected an \(H, W, 3\) RGB array. Received shape \(4, 4\)"),
    ],
)
def test_metric_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
