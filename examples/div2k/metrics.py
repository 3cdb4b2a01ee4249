"""PSNR and SSIM as used in the SR literature (EDSR / the authors' code), in NumPy.

Conventions (paper and EDSR code):

- The network output is quantised first: ``clip(round(sr), 0, 255)``.
- The HR image is cropped to the SR size (LR size x scale).
- Benchmark sets (Set5, Set14, B100, Urban100): metrics on the Y channel of
  ITU-R BT.601, ``Y = 16 + (65.738 R + 129.057 G + 25.064 B) / 256`` computed in
  floating point (not rounded to integers), ``shave = scale`` border pixels removed.
- DIV2K validation: RGB, ``shave = scale + 6``.
- PSNR: ``10 log10(255^2 / MSE)`` over all remaining pixels (and channels).
- SSIM (Wang et al., 2004, as in the common SR code): 11x11 Gaussian window with
  sigma 1.5, ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, statistics over
  'valid' windows only (no padding), population (biased) variances, mean of the SSIM
  map; for RGB the mean over the three channels.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BT601_Y",
    "crop_to",
    "gaussian_window",
    "psnr",
    "quantize",
    "rgb_to_y",
    "sr_metrics",
    "ssim",
]

BT601_Y = (65.738 / 256.0, 129.057 / 256.0, 25.064 / 256.0)


def quantize(image):
    """Rounds a network output to 0-255 integers (kept as float64)."""
    return np.clip(np.round(np.asarray(image, dtype=np.float64)), 0.0, 255.0)


def rgb_to_y(image):
    """Y of BT.601 (16-235 range, float) of an ``(H, W, 3)`` RGB image in 0-255."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"Invalid value for argument `image`. Expected an (H, W, 3) RGB array. "
            f"Received shape {image.shape}."
        )
    return 16.0 + image @ np.asarray(BT601_Y)


def crop_to(hr, shape):
    """Top-left crop of ``hr`` to ``shape[:2]`` (HR cropped to LR size x scale)."""
    h, w = shape[:2]
    if hr.shape[0] < h or hr.shape[1] < w:
        raise ValueError(
            f"Invalid value for argument `hr`: the ground truth ({hr.shape[0]}x"
            f"{hr.shape[1]}) is smaller than the super-resolved image ({h}x{w})."
        )
    return hr[:h, :w]


def _prepare(sr, hr, shave, y_only):
    sr = np.asarray(sr, dtype=np.float64)
    hr = np.asarray(hr, dtype=np.float64)
    if hr.ndim == 2:
        hr = np.repeat(hr[..., None], 3, axis=-1)
    if sr.ndim == 2:
        sr = np.repeat(sr[..., None], 3, axis=-1)
    hr = crop_to(hr, sr.shape)
    if sr.shape != hr.shape:
        raise ValueError(
            f"Invalid value for argument `sr`: shapes differ, sr {sr.shape} vs hr {hr.shape}."
        )
    if isinstance(shave, bool) or not isinstance(shave, (int, np.integer)) or shave < 0:
        raise ValueError(
            f"Invalid value for argument `shave`. Expected an int >= 0. Received shave={shave!r}."
        )
    if y_only:
        sr, hr = rgb_to_y(sr)[..., None], rgb_to_y(hr)[..., None]
    if shave:
        if min(sr.shape[:2]) <= 2 * shave:
            raise ValueError(
                f"Invalid value for argument `shave`: {shave} border pixels leave nothing "
                f"of a {sr.shape[0]}x{sr.shape[1]} image."
            )
        sr = sr[shave:-shave, shave:-shave]
        hr = hr[shave:-shave, shave:-shave]
    return sr, hr


def psnr(sr, hr, shave=0, y_only=True):
    """Peak signal-to-noise ratio in dB (peak 255).

    Args:
        sr: ``(H, W, 3)`` quantised output (0-255).
        hr: ground truth, at least as large (cropped to ``sr``'s size).
        shave: border pixels removed on every side.
        y_only: compare the BT.601 Y channel (benchmark sets) or RGB (DIV2K).

    Returns:
        float, ``inf`` for identical images.

    Example:

    >>> psnr(quantize(model_output), hr, shave=4)
    """
    sr, hr = _prepare(sr, hr, shave, y_only)
    mse = float(np.mean((sr - hr) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def gaussian_window(size=11, sigma=1.5):
    """Normalised 1D Gaussian taps ``exp(-x^2 / (2 sigma^2))``, x centred."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(image, taps):
    """Separable 'valid' correlation of a 2D array with ``outer(taps, taps)``."""
    k = len(taps)
    h, w = image.shape
    rows = sum(taps[i] * image[i : h - k + 1 + i, :] for i in range(k))
    return sum(taps[j] * rows[:, j : w - k + 1 + j] for j in range(k))


def _ssim_channel(x, y, taps, c1, c2):
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    sxx = _filter_valid(x * x, taps) - mu_x**2
    syy = _filter_valid(y * y, taps) - mu_y**2
    sxy = _filter_valid(x * y, taps) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def ssim(sr, hr, shave=0, y_only=True, window=11, sigma=1.5):
    """Structural similarity, the standard SR-paper way (see the module docstring).

    Args:
        sr: ``(H, W, 3)`` quantised output (0-255).
        hr: ground truth, at least as large (cropped to ``sr``'s size).
        shave: border pixels removed before filtering.
        y_only: on the BT.601 Y channel, else the mean over R, G, B.
        window: Gaussian window size (11).
        sigma: Gaussian standard deviation (1.5).

    Returns:
        float in [-1, 1].

    Example:

    >>> ssim(quantize(model_output), hr, shave=4)
    """
    sr, hr = _prepare(sr, hr, shave, y_only)
    if min(sr.shape[:2]) < window:
        raise ValueError(
            f"Invalid value for argument `sr`: {sr.shape[0]}x{sr.shape[1]} after shaving is "
            f"smaller than the {window}x{window} SSIM window."
        )
    taps = gaussian_window(window, sigma)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(
        np.mean([_ssim_channel(sr[..., c], hr[..., c], taps, c1, c2) for c in range(sr.shape[-1])])
    )


def sr_metrics(sr, hr, scale, protocol="benchmark"):
    """PSNR and SSIM of one image under the paper's protocol.

    Args:
        sr: raw network output ``(H, W, 3)`` (quantised here).
        hr: ground truth ``(H', W', 3)`` or grey ``(H', W')``, ``H' >= H``.
        scale: the upscaling factor.
        protocol: ``"benchmark"`` (Y, shave = scale) or ``"div2k"`` (RGB, shave =
            scale + 6).

    Returns:
        ``(psnr, ssim)``.
    """
    if protocol == "benchmark":
        shave, y_only = scale, True
    elif protocol == "div2k":
        shave, y_only = scale + 6, False
    else:
        raise ValueError(
            f"Invalid value for argument `protocol`. Expected 'benchmark' or 'div2k'. "
            f"Received protocol={protocol!r}."
        )
    sr = quantize(sr)
    return psnr(sr, hr, shave, y_only), ssim(sr, hr, shave, y_only)
