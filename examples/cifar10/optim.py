"""SGD with PyTorch-style (coupled) weight decay, as in the authors' training."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["CoupledSGD"]


@keras.saving.register_keras_serializable(package="keras_basis_examples")
class CoupledSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose weight decay is added to the gradient.

    PyTorch's ``SGD(weight_decay=wd)`` uses ``g + wd * w`` before the momentum
    (Keras' own ``weight_decay`` is decoupled); this reproduces the former for every
    trainable variable, BatchNorm included, as the authors' scripts do.

    Args:
        coupled_weight_decay: ``wd`` (>= 0).
        **kwargs: as ``keras.optimizers.SGD``.

    Example:

    >>> opt = CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=1e-4)
    """

    def __init__(self, coupled_weight_decay=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(coupled_weight_decay, bool) or not (
            isinstance(coupled_weight_decay, (int, float)) and coupled_weight_decay >= 0
        ):
            raise ValueError(
                "Invalid value for argument `coupled_weight_decay`. Expected a float >= 0. "
                f"Received coupled_weight_decay={coupled_weight_decay!r}."
            )
        self.coupled_weight_decay = float(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_weight_decay:
            gradient = ops.add(
                gradient, ops.multiply(ops.cast(self.coupled_weight_decay, variable.dtype),
                                       variable)
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["coupled_weight_decay"] = self.coupled_weight_decay
        return config
