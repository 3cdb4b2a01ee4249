"""Image pairs for super-resolution: DIV2K, any HR folder, benchmark sets, patches.

Layouts understood:

- DIV2K: ``<root>/DIV2K_{train,valid}_HR/0001.png`` and
  ``<root>/DIV2K_{train,valid}_LR_bicubic/X<s>/0001x<s>.png``. A missing LR folder
  is replaced by LR images made on the fly (below).
- Any folder of HR images (png, jpg, bmp, tif): LR made on the fly.
- Benchmark sets, either ``<root>/benchmark/<Set>/HR/<name>.png`` with
  ``<root>/benchmark/<Set>/LR_bicubic/X<s>/<name>x<s>.png`` (EDSR's layout; ``<root>``
  may also be the ``benchmark`` folder itself), or ``<root>/<Set>/X<s>/{HR,LR}/<name>.png``
  (SelfExSR's layout, as in ../shared/data/sr-benchmarks).

LR on the fly: the HR image is cropped to a multiple of the scale, then each channel
is resized in 32-bit float by Pillow's bicubic filter (Keys cubic, a = -0.5, kernel
widened by the scale factor: antialiased, like MATLAB's ``imresize``) and rounded
once to 0-255. ``tf.image.resize(..., "bicubic", antialias=True)`` gives identical
values here. It differs from MATLAB's ``imresize`` (used to make DIV2K's and the
benchmarks' LR images) in the image border (Pillow renormalises the truncated kernel,
MATLAB mirrors the image) and in rounding (MATLAB on uint8 rounds between the
horizontal and the vertical pass). Measured on Set5 + Set14: the result matches the
MATLAB LR files at 47-58 dB PSNR (mean 55.9 / 55.4 / 54.6 dB at x2 / x3 / x4).
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import numpy as np
from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "PatchSampler",
    "SRPair",
    "benchmark_pairs",
    "bicubic_resize",
    "discover_train",
    "div2k_pairs",
    "downscale",
    "folder_pairs",
    "load_image",
    "load_pair",
    "modcrop",
    "skimage_pairs",
    "upscale",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SKIMAGE_TRAIN = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
SKIMAGE_TEST = ("chelsea",)


class SRPair(NamedTuple):
    """One image: its name, the HR image and the LR image.

    ``hr`` and ``lr`` are paths or uint8 arrays; ``lr=None`` means "make it from the
    HR image by bicubic downscaling" (:func:`downscale`).
    """

    name: str
    hr: object
    lr: object = None


# ------------------------------------------------------------------------- images
def load_image(path):
    """Reads an image file as an ``(H, W, 3)`` uint8 RGB array (grey is replicated)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def modcrop(image, scale):
    """Crops the bottom/right so that both sides are multiples of ``scale``."""
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:h, :w]


