"""Layers of the SR networks: pixel shuffle and EDSR's mean shift.

Registered under the package ``keras_basis_div2k`` (saved models refer to it);
``examples.div2k.models`` re-exports them.
"""

from __future__ import annotations

import keras
from keras import layers

__all__ = ["DIV2K_RGB_MEAN", "MeanShift", "PixelShuffle"]

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
_PACKAGE = "keras_basis_div2k"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PixelShuffle(layers.Layer):
    """Sub-pixel upsampling: ``(N, H, W, C*r*r) -> (N, H*r, W*r, C)``.

    ``keras.ops.depth_to_space``: ``tf.nn.depth_to_space`` on the TensorFlow backend
    (TFLite builtin ``DEPTH_TO_SPACE``), the same channel order on JAX and PyTorch. That
    order differs from PyTorch's ``nn.PixelShuffle``, which only matters when porting
    weights.

    Args:
        scale: the upsampling factor ``r`` (positive int).
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(
                f"Invalid value for argument `scale` of layer '{self.name}'. Expected a "
                f"positive int. Received scale={scale!r}."
            )
        self.scale = scale

    def call(self, inputs):
        return keras.ops.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MeanShift(layers.Layer):
    """Adds ``sign * rgb_range * mean`` per channel (EDSR's sub_mean / add_mean).

    Args:
        mean: per-channel mean in 0-1 units (default: the DIV2K RGB mean).
        sign: -1 to subtract, +1 to add back.
        rgb_range: the pixel range (255).
    """

    def __init__(self, mean=DIV2K_RGB_MEAN, sign=-1, rgb_range=255.0, **kwargs):
        super().__init__(**kwargs)
        if sign not in (-1, 1):
            raise ValueError(
                f"Invalid value for argument `sign` of layer '{self.name}'. Expected -1 or "
                f"1. Received sign={sign!r}."
            )
        self.mean = tuple(float(v) for v in mean)
        self.sign = int(sign)
        self.rgb_range = float(rgb_range)

    def call(self, inputs):
        shift = [self.sign * self.rgb_range * m for m in self.mean]
        return inputs + keras.ops.convert_to_tensor(shift, dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "mean": list(self.mean),
            "sign": self.sign,
            "rgb_range": self.rgb_range,
        }
