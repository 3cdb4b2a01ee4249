"""CIFAR-10 subsets read straight from the JPEG copy's tar.gz (nothing extracted).

The benchmarks that train on CIFAR-10 (``compress_rules.py``, ``tfmot_compare.py``)
take the first ``k`` files of every class (``cifar10-jpeg/<split>/<class>/0000.jpg``
...), in the order of the archive, scaled to [0, 1] and normalised with the usual
CIFAR-10 mean and standard deviation.
"""

from __future__ import annotations

import io
import pathlib
import tarfile

import numpy as np

DEFAULT_TAR = pathlib.Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
MEAN = np.array([125.3, 123.0, 113.9], np.float32) / 255
STD = np.array([63.0, 62.1, 66.7], np.float32) / 255


def load_per_class(tar_path, per_class_train, per_class_test):
    """The first files of each class of both splits, normalised.

    Args:
        tar_path: the CIFAR-10 JPEG copy (``cifar10-jpeg.tar.gz``).
        per_class_train: images per class taken from ``train``.
        per_class_test: images per class taken from ``test``.

    Returns:
        ``(x, y)``: dicts keyed ``"train"``/``"test"`` of float32 arrays
        ``(n, 32, 32, 3)`` and int64 labels ``(n,)`` (indices into ``CLASSES``),
        in the archive's order.

    Example:

    >>> x, y = load_per_class(DEFAULT_TAR, 2, 1)
    >>> x["train"].shape, y["test"].shape
    ((20, 32, 32, 3), (10,))
    """
    from PIL import Image

    want = {"train": per_class_train, "test": per_class_test}
    xs = {split: [] for split in want}
    ys = {split: [] for split in want}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] not in want:
                continue
            split, cls, fname = parts[1:]
            if int(fname.split(".")[0]) >= want[split]:
                continue
            img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            xs[split].append((np.asarray(img, np.float32) / 255 - MEAN) / STD)
            ys[split].append(CLASSES.index(cls))
    return ({s: np.stack(v) for s, v in xs.items()},
            {s: np.array(v, np.int64) for s, v in ys.items()})
