"""Independent NumPy references used by the tests (no Keras, no TF)."""

import numpy as np


def conv2d_nhwc(x, w, strides=(1, 1), padding="valid", dilation=(1, 1), bias=None):
    """Direct 2D cross-correlation, NHWC input, (kh, kw, c, n) kernel, TF padding rule."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n_, h, wd, c = x.shape
    kh, kw, c2, n = w.shape
    assert c == c2, (c, c2)
    sh, sw = strides
    dh, dw = dilation
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        ho, wo = -(-h // sh), -(-wd // sw)
        ph = max((ho - 1) * sh + ekh - h, 0)
        pw = max((wo - 1) * sw + ekw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        ho, wo = (h - ekh) // sh + 1, (wd - ekw) // sw + 1
    out = np.zeros((n_, ho, wo, n))
    for a in range(kh):
        for b in range(kw):
            patch = x[
                :,
                a * dh : a * dh + (ho - 1) * sh + 1 : sh,
                b * dw : b * dw + (wo - 1) * sw + 1 : sw,
                :,
            ]
            out += patch @ w[a, b]
    if bias is not None:
        out += bias
    return out
