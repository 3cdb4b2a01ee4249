"""init="data": refit coefficients on calibration activations (least squares).

For each compressed layer, in graph order, the basis responses ``Z`` of the
compressed network (upstream layers already refitted) are regressed onto the
original layer's pre-activation output ``Y = conv(X, W) + b`` computed on the
original network's own input ``X`` of that layer. The 1x1 coefficient kernel
and bias are the ridge-regularised least-squares solution. The basis stays the
SVD basis.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_basis._checks import check_finite
from keras_basis._transform import graph

RIDGE = 1e-5  # relative to the mean diagonal of Z^T Z


def batches(data, batch_size=32):
    """Calibration inputs as a list of finite NumPy batches.

    Raises:
        ValueError: a batch holds NaN or inf (the least-squares refit would
            turn it into NaN weights), or ``data`` yields nothing.
    """
    if hasattr(data, "shape") and not isinstance(data, (list, tuple)):
        arr = check_finite("calibration_data", data)
        return [arr[i:i + batch_size] for i in range(0, len(arr), batch_size)]
    out = []
    for i, item in enumerate(data):
        x = item[0] if isinstance(item, (list, tuple)) else item
        out.append(check_finite("calibration_data", x, f"batch {i}"))
    if not out:
        raise ValueError(
            "Invalid value for argument `calibration_data`: it yielded no batch. "
            f"Received calibration_data={data!r}."
        )
    return out


def refit(original, new, members, data, verbose=0):
    """Refit the coefficient layers of ``new`` in place (``new`` is ours)."""
    top = [
        mb for mb in members
        if mb.owner is original and len(graph.layer_nodes(mb.layer, original)) == 1
    ]
    if not top:
        return []
    data = batches(data)
    progbar = keras.utils.Progbar(len(top), verbose=1 if verbose else 0, unit_name="refit")
    done = []
    for i, mb in enumerate(top):
        coef = new.get_layer(mb.name)
        x_model = keras.Model(original.input, mb.layer.input)
        z_model = keras.Model(new.input, coef.input)
        k = coef.kernel.shape[2]
        extra = 1 if coef.use_bias else 0
        gram = np.zeros((k + extra, k + extra))
        cross = np.zeros((k + extra, mb.n))
        w = ops.convert_to_tensor(mb.kernel)
        for b in data:
            x = x_model(b, training=False)
            y = ops.conv(x, w, strides=mb.layer.strides, padding=mb.layer.padding,
                         dilation_rate=mb.layer.dilation_rate)
            y = ops.convert_to_numpy(y).reshape(-1, mb.n).astype(np.float64)
            if mb.bias is not None:
                y = y + mb.bias
            z = ops.convert_to_numpy(z_model(b, training=False)).reshape(-1, k)
            z = z.astype(np.float64)
            if extra:
                z = np.concatenate([z, np.ones((z.shape[0], 1))], axis=1)
            gram += z.T @ z
            cross += z.T @ y
        lam = RIDGE * max(np.trace(gram[:k, :k]) / k, 1e-12)
        sol = np.linalg.solve(gram + lam * np.eye(k + extra), cross)
        coef.kernel.assign(sol[:k].reshape(1, 1, k, mb.n).astype(coef.kernel.dtype))
        if extra:
            coef.bias.assign(sol[k].astype(coef.bias.dtype))
        done.append(mb.name)
        progbar.update(i + 1)
    return done
