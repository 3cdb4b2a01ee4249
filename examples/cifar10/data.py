"""CIFAR-10 input pipeline: image folders or ``keras.datasets.cifar10``, tf.data.

Images are decoded once and cached as uint8 (about 150 MB for the 50k training
images), then augmented per epoch (4-pixel zero padding + random 32x32 crop +
horizontal flip, as torchvision's ``RandomCrop(32, padding=4)`` in the authors' code),
normalised with the paper's mean/std, batched and prefetched.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

from examples.cifar10.common import CIFAR_MEAN, CIFAR_STD

__all__ = ["CLASSES", "load_source", "make_dataset", "balanced_subset"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _list_folder(root, split):
    """(paths, labels, class names) of ``root/split/<class>/*``, classes sorted."""
    base = pathlib.Path(root) / split
    if not base.is_dir():
        raise ValueError(
            f"Invalid value for argument `data_dir`. Expected a folder with "
            f"'train/<class>/*' and 'test/<class>/*'. Received data_dir={str(root)!r} "
            f"(missing {str(base)!r})."
        )
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(
            f"Invalid value for argument `data_dir`: {str(base)!r} has no class folders."
        )
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            f for f in (base / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS
        )
        paths += [str(f) for f in files]
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"Invalid value for argument `data_dir`: no images under {str(base)!r}.")
    return np.array(paths), np.array(labels, dtype=np.int32), classes


def balanced_subset(labels, size, seed=0):
    """Indices of ``size`` examples, as equal per class as possible, in a seeded order.

    Args:
        labels: 1-D int array.
        size: total count (None or >= len: all, in their original order).
        seed: permutation seed within each class.

    Returns:
        np.ndarray of int indices.
    """
    labels = np.asarray(labels).reshape(-1)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    take, i = [], 0
    while len(take) < size:  # round robin over the classes
        for idx in per:
            if i < len(idx) and len(take) < size:
                take.append(idx[i])
        i += 1
    return np.sort(np.array(take))


def load_source(data_dir=None, split="train", size=None, seed=0):
    """Where the images of ``split`` come from.

    Args:
        data_dir: image-folder root (``train/<class>/*``, ``test/<class>/*``), or None
            for ``keras.datasets.cifar10`` (downloads once when online).
        split: ``"train"`` or ``"test"``.
        size: optional balanced subset size.
        seed: subset seed.

    Returns:
        dict with ``kind`` (``"files"`` or ``"arrays"``), ``x`` (paths or uint8
        images), ``y`` (int labels), ``classes``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"Invalid value for argument `split`. Expected 'train' or 'test'. "
                         f"Received split={split!r}.")
    if data_dir:
        x, y, classes = _list_folder(data_dir, split)
        kind = "files"
    else:
        import keras

        (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
        x, y = (xtr, ytr) if split == "train" else (xte, yte)
        y = y.reshape(-1).astype(np.int32)
        classes, kind = list(CLASSES), "arrays"
    idx = balanced_subset(y, size, seed)
    return {"kind": kind, "x": x[idx], "y": y[idx], "classes": classes}


def _decode(path, label, image_size):
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    same = tf.reduce_all(tf.equal(tf.shape(img)[:2], image_size))
    img = tf.cond(
        same,
        lambda: img,
        lambda: tf.cast(tf.clip_by_value(tf.image.resize(img, image_size), 0, 255), tf.uint8),
    )
    img.set_shape(tuple(image_size) + (3,))
    return img, label


def _augment(img, label, image_size):
    img = tf.pad(img, [[4, 4], [4, 4], [0, 0]])
    img = tf.image.random_crop(img, tuple(image_size) + (3,))
    img = tf.image.random_flip_left_right(img)
    return img, label


def _normalize(img, label):
    mean = tf.constant(CIFAR_MEAN, tf.float32)
    std = tf.constant(CIFAR_STD, tf.float32)
    return (tf.cast(img, tf.float32) - mean) / std, label


def make_dataset(source, batch_size, training, seed=0, image_size=(32, 32)):
    """tf.data pipeline: decode once -> cache -> (shuffle, augment) -> batch -> prefetch.

    Args:
        source: a dict from :func:`load_source`.
        batch_size: global batch size.
        training: shuffle and augment when True.
        seed: shuffle seed.
        image_size: (height, width) images are resized to when they differ.

    Returns:
        tf.data.Dataset of (normalised float32 images, int32 labels).

    Example:

    >>> ds = make_dataset(load_source("/tmp/cifar10-jpeg", "test"), 256, training=False)
    """
    auto = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((source["x"], source["y"]))
    if source["kind"] == "files":
        ds = ds.map(lambda p, y: _decode(p, y, image_size), num_parallel_calls=auto)
    ds = ds.cache()
    if training:
        ds = ds.shuffle(len(source["y"]), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda x, y: _augment(x, y, image_size), num_parallel_calls=auto)
    ds = ds.batch(batch_size).map(_normalize, num_parallel_calls=auto).prefetch(auto)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return ds.with_options(options)
