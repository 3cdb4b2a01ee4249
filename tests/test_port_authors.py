"""examples/port_authors.py: the authors' checkpoints in Keras and TFLite.

Parity on the seven fixtures of ../shared/authors-fixtures (the authors' networks with
random weights, their inputs and the outputs of their PyTorch code), and, for any
weights, batch and input size, against independent NumPy implementations of the
authors' EDSR_Basis and SRResNet_Basis forward passes written from their code (NCHW,
PyTorch PixelShuffle order, shared PReLU, MeanShift as a 1x1 conv).
"""

import pathlib

import keras
import numpy as np
import pytest

from examples import port_authors as P
from examples.authors import args as A
from examples.authors import mapping

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "authors-fixtures"
TOL = 1e-5  # of max |output|
ALL = ("resnet56_baseline", "resnet56_basis", "densenet40_basis_M36T6", "vgg16_basis",
       "srresnet_basis_64_14_x4", "edsr8x128_baseline_x4", "edsr8x128_basis_128_40_x4")
DEFAULT_TFLITE = ("resnet56_basis", "srresnet_basis_64_14_x4")

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"the authors' fixtures are not here ({FIXTURES}: ../shared is absent)")


# ------------------------------------------------------------ NumPy reference (NCHW)
def conv(x, w, b=None):
    """PyTorch Conv2d, stride 1, padding k // 2: x (N, C, H, W), w (O, C, kh, kw)."""
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    h, wd = x.shape[2:]
    out = sum(np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
              for i in range(kh) for j in range(kw))
    return out if b is None else out + b[None, :, None, None]


def pixel_shuffle(x, r):
    """nn.PixelShuffle: out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]."""
    n, crr, h, w = x.shape
    c = crr // (r * r)
    return x.reshape(n, c, r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c, h * r, w * r)


def basis_conv(x, basis, bias):
    """The authors' conv_basis: every basis_size-channel split, same basis, concat."""
    p = basis.shape[1]
    return np.concatenate([conv(x[:, g:g + p], basis, bias)
                           for g in range(0, x.shape[1], p)], axis=1)


