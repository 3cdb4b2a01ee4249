"""Stable entry point for the CIFAR-10 network builders.

Example:

>>> from examples.cifar10.models import resnet56, vgg16, densenet40, build
>>> model = build("resnet56", "basis")       # same as resnet56("basis")
"""

from __future__ import annotations

from examples.cifar10.common import count_model
from examples.cifar10.densenet import DENSENET_CONFIGS, densenet, densenet40
from examples.cifar10.resnet import resnet, resnet20, resnet56
from examples.cifar10.vgg import vgg16

__all__ = [
    "DENSENET_CONFIGS",
    "NETWORKS",
    "VARIANTS",
    "build",
    "count_model",
    "densenet",
    "densenet40",
    "resnet",
    "resnet20",
    "resnet56",
    "vgg16",
]

NETWORKS = {
    "resnet20": resnet20,
    "resnet56": resnet56,
    "vgg16": vgg16,
    "densenet40": densenet40,
}
VARIANTS = ("baseline", "basis", "factor", "group")


def build(network, variant="baseline", **kwargs):
    """Build ``network`` (a key of ``NETWORKS``) in ``variant``; kwargs go to its builder.

    Example:

    >>> build("densenet40", "basis", config="M36T6").count_params() > 0
    True
    """
    if network not in NETWORKS:
        raise ValueError(
            f"Invalid value for argument `network`. Expected one of {sorted(NETWORKS)}. "
            f"Received network={network!r}."
        )
    return NETWORKS[network](variant, **kwargs)
