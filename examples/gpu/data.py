"""Host-side data of the GPU runner: the CIFAR-10 JPEG tar and SR patch chunks (NumPy)."""

from __future__ import annotations

import tarfile

import numpy as np

__all__ = ["load_cifar_tar", "sr_chunk"]


def load_cifar_tar(path):
    """CIFAR-10 JPEG copy straight from its tar: uint8 arrays and int labels per split.

    Args:
        path: ``cifar10-jpeg.tar.gz`` (members ``*/train|test/<class>/<n>.jpg``).

    Returns:
        ``{"train": (x, y), "test": (x, y)}``: ``x`` uint8 ``(n, 32, 32, 3)``, ``y``
        int32 labels, the classes numbered in alphabetical order (the standard ids).

    Example:

    >>> data = load_cifar_tar("cifar10-jpeg.tar.gz")
    >>> data["train"][0].shape
    (50000, 32, 32, 3)
    """
    from PIL import Image

    out = {"train": ([], []), "test": ([], [])}
    names = {}  # class folder -> label, in alphabetical order (the standard CIFAR ids)
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[-3] not in out:
                continue
            with Image.open(tar.extractfile(member)) as im:
                out[parts[-3]][0].append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            out[parts[-3]][1].append(names.setdefault(parts[-2], len(names)))
    order = {c: i for i, c in enumerate(sorted(names))}
    remap = np.asarray([order[c] for c in names], np.int32)  # first-seen id -> sorted id
    return {k: (np.stack(x), remap[np.asarray(y, np.int32)]) for k, (x, y) in out.items()}


def sr_chunk(sampler, steps):
    """``steps`` batches of ``examples.div2k.data.PatchSampler`` as uint8 arrays.

    The same draws as ``steps`` calls of ``sampler.batch()`` (which returns float32).

    Returns:
        ``(lr, hr)``: ``(steps, batch, p, p, 3)`` and ``(steps, batch, p*s, p*s, 3)``.
    """
    lr, hr = [], []
    for _ in range(steps * sampler.batch_size):
        a, b = sampler.sample()
        lr.append(a)
        hr.append(b)
    shape = (steps, sampler.batch_size)
    return (np.stack(lr).reshape(shape + lr[0].shape),
            np.stack(hr).reshape(shape + hr[0].shape))