def bicubic_resize(image, height, width):
    """Pillow bicubic resize of every channel in float32, rounded once to uint8.

    Args:
        image: ``(H, W, C)`` array (uint8 or float, 0-255).
        height, width: the output size.

    Returns:
        ``(height, width, C)`` uint8 array.
    """
    image = np.asarray(image, dtype=np.float32)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F").resize(
                (int(width), int(height)), Image.BICUBIC
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def downscale(hr, scale):
    """LR image of an HR image: modcrop then bicubic ``1/scale`` (module docstring)."""
    hr = modcrop(hr, scale)
    return bicubic_resize(hr, hr.shape[0] // scale, hr.shape[1] // scale)


def upscale(lr, scale):
    """Bicubic ``x scale`` upsampling (the "bicubic" reference row of the tables)."""
    return bicubic_resize(lr, lr.shape[0] * scale, lr.shape[1] * scale)


def _as_array(item):
    return load_image(item) if isinstance(item, (str, os.PathLike)) else np.asarray(item)


def load_pair(pair, scale):
    """Loads ``(hr, lr)`` uint8 arrays of a :class:`SRPair`.

    The HR image is cropped to ``lr size x scale`` (top-left), as the evaluation
    protocol requires; a missing LR image is made by :func:`downscale`.
    """
    hr = _as_array(pair.hr)
    if hr.ndim == 2:
        hr = np.repeat(hr[..., None], 3, axis=-1)
    hr = hr[..., :3]
    lr = downscale(hr, scale) if pair.lr is None else _as_array(pair.lr)
    if lr.ndim == 2:
        lr = np.repeat(lr[..., None], 3, axis=-1)
    lr = lr[..., :3]
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w:
        raise ValueError(
            f"Image '{pair.name}': the HR image ({hr.shape[0]}x{hr.shape[1]}) is smaller "
            f"than LR x scale ({h}x{w}); check that the LR file belongs to scale={scale}."
        )
    return np.ascontiguousarray(hr[:h, :w]), np.ascontiguousarray(lr)


# ---------------------------------------------------------------------- discovery
def _images(folder):
    folder = pathlib.Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def folder_pairs(folder):
    """Every image of a folder as an HR image with LR made on the fly.

    Args:
        folder: a folder of HR images.

    Returns:
        list of :class:`SRPair` sorted by file name.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"HR image folder {str(folder)!r} does not exist.")
    pairs = [SRPair(p.stem, str(p)) for p in _images(folder)]
    if not pairs:
        raise FileNotFoundError(
            f"HR image folder {str(folder)!r} contains no images ({', '.join(IMAGE_EXTENSIONS)})."
        )
    return pairs


def div2k_pairs(root, scale, split="train", limit=None):
    """DIV2K in its standard layout (LR from ``DIV2K_<split>_LR_bicubic/X<s>``).

    Args:
        root: folder holding ``DIV2K_train_HR`` etc.
        scale: 2, 3 or 4.
        split: ``"train"`` (800 images) or ``"valid"`` (100 images).
        limit: keep the first ``limit`` images.

    Returns:
        list of :class:`SRPair`; ``lr`` is ``None`` (made on the fly) when the
        bicubic LR folder is absent.
    """
    if split not in ("train", "valid"):
        raise ValueError(
            f"Invalid value for argument `split`. Expected 'train' or 'valid'. "
            f"Received split={split!r}."
        )
    root = pathlib.Path(root)
    hr_dir = root / f"DIV2K_{split}_HR"
    lr_dir = root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
    pairs = folder_pairs(hr_dir)
    if lr_dir.is_dir():
        pairs = [SRPair(p.name, p.hr, str(lr_dir / f"{p.name}x{scale}.png")) for p in pairs]
        missing = [p.lr for p in pairs if not os.path.exists(p.lr)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} LR images are missing in {str(lr_dir)!r}, e.g. {missing[0]!r}."
            )
    return pairs[:limit] if limit else pairs


def benchmark_pairs(root, set_name, scale):
    """A benchmark set (Set5, Set14, B100, Urban100...) in either common layout.

    Args:
        root: the folder holding ``benchmark/<Set>`` or ``<Set>`` (see module docstring).
        set_name: e.g. ``"Set5"``.
        scale: 2, 3 or 4.

    Returns:
        list of :class:`SRPair` with HR and LR paths.
    """
    root = pathlib.Path(root)
    tried = []
    for base in (root / "benchmark" / set_name, root / set_name):
        hr_dir, lr_dir = base / "HR", base / "LR_bicubic" / f"X{scale}"
        tried.append(str(lr_dir))
        if hr_dir.is_dir() and lr_dir.is_dir():
            pairs = [
                SRPair(p.stem, str(p), str(lr_dir / f"{p.stem}x{scale}{p.suffix}"))
                for p in _images(hr_dir)
            ]
            return _check_pairs(pairs, set_name)
        hr_dir, lr_dir = base / f"X{scale}" / "HR", base / f"X{scale}" / "LR"
        tried.append(str(lr_dir))
        if hr_dir.is_dir() and lr_dir.is_dir():
            pairs = [SRPair(p.stem, str(p), str(lr_dir / p.name)) for p in _images(hr_dir)]
            return _check_pairs(pairs, set_name)
    raise FileNotFoundError(
        f"Benchmark set {set_name!r} at scale x{scale} not found under {str(root)!r}; "
        f"looked for {', '.join(tried)}."
    )


def _check_pairs(pairs, set_name):
    if not pairs:
        raise FileNotFoundError(f"Benchmark set {set_name!r} has no HR images.")
    missing = [p.lr for p in pairs if not os.path.exists(p.lr)]
    if missing:
        raise FileNotFoundError(
            f"Benchmark set {set_name!r}: {len(missing)} LR images are missing, "
            f"e.g. {missing[0]!r}."
        )
    return pairs


def skimage_pairs(names=SKIMAGE_TRAIN):
    """Photographs bundled with scikit-image, as HR images (LR made on the fly)."""
    import skimage.data

    return [SRPair(n, getattr(skimage.data, n)()) for n in names]


def discover_train(data_dir, scale, limit=None):
    """Training images: DIV2K layout, else a plain HR folder.

    Args:
        data_dir: DIV2K root or a folder of HR images.
        scale: 2, 3 or 4.
        limit: keep the first ``limit`` images.

    Returns:
        ``(pairs, description)``.
    """
    root = pathlib.Path(data_dir)
    if (root / "DIV2K_train_HR").is_dir():
        pairs = div2k_pairs(root, scale, "train", limit)
        kind = "DIV2K train" + ("" if pairs[0].lr else " (LR made on the fly)")
        return pairs, f"{kind}: {len(pairs)} images from {root}"
    pairs = folder_pairs(root)[:limit] if limit else folder_pairs(root)
    return pairs, f"HR folder (LR made on the fly, Pillow bicubic): {len(pairs)} images from {root}"


# ------------------------------------------------------------------------ patches
class PatchSampler:
    """Random LR/HR training patches with flips and transpose, in memory.

    Each sample picks an image uniformly, a random LR crop of ``patch_size`` and the
    aligned HR crop of ``patch_size * scale``, then a random horizontal flip,
    vertical flip and transpose (the 8 symmetries of the square), as in EDSR.

    Args:
        images: list of ``(hr, lr)`` uint8 arrays (:func:`load_pair`).
        scale: the upscaling factor.
        patch_size: LR patch side (48 for EDSR, 24 for SRResNet).
        batch_size: patches per batch.
        seed: random seed.
        augment: apply flips and transpose.

    Example:

    >>> sampler = PatchSampler([load_pair(p, 4) for p in pairs], 4, 48, 16)
    >>> lr, hr = sampler.batch()      # (16, 48, 48, 3), (16, 192, 192, 3) float32
    """

    def __init__(self, images, scale, patch_size, batch_size, seed=0, augment=True):
        if not images:
            raise ValueError("Invalid value for argument `images`: expected at least one image.")
        small = [i for i, (_, lr) in enumerate(images) if min(lr.shape[:2]) < patch_size]
        self.images = [im for i, im in enumerate(images) if i not in small]
        if not self.images:
            raise ValueError(
                f"Invalid value for argument `patch_size`: every LR image is smaller than "
                f"patch_size={patch_size}."
            )
        self.scale = int(scale)
        self.patch_size = int(patch_size)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def sample(self):
        """One ``(lr, hr)`` pair of uint8 patches."""
        hr, lr = self.images[self.rng.integers(len(self.images))]
        p, s = self.patch_size, self.scale
        y = int(self.rng.integers(lr.shape[0] - p + 1))
        x = int(self.rng.integers(lr.shape[1] - p + 1))
        lr_patch = lr[y : y + p, x : x + p]
        hr_patch = hr[y * s : (y + p) * s, x * s : (x + p) * s]
        if self.augment:
            if self.rng.random() < 0.5:
                lr_patch, hr_patch = lr_patch[:, ::-1], hr_patch[:, ::-1]
            if self.rng.random() < 0.5:
                lr_patch, hr_patch = lr_patch[::-1], hr_patch[::-1]
            if self.rng.random() < 0.5:
                lr_patch, hr_patch = lr_patch.transpose(1, 0, 2), hr_patch.transpose(1, 0, 2)
        return lr_patch, hr_patch

    def batch(self):
        """``(lr, hr)`` float32 batches in 0-255."""
        pairs = [self.sample() for _ in range(self.batch_size)]
        lr = np.stack([a for a, _ in pairs]).astype(np.float32)
        hr = np.stack([b for _, b in pairs]).astype(np.float32)
        return lr, hr

    def dataset(self):
        """An endless ``tf.data.Dataset`` of batches (prefetched)."""
        import tensorflow as tf

        p, s, b = self.patch_size, self.scale, self.batch_size

        def gen():
            while True:
                yield self.batch()

        ds = tf.data.Dataset.from_generator(
            gen,
            output_signature=(
                tf.TensorSpec((b, p, p, 3), tf.float32),
                tf.TensorSpec((b, p * s, p * s, 3), tf.float32),
            ),
        )
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF
        )
        return ds.with_options(options).prefetch(2)