def bn(x, s, key):
    g, b, m, v = (s[f"{key}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
    return ((x - m[None, :, None, None]) / np.sqrt(v[None, :, None, None] + 1e-5)
            * g[None, :, None, None] + b[None, :, None, None])


def prelu(x, a):
    return np.maximum(x, 0) + float(a[0]) * np.minimum(x, 0)


def tail(x, s, scale, act):
    steps = [(3, 0)] if scale == 3 else [(2, k * (3 if act else 2)) for k in range(scale // 2)]
    for r, base in steps:
        x = pixel_shuffle(conv(x, s[f"tail.0.{base}.weight"], s[f"tail.0.{base}.bias"]), r)
        if act:
            x = prelu(x, s[f"tail.0.{base + 2}.weight"])
    return conv(x, s["tail.1.weight"], s["tail.1.bias"])


def edsr_basis_reference(s, x, n_blocks, scale):
    x = conv(x, s["sub_mean.weight"], s["sub_mean.bias"])
    x = res = conv(x, s["head.0.weight"], s["head.0.bias"])
    for i in range(n_blocks):
        y = res
        for idx in (0, 2):
            k = f"body.{i}.body.{idx}."
            y = basis_conv(y, s[k + "basis_weight"], s[k + "basis_bias"])
            y = conv(y, s[k + "proj_weight"], s[k + "proj_bias"])
            y = np.maximum(y, 0) if idx == 0 else y
        res = y + res  # res_scale 1
    x = conv(res, s[f"body.{n_blocks}.weight"], s[f"body.{n_blocks}.bias"]) + x
    x = tail(x, s, scale, act=False)
    return conv(x, s["add_mean.weight"], s["add_mean.bias"])


def srresnet_basis_reference(s, x, n_blocks, scale):
    x = y = prelu(conv(x, s["head.0.weight"], s["head.0.bias"]), s["head.1.weight"])
    for i in range(n_blocks):
        r = y
        for j in (0, 1):
            k = f"body.{i}.body.{j}.conv."
            y = basis_conv(y, s[k + "0.basis_weight"], s[k + "0.basis_bias"])
            y = prelu(bn(y, s, k + "1"), s[k + "2.weight"])
            y = conv(y, s[k + "3.weight"], s[k + "3.bias"])
            y = prelu(bn(y, s, k + "4"), s[k + "5.weight"])
        y = y + r
    f = bn(conv(y, s[f"body.{n_blocks}.weight"], s[f"body.{n_blocks}.bias"]), s,
           f"body.{n_blocks + 1}")
    return tail(x + f, s, scale, act=True)


def random_state(args, seed):
    """A random state_dict under the authors' keys (shapes from the port's mapping)."""
    rng = np.random.default_rng(seed)
    model, info = A.build(A.parse(args))
    entries, aliases = mapping.entries(info)
    state = {}
    for layer_name, kind, keys in entries:
        if kind == "meanshift":
            sign = -1 if layer_name == "sub_mean" else 1
            state[keys[0]] = np.eye(3, dtype="float32").reshape(3, 3, 1, 1)
            state[keys[1]] = (sign * 255 * np.array([0.4488, 0.4371, 0.4040])).astype("float32")
            continue
        for key, w in zip(keys, model.get_layer(layer_name).get_weights()):
            shape = mapping.torch_shape(kind, w.shape)
            if key.endswith("running_var"):
                v = rng.uniform(0.5, 1.5, shape)
            elif key.endswith(("bn.weight", "running_mean")) or len(shape) == 1:
                v = rng.normal(0, 0.3, shape) if not kind == "prelu" else rng.uniform(.1, .3, shape)
            else:
                v = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
            state[key] = v.astype("float32")
    for alias, key in aliases:
        state[alias] = state[key].copy()
    return state


def rel(ours, theirs):
    return P.relative_error(ours, theirs)


def nchw(y):
    return np.transpose(keras.ops.convert_to_numpy(y), (0, 3, 1, 2))


EDSR_ARGS = "--model EDSR_Basis --scale {s} --n_resblocks 2 --n_feats 8 --basis_size 4 " \
            "--n_basis 3 --res_scale 1"
SRRESNET_ARGS = "--model SRResNet_Basis --scale {s} --n_resblocks 2 --n_feats 8 " \
                "--basis_size 4 --n_basis 3 --bn_every"


# --------------------------------------------------------------------- fixtures
@needs_fixtures
@pytest.mark.parametrize("name", ALL)
def test_fixture_keras_output_equals_the_authors_at_batch_2_and_1(name):
    state, args, extras = P.load_state(FIXTURES / f"{name}.npz")
    model = P.port(state, args)
    x, theirs = np.transpose(extras["input"], (0, 2, 3, 1)), extras["output"]
    ours = keras.ops.convert_to_numpy(model(x, training=False))
    assert rel(ours if ours.ndim == 2 else np.transpose(ours, (0, 3, 1, 2)), theirs) < TOL
    one = keras.ops.convert_to_numpy(model(x[:1], training=False))
    assert one.shape[0] == 1  # the authors' x.squeeze() gives (10,) at batch 1; ours (1, 10)
    assert np.abs(one[0] - ours[0]).max() <= 1e-6 * np.abs(ours).max()
    keras.backend.clear_session()


@needs_fixtures
@pytest.mark.parametrize("name", [
    n if n in DEFAULT_TFLITE else pytest.param(n, marks=pytest.mark.slow) for n in ALL])
def test_fixture_float32_tflite_output_equals_the_authors(name, tmp_path):
    result = P.check_fixture(FIXTURES / f"{name}.npz", tflite=True, workdir=tmp_path)
    assert result["keras"] < TOL and result["tflite"] < TOL, result
    keras.backend.clear_session()


def test_shared_tensor_copies_must_agree_and_keys_must_match():
    args = "--template ResNet --model ResNet_Basis --depth 20 --k_size2 1"
    state = random_state(args, seed=7)
    P.port(state, args)  # complete and consistent
    bad = dict(state)
    bad["features.2.2.body.0.conv.0.basis_weight"] = state["basis2"] + 1
    with pytest.raises(ValueError, match=r"'features.2.2.body.0.conv.0.basis_weight'.*"
                                         r"shared with 'basis2'"):
        P.port(bad, args)
    bad = {k: v for k, v in state.items() if k != "features.3.2.body.4.running_var"}
    with pytest.raises(ValueError, match=r"Missing key 'features.3.2.body.4.running_var' .*"
                                         r"ResNet_Basis .*layer 'stage3_block3_bn2'"):
        P.port(bad, args)
    with pytest.raises(ValueError, match=r"Unexpected key\(s\) .*ResNet_Basis: \['extra.w'\]"):
        P.port({**state, "extra.w": np.zeros(3, "float32")}, args)
    bad = dict(state, **{"classifier.weight": np.zeros((10, 32), "float32")})
    with pytest.raises(ValueError, match=r"Shape mismatch for key 'classifier.weight' .*"
                                         r"Expected \(10, 64\). Received \(10, 32\)"):
        P.port(bad, args)
    with pytest.raises(ValueError, match=r"Shape mismatch for key 'basis1' .*"
                                         r"Expected \(24, 16, 3, 3\). Received \(20, 16, 3, 3\)"):
        P.port(dict(state, basis1=state["basis1"][:20]), args)


# ------------------------------------------------- any weights, batch, input size
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_basis_any_weights_batch_and_non_square_input(scale):
    args = EDSR_ARGS.format(s=scale)
    state = random_state(args, seed=scale)
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 5, 7)).astype("float32")
    model = P.port(state, args)
    ref = edsr_basis_reference({k: v.astype("float64") for k, v in state.items()}, x, 2, scale)
    ours = nchw(model(np.transpose(x, (0, 2, 3, 1))))
    assert ours.shape == (3, 3, 5 * scale, 7 * scale)
    assert rel(ours, ref) < TOL


@pytest.mark.parametrize("scale", [3, 4])
def test_srresnet_basis_shared_prelu_any_weights_and_non_square_input(scale):
    args = SRRESNET_ARGS.format(s=scale)
    state = random_state(args, seed=10 + scale)
    a = state["head.1.weight"]
    model = P.port(state, args)
    prelus = [la for la in model.layers if isinstance(la, keras.layers.PReLU)]
    assert [la.name for la in prelus] == ["act"] + [f"up{k}_act" for k in
                                                    range(1, 1 + (2 if scale == 4 else 1))]
    assert len(prelus[0]._inbound_nodes) == 1 + 2 * 2 * 2  # head + 2 per conv, 2 convs, 2 blocks
    np.testing.assert_array_equal(prelus[0].get_weights()[0].ravel(), a)
    x = np.random.default_rng(1).uniform(0, 255, (2, 3, 6, 4)).astype("float32")
    ref = srresnet_basis_reference({k: v.astype("float64") for k, v in state.items()}, x, 2,
                                   scale)
    assert rel(nchw(model(np.transpose(x, (0, 2, 3, 1)), training=False)), ref) < TOL


def test_edsr_trained_mean_shift_becomes_a_conv_and_round_trips(tmp_path):
    args = EDSR_ARGS.format(s=2) + " --share_basis"
    state = random_state(args, seed=5)
    state["sub_mean.weight"] = state["sub_mean.weight"] * 1.01  # changed by their optimizer
    state["add_mean.bias"] = state["add_mean.bias"] + 0.5
    path = tmp_path / "edsr.npz"
    np.savez(path, args=np.array(args), **state)
    out = tmp_path / "edsr.keras"
    model = P.main([str(path), str(out), "--tflite", str(tmp_path / "edsr.tflite"),
                    "--input-shape", "4,6"])
    assert isinstance(model.get_layer("sub_mean"), keras.layers.Conv2D)
    # Basis-S: one basis, one bias of m = 3 values per conv (shared by the 2 splits)
    assert model.get_layer("block01_basis").get_weights()[0].shape == (3, 3, 4, 3)
    assert model.get_layer("block01_conv2_basis_bias").get_weights()[0].shape == (3,)
    loaded = keras.models.load_model(out)
    x = np.random.default_rng(2).uniform(0, 255, (1, 3, 4, 6)).astype("float32")
    ref = edsr_basis_reference({k: v.astype("float64") for k, v in state.items()}, x, 2, 2)
    assert rel(nchw(loaded(np.transpose(x, (0, 2, 3, 1)))), ref) < TOL
    from keras_basis.tflite import run_tflite

    lite = np.asarray(run_tflite(tmp_path / "edsr.tflite", np.transpose(x, (0, 2, 3, 1))))
    assert rel(np.transpose(lite, (0, 3, 1, 2)), ref) < TOL
    assert not list(tmp_path.glob("*.kbtmp-*"))


def srresnet_reference(s, x, n_blocks, scale):
    x = y = prelu(conv(x, s["head.0.weight"], s["head.0.bias"]), s["head.1.weight"])
    for i in range(n_blocks):
        k = f"body.{i}.body."
        r = prelu(bn(conv(y, s[k + "0.weight"], s[k + "0.bias"]), s, k + "1"), s[k + "2.weight"])
        y = bn(conv(r, s[k + "3.weight"], s[k + "3.bias"]), s, k + "4") + y
    f = bn(conv(y, s[f"body.{n_blocks}.weight"], s[f"body.{n_blocks}.bias"]), s,
           f"body.{n_blocks + 1}")
    return tail(x + f, s, scale, act=True)


def test_srresnet_baseline_shares_the_prelu_of_its_blocks():
    args = "--model SRResNet --scale 2 --n_resblocks 2 --n_feats 8"
    state = random_state(args, seed=21)
    model = P.port(state, args)
    x = np.random.default_rng(4).uniform(0, 255, (1, 3, 5, 3)).astype("float32")
    ref = srresnet_reference({k: v.astype("float64") for k, v in state.items()}, x, 2, 2)
    assert rel(nchw(model(np.transpose(x, (0, 2, 3, 1)), training=False)), ref) < TOL


@pytest.mark.parametrize("args", [
    "--model ResNet --depth 8",
    "--model ResNet_Basis --depth 8 --k_size2 1 --basis_size2 16 --n_basis2 20",
    "--model DenseNet --depth 7 --k 4",
    "--model DenseNet_Basis --depth 7 --k 4 --n_basis 5 --transition_group 2 --k_size2 1",
    pytest.param("--model VGG --vgg_type 16", marks=pytest.mark.slow),
    pytest.param("--model VGG_Basis --basis_size 64 --n_basis 32", marks=pytest.mark.slow),
    "--model EDSR --scale 3 --n_resblocks 1 --n_feats 4",
    "--model SRResNet_Basis --scale 2 --n_resblocks 1 --n_feats 8 --basis_size 8 "
    "--n_basis 3 --bn_every --share_basis",
])
def test_every_supported_network_maps_every_key(args):
    state = random_state(args, seed=3)
    model = P.port(state, args)  # no missing, unexpected or mis-shaped key
    first = next(k for k in state if k.endswith("weight") and state[k].ndim == 4
                 and "_mean" not in k)
    layer_w = [w for w in model.weights if len(w.shape) == 4 and tuple(w.shape) ==
               mapping.to_keras("conv", [state[first]])[0].shape]
    assert any(np.array_equal(keras.ops.convert_to_numpy(w),
                              mapping.to_keras("conv", [state[first]])[0]) for w in layer_w)
    with pytest.raises(ValueError, match="Missing key"):
        P.port(dict(list(state.items())[1:]), args)


# ------------------------------------------------------------------------ errors
@pytest.mark.parametrize("args, match", [
    ("--model MobileNet", r"Unknown network .*`--model`.*Received --model 'MobileNet'"),
    ("--depth 56", r"need `--model`"),
    ("--model ResNet_Basis --depth 56", r"`--k_size2`.*Received --k_size2 3"),
    ("--model ResNet --depth 57", r"`--depth`.*6n \+ 2.*Received --depth 57"),
    ("--model EDSR --scale 2+3", r"`--scale`.*Received --scale '2\+3'"),
    ("--model SRResNet_Basis", r"`--bn_every`"),
    ("--model EDSR --n_feats x", r"`--n_feats`. Expected a int. Received --n_feats 'x'"),
])
def test_unsupported_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        P.port({}, args)


def test_stored_namespace_args_become_a_command_line():
    import argparse

    ns = argparse.Namespace(model="EDSR_Basis", scale=[2], n_resblocks=8, bn_every=False,
                            share_basis=True, save="a b")
    spec = A.parse(P.namespace_to_args(ns))
    assert spec.model == "EDSR_Basis" and spec.options["scale"] == "2"
    assert spec.options["share_basis"] and not spec.options["bn_every"]
    assert spec.options["n_resblocks"] == 8


def test_missing_args_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match=r"pass the authors' arguments .*Received args=None"):
        P.port({}, None)
    with pytest.raises(ValueError, match=r"Expected a .pt/.pth or .npz file"):
        P.load_state(tmp_path / "x.h5")


def test_pt_without_torch_says_what_to_do(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "torch":
            raise ImportError("no torch")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"needs `torch` .*convert it to .npz"):
        P.load_state(tmp_path / "model_best.pt")


def test_pixel_shuffle_permutation_is_depth_to_space_of_pixel_shuffle():
    rng = np.random.default_rng(3)
    for r, c in ((2, 3), (3, 2)):
        y = rng.standard_normal((1, c * r * r, 2, 3))   # conv output, PyTorch channel order
        perm = mapping.shuffle_permutation(c * r * r, r)
        tf_in = np.transpose(y, (0, 2, 3, 1))[..., perm]
        ours = keras.ops.convert_to_numpy(keras.ops.depth_to_space(tf_in, r))
        np.testing.assert_array_equal(np.transpose(ours, (0, 3, 1, 2)), pixel_shuffle(y, r))
