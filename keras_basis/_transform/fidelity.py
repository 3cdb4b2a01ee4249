"""The paper's Eq. 18 term gamma * sum ||W - B A||_F^2 as a weight regularizer.

It is attached to the basis weight of a ``BasisConv2D`` (the layer that owns
the basis), and reads the kernels of the coefficient convolutions, so that the
coefficient layers stay stock ``keras.layers.Conv2D``. ``keras_basis.strip``
removes it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def reconstruct_ops(basis, coef_kernel, channels):
    """Differentiable twin of ``maths.reconstruct`` (keras.ops)."""
    kh, kw, depth, m = basis.shape
    sm, n = coef_kernel.shape[-2:]
    s = sm // m
    p = channels // s
    b = ops.reshape(basis[:, :, :p, :], (kh * kw * p, m))
    a = ops.reshape(coef_kernel, (s, m, n))
    a = ops.reshape(ops.transpose(a, (1, 0, 2)), (m, s * n))
    mat = ops.reshape(ops.matmul(b, a), (kh, kw, p, s, n))
    return ops.reshape(ops.transpose(mat, (0, 1, 3, 2, 4)), (kh, kw, s * p, n))


@keras.saving.register_keras_serializable(package="keras_basis")
class KernelFidelity(keras.regularizers.Regularizer):
    """``gamma * sum_l ||W_l - reconstruct(basis, A_l)||_F^2`` (Eq. 18).

    Args:
        gamma: weight of the term (>= 0).
        targets: list of ``(coefficient Conv2D layer, original kernel)``; the
            kernels are held as NumPy constants.

    Only ``gamma`` is serialised: a model reloaded from ``.keras`` trains
    without the term (the constants are not saved). Use
    ``keras_basis.strip(model)`` before export.
    """

    def __init__(self, gamma=0.0, targets=()):
        self.gamma = float(gamma)
        self.targets = [(layer, np.asarray(w, dtype="float32")) for layer, w in targets]

    def __call__(self, basis):
        total = ops.zeros((), dtype="float32")
        for layer, w in self.targets:
            recon = reconstruct_ops(basis, layer.kernel, w.shape[2])
            diff = ops.convert_to_tensor(w) - ops.cast(recon, "float32")
            total = total + ops.sum(ops.square(diff))
        return self.gamma * total

    def get_config(self):
        return {"gamma": self.gamma}
