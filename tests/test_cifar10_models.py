"""The builders compute the authors' networks: counts, padding, shortcut, BatchNorm,
biases, shared PReLU (the end-to-end parity is tests/test_port_authors.py)."""

import keras
import numpy as np
import pytest

from examples.cifar10.common import GroupConv2D, conv, count_model, shortcut_a
from examples.cifar10.models import densenet, densenet40, resnet20, resnet56, vgg16
from examples.div2k import models as sr
from keras_basis import BasisBias, BasisConv2D


def _stride2_torch(x, w):
    """PyTorch Conv2d(3x3, stride 2, padding 1) on NHWC x with an HWIO kernel."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (x.shape[1] - 1) // 2 + 1, (x.shape[2] - 1) // 2 + 1
    return sum(xp[:, i:i + 2 * ho:2, j:j + 2 * wo:2] @ w[i, j]
               for i in range(3) for j in range(3))


def test_authors_parameter_counts():
    # the authors' code (NOTES.md): ResNet-56 basis 195,002 conv + classifier weights,
    # 199,782 with biases, 203,846 with BN; DenseNet M36T6 353,938 with BN and biases.
    counts = count_model(resnet56("basis"))
    assert (counts["params"], counts["trainable"]) == (199_782, 203_846)
    counts = count_model(densenet40("basis", config="M36T6"))
    assert (counts["params"], counts["trainable"]) == (332_626, 353_938)
    assert count_model(resnet20())["params"] == 268_346 + 16  # + the first conv's bias


def test_vgg16_baseline_has_no_batchnorm_unless_asked():
    def n_bn(model):
        return sum(isinstance(la, keras.layers.BatchNormalization) for la in model.layers)

    base, basis = vgg16(), vgg16("basis")
    assert n_bn(base) == 0 and n_bn(vgg16(bn=True)) == 13 and n_bn(basis) == 23
    assert count_model(base)["params"] == 14_719_818  # 13 convs + biases + fc
    assert count_model(basis)["params"] == 3_219_530  # Table 9 + the authors' conv biases
    assert all(la.epsilon == 1e-5 and la.momentum == 0.9 for la in basis.layers
               if isinstance(la, keras.layers.BatchNormalization))


def test_batchnorm_has_pytorch_constants():
    for model in (resnet20("group"), densenet(10, 4, "basis", config="M5T2")):
        bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
        assert bns and all(b.epsilon == 1e-5 and b.momentum == 0.9 for b in bns)


@pytest.mark.parametrize("size", [8, 7])
def test_stride2_conv_pads_symmetrically_like_pytorch(size, rng):
    x = rng.standard_normal((2, size, size, 3)).astype("float32")
    inp = keras.Input((size, size, 3))
    model = keras.Model(inp, conv(inp, 4, 3, "c", strides=2))
    w = model.get_layer("c").get_weights()[0]
    np.testing.assert_allclose(model(x), _stride2_torch(x, w), rtol=1e-5, atol=1e-5)


def test_stride2_group_and_basis_convs_pad_symmetrically(rng):
    x = rng.standard_normal((1, 8, 8, 8)).astype("float32")
    model = resnet20("basis", share="layer", splits=1, num_basis=4)
    basis = model.get_layer("stage2_block1_conv1_basis")
    assert isinstance(model.get_layer("stage2_block1_conv1_basis_pad"),
                      keras.layers.ZeroPadding2D)
    assert basis.padding == "valid" and basis.use_bias
    g = GroupConv2D(8, 3, 2, strides=2, padding="valid")
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = keras.ops.convert_to_numpy(g(xp))
    k = keras.ops.convert_to_numpy(g.kernel)
    ref = np.concatenate([_stride2_torch(x[..., :4], k[..., :4, :4]),
                          _stride2_torch(x[..., 4:], k[..., :4, 4:])], axis=-1)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert g.compute_output_shape((1, 10, 10, 8)) == (1, 4, 4, 8)


def test_shortcut_a_is_average_pooling_and_centred_zero_channels(rng):
    x = rng.standard_normal((2, 8, 8, 16)).astype("float32")
    inp = keras.Input((8, 8, 16))
    y = keras.Model(inp, shortcut_a(inp, 32, 2, "s"))(x)
    ref = np.zeros((2, 4, 4, 32), "float32")
    ref[..., 8:24] = x.reshape(2, 4, 2, 4, 2, 16).mean(axis=(2, 4))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y), ref, rtol=1e-6, atol=1e-6)


def test_stage_shared_basis_has_a_bias_per_site(rng):
    model = resnet20("basis")
    biases = [la for la in model.layers if isinstance(la, BasisBias)]
    assert len(biases) == 18  # one per basis conv
    assert model.get_layer("stage2_block1_conv1_basis_bias").get_weights()[0].shape == (24,)
    layer = BasisBias(3, name="b")
    x = rng.standard_normal((1, 2, 2, 6)).astype("float32")
    layer.build(x.shape)
    layer.set_weights([np.array([1.0, 2.0, 3.0], "float32")])
    np.testing.assert_allclose(layer(x), x + np.array([1, 2, 3, 1, 2, 3], "float32"))
    with pytest.raises(ValueError, match=r"'b2' has num_basis=4; .*multiple of 4"):
        BasisBias(4, name="b2")(x)


def test_srresnet_shares_one_prelu_unless_asked():
    def prelus(model):
        return [la.name for la in model.layers if isinstance(la, keras.layers.PReLU)]

    shared = sr.srresnet(4, num_blocks=2, channels=8, num_basis=3)
    assert prelus(shared) == ["act", "up1_act", "up2_act"]
    assert len(shared.get_layer("act")._inbound_nodes) == 1 + 2 * 2 * 2
    assert len(prelus(sr.srresnet(2, num_blocks=2, channels=8, shared_prelu=False))) == 4
    basis = shared.get_layer("block01_conv1_basis")
    assert isinstance(basis, BasisConv2D) and basis.use_bias
    with pytest.raises(ValueError, match=r"`mean_shift` of edsr\(\).*Received mean_shift='x'"):
        sr.edsr(2, num_blocks=1, channels=8, mean_shift="x")
