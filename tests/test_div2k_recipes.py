"""SR recipes (examples/div2k): builders, parameter counts, data, evaluation.

Training, resume, strategies and the CPU experiment: tests/test_div2k_train.py.
"""

import csv
import os

import keras
import numpy as np
import pytest
from PIL import Image

import keras_basis
from examples.div2k import data as D
from examples.div2k import evaluate as E
from examples.div2k import metrics as M
from examples.div2k import models
from examples.div2k.models import build, edsr, edsr_8_128, srresnet

MEAN = 255.0 * np.array(models.DIV2K_RGB_MEAN)


# -------------------------------------------------------------- NumPy references
def conv(x, kernel, bias=None):
    """'same' stride-1 convolution of an (H, W, C) map with an odd (kh, kw, C, N) kernel."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[:2]
    out = sum(xp[i:i + h, j:j + w] @ kernel[i, j] for i in range(kh) for j in range(kw))
    return out if bias is None else out + bias


def depthwise(x, kernel, bias):
    return np.stack([conv(x[..., c:c + 1], kernel[:, :, c:c + 1, :])[..., 0]
                     for c in range(x.shape[-1])], axis=-1) + bias


def shuffle(x, r):
    """TF depth_to_space: out[h*r+i, w*r+j, c] = in[h, w, (i*r+j)*C + c]."""
    h, w, crr = x.shape
    return x.reshape(h, w, r, r, crr // (r * r)).transpose(0, 2, 1, 3, 4).reshape(
        h * r, w * r, crr // (r * r))


def prelu(x, alpha):
    return np.maximum(x, 0) + float(np.ravel(alpha)[0]) * np.minimum(x, 0)


def bn(x, gamma, beta, mean, var):
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def randomise(model, seed=0):
    """Random biases, BN statistics and PReLU slopes so that every term shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            v = keras.ops.convert_to_numpy(w)
            name = w.name.split("/")[-1]
            if name in ("bias", "beta", "moving_mean"):
                v = rng.normal(0, 0.5, v.shape)
            elif name in ("gamma", "moving_variance"):
                v = rng.uniform(0.5, 1.5, v.shape)
            elif name == "alpha":
                v = rng.uniform(0.1, 0.4, v.shape)
            new.append(v.astype("float32"))
        if new:
            layer.set_weights(new)


def W(model, name):
    return [np.asarray(v, dtype=np.float64) for v in model.get_layer(name).get_weights()]


def edsr_reference(model, lr, variant, res_scale, scale, sic=1):
    x = lr - MEAN
    x0 = conv(x, *W(model, "head_conv"))
    y = x0
    for i in (1, 2):
        p = f"block01_conv{i}"
        if variant == "basis-s":  # the shared basis, each call's BasisBias, its 1x1
            (basis,) = W(model, "block01_basis")
            (basis_bias,) = W(model, f"{p}_basis_bias")
            y = conv(conv(y, basis, basis_bias), *W(model, f"{p}_coef"))
        elif variant == "factor":
            for j in range(1, sic + 1):
                t = depthwise(y, *W(model, f"{p}_sic{j}_dw"))
                y = np.maximum(conv(t, *W(model, f"{p}_sic{j}_pw")) + y, 0)
        else:
            y = conv(y, *W(model, p))
        if i == 1:
            y = np.maximum(y, 0)
    y = y * res_scale + x0
    z = conv(y, *W(model, "body_conv")) + x0
    for k in range(1, (2 if scale == 4 else 1) + 1):
        r = 3 if scale == 3 else 2
        z = shuffle(conv(z, *W(model, f"up{k}_conv")), r)
    return conv(z, *W(model, "tail_conv")) + MEAN


def srresnet_basis_reference(model, lr, scale, depth):
    (alpha,) = W(model, "act")  # the authors' one PReLU for the head and every block
    x0 = prelu(conv(lr, *W(model, "head_conv")), alpha)
    y = x0
    for k in (1, 2):
        p = f"block01_conv{k}"
        basis, bias = W(model, f"{p}_basis")  # the authors' basis bias: one per filter
        splits = y.shape[-1] // depth
        y = np.concatenate(
            [conv(y[..., g * depth:(g + 1) * depth], basis, bias) for g in range(splits)],
            axis=-1)
        y = prelu(bn(y, *W(model, f"{p}_basis_bn")), alpha)
        y = conv(y, *W(model, f"{p}_coef"))
        y = prelu(bn(y, *W(model, f"{p}_bn")), alpha)
    y = y + x0
    z = bn(conv(y, *W(model, "body_conv")), *W(model, "body_bn")) + x0
    r = 3 if scale == 3 else 2
    for k in range(1, (2 if scale == 4 else 1) + 1):
        z = prelu(shuffle(conv(z, *W(model, f"up{k}_conv")), r), *W(model, f"up{k}_act"))
    return conv(z, *W(model, "tail_conv"))


# ------------------------------------------------------------------------ builders
@pytest.mark.parametrize("preset", sorted(models.PRESETS))
def test_block_params_equal_the_paper(preset):
    model = build(preset, 4, num_blocks=1)   # the count of one block needs one block
    (block,) = models.block_weight_counts(model)
    assert block == models.PAPER_BLOCK_PARAMS[preset]
    assert round(block / 1000) == models.PAPER_PRINTED_K[preset]


def test_paper_block_numbers_are_the_issue_numbers():
    expected = {"edsr-8-128": 294_912, "edsr-8-128-basis-128-27": 69_120,
                "edsr-8-128-basis-128-40": 102_400, "srresnet-basis-64-14": 17_920,
                "srresnet-basis-32-32": 26_624, "edsr": 1_179_648, "edsr-basis": 163_840,
                "edsr-basis-s": 90_112}
    assert {k: models.PAPER_BLOCK_PARAMS[k] for k in expected} == expected


def test_whole_network_weight_count_by_hand():
    model = build("edsr-8-128", 4)
    c = 128
    by_hand = 3 * c * 9 + 8 * 2 * c * c * 9 + c * c * 9 + 2 * c * 4 * c * 9 + c * 3 * 9
    assert models.weight_count(model) == by_hand
    biases = c + 8 * 2 * c + c + 2 * 4 * c + 3
    assert model.count_params() == by_hand + biases
    model = build("srresnet-basis-32-32", 3, num_blocks=2)
    per_block = 2 * (32 * 32 * 9 + 2 * 32 * 64)
    by_hand = 3 * 64 * 81 + 2 * per_block + 64 * 64 * 9 + 64 * 9 * 64 * 9 + 64 * 3 * 9
    assert models.weight_count(model) == by_hand


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(
    "builder, kwargs",
    [
        (srresnet, {}),
        (srresnet, {"num_basis": 3, "basis_depth": 4}),
        (edsr, {"res_scale": 0.1}),
        (edsr_8_128, {"num_basis": 3, "share_basis": True}),
        (edsr_8_128, {"sic_layers": 2}),
    ],
)
def test_output_size_any_input(builder, kwargs, scale):
    model = builder(scale, num_blocks=1, channels=8, **kwargs)
    x = np.random.default_rng(0).uniform(0, 255, (2, 7, 10, 3)).astype("float32")
    assert tuple(model(x).shape) == (2, 7 * scale, 10 * scale, 3)
    fixed = builder(scale, num_blocks=1, channels=8, input_shape=(6, 5, 3), **kwargs)
    assert fixed.output_shape == (None, 6 * scale, 5 * scale, 3)


@pytest.mark.parametrize("variant, res_scale, scale", [
    ("baseline", 0.1, 2), ("basis-s", 0.1, 4), ("factor", 1.0, 3)])
def test_edsr_matches_numpy_reference(variant, res_scale, scale):
    kwargs = {"basis-s": {"num_basis": 3, "share_basis": True},
              "factor": {"sic_layers": 2}}.get(variant, {})
    keras.utils.set_random_seed(0)  # the kernels (randomise sets the other weights)
    model = edsr(scale, num_blocks=1, channels=4, res_scale=res_scale, **kwargs)
    randomise(model)
    lr = np.random.default_rng(1).uniform(0, 255, (6, 5, 3))
    ref = edsr_reference(model, lr, variant, res_scale, scale, sic=2)
    out = keras.ops.convert_to_numpy(model(lr[None].astype("float32")))[0]
    # float32 against float64: 2e-5 at most over 12 seeds on outputs of about 150
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("scale", [3, 4])
def test_srresnet_basis_bn_every_matches_numpy_reference(scale):
    keras.utils.set_random_seed(0)
    model = srresnet(scale, num_blocks=1, channels=4, num_basis=3, basis_depth=2)
    randomise(model)
    lr = np.random.default_rng(2).uniform(0, 255, (5, 6, 3))
    ref = srresnet_basis_reference(model, lr, scale, depth=2)
    out = keras.ops.convert_to_numpy(model(lr[None].astype("float32"), training=False))[0]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3)  # 1e-5 at most, 8 seeds


def test_basis_s_is_one_shared_weight_and_survives_keras_roundtrip(tmp_path):
    model = edsr_8_128(2, num_blocks=2, channels=8, num_basis=3, share_basis=True)
    bases = [la for la in model.layers if isinstance(la, keras_basis.BasisConv2D)]
    assert [b.name for b in bases] == ["block01_basis", "block02_basis"]
    assert models.block_weight_counts(model) == [3 * 8 * 9 + 2 * 3 * 8] * 2
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).uniform(0, 255, (1, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-4)
    assert models.block_weight_counts(loaded) == models.block_weight_counts(model)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: edsr(5), ValueError,
         r"argument `scale` of edsr\(\). Expected one of \(2, 3, 4\). Received scale=5"),
        (lambda: srresnet(4, basis_depth=48, num_basis=3), ValueError,
         r"argument `basis_depth` of srresnet\(\). Expected a divisor of channels=64. "
         r"Received basis_depth=48"),
        (lambda: edsr_8_128(4, num_basis=3, sic_layers=2), ValueError,
         r"`num_basis` and `sic_layers` of edsr\(\) are mutually exclusive"),
        (lambda: edsr_8_128(4, share_basis=True), ValueError,
         r"`basis_depth` and `share_basis` of edsr\(\) need `num_basis`"),
        (lambda: srresnet(4, num_basis=2.5), TypeError,
         r"argument `num_basis` of srresnet\(\). Expected an int. Received num_basis=2.5"),
        (lambda: edsr(4, res_scale=0), ValueError,
         r"argument `res_scale` of edsr\(\). Expected a positive number. Received res_scale=0"),
        (lambda: build("edsr-9"), ValueError,
         r"argument `preset`. Expected one of .* Received preset='edsr-9'"),
        (lambda: edsr(4, num_basis=8, basis_init="he"), ValueError,
         r"argument `basis_init` of edsr\(\). Expected one of \('authors', 'matched'\). "
         r"Received basis_init='he'"),
        (lambda: models.PixelShuffle(0, name="ps"), ValueError,
         r"argument `scale` of layer 'ps'. Expected a positive int. Received scale=0"),
    ],
)
def test_builder_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("splits", [1, 2])
def test_basis_init_composed_filter_variance(splits):
    """'matched': the composed 3x3 filters have the plain conv's PyTorch-default variance
    1 / (3 * 9 * c); 'authors' (Kaiming-uniform basis and coefficients): 4 / (9 * c), 12x."""
    c, m = 64, 24
    plain = 1.0 / (3 * 9 * c)
    for init, expected in (("matched", plain), ("authors", 4.0 / (9 * c))):
        keras.utils.set_random_seed(3)
        model = edsr(4, num_blocks=2, channels=c, res_scale=1.0, num_basis=m,
                     basis_depth=c // splits, basis_init=init)
        variances = []
        for i in (1, 2):
            for k in (1, 2):
                basis = model.get_layer(f"block{i:02d}_conv{k}_basis").basis.numpy()
                coef = model.get_layer(f"block{i:02d}_conv{k}_coef").kernel.numpy()[0, 0]
                # split g uses coefficient rows g*m .. g*m+m-1 (split-major outputs)
                w = np.stack([np.tensordot(basis, coef[g * m:(g + 1) * m], axes=([3], [0]))
                              for g in range(splits)], axis=2)
                variances.append(w.var())
        assert np.mean(variances) == pytest.approx(expected, rel=0.06), init
    keras.utils.set_random_seed(3)
    base = edsr(4, num_blocks=1, channels=c, res_scale=1.0)
    assert base.get_layer("block01_conv1").kernel.numpy().var() == pytest.approx(plain, rel=0.06)


def test_basis_init_matched_keeps_the_output_scale_of_the_plain_network():
    x = np.random.default_rng(0).uniform(0, 255, (1, 24, 24, 3)).astype("float32")
    stds = {}
    for key, kwargs in (("plain", {}), ("matched", {"basis_init": "matched"}),
                        ("authors", {"basis_init": "authors"})):
        keras.utils.set_random_seed(0)
        if kwargs:
            kwargs.update(num_basis=27)
        stds[key] = float(np.std(edsr_8_128(4, **kwargs)(x)))
    assert 0.5 < stds["matched"] / stds["plain"] < 2.0
    assert stds["authors"] / stds["plain"] > 100  # the released init starts far off


def test_pixel_shuffle_exports_as_depth_to_space_and_matches_keras(tmp_path):
    keras.utils.set_random_seed(1)
    model = edsr(2, num_blocks=1, channels=8, res_scale=1.0, num_basis=4,
                 input_shape=(10, 12, 3))
    path = keras_basis.export_tflite(model, tmp_path / "sr.tflite")
    ops = [op["op"] for op in keras_basis.tflite.tflite_ops(path)]
    assert "DEPTH_TO_SPACE" in ops
    x = np.random.default_rng(0).uniform(0, 255, (2, 10, 12, 3)).astype("float32")
    ref = model.predict(x, verbose=0)
    got = keras_basis.tflite.run_tflite(path, x)
    got = got[0] if isinstance(got, list) else got
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_params_script(capsys):
    from examples.div2k import params

    assert params.main(["--preset", "srresnet-basis-32-32", "--preset", "srresnet"]) == 0
    out = capsys.readouterr().out
    assert "26,624" in out and "36.1%" in out and "MISMATCH" not in out


@pytest.mark.slow
def test_params_script_full_size_networks(capsys):
    from examples.div2k import params

    assert params.main([]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out and out.count(" ok") == len(models.PRESETS)


# ---------------------------------------------------------------------------- data
def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _rand(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_div2k_layout_and_missing_lr(tmp_path):
    for i in (1, 2):
        _png(tmp_path / "DIV2K_train_HR" / f"000{i}.png", _rand((24, 36, 3), i))
        _png(tmp_path / "DIV2K_train_LR_bicubic" / "X3" / f"000{i}x3.png", _rand((8, 12, 3), i))
    _png(tmp_path / "DIV2K_valid_HR" / "0801.png", _rand((24, 36, 3), 9))
    pairs = D.div2k_pairs(tmp_path, 3)
    assert [p.name for p in pairs] == ["0001", "0002"]
    hr, lr = D.load_pair(pairs[1], 3)
    np.testing.assert_array_equal(hr, _rand((24, 36, 3), 2))
    np.testing.assert_array_equal(lr, _rand((8, 12, 3), 2))
    found, desc = D.discover_train(tmp_path, 3)
    assert found == pairs and desc.startswith("DIV2K train: 2 images")
    # no LR folder for x2 or for the validation split: made on the fly
    (valid,) = D.div2k_pairs(tmp_path, 2, "valid")
    assert valid.lr is None
    hr, lr = D.load_pair(valid, 2)
    np.testing.assert_array_equal(lr, D.downscale(_rand((24, 36, 3), 9), 2))
    os.remove(tmp_path / "DIV2K_train_LR_bicubic" / "X3" / "0002x3.png")
    with pytest.raises(FileNotFoundError, match=r"1 LR images are missing in .*X3.*0002x3.png"):
        D.div2k_pairs(tmp_path, 3)
    with pytest.raises(ValueError, match=r"argument `split`. Expected 'train' or 'valid'"):
        D.div2k_pairs(tmp_path, 3, "test")


def test_hr_folder_with_lr_on_the_fly(tmp_path):
    _png(tmp_path / "b.png", _rand((30, 21, 3), 1))
    Image.fromarray(_rand((16, 16, 3), 2)).save(tmp_path / "a.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    pairs = D.folder_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a", "b"]
    hr, lr = D.load_pair(pairs[1], 4)
    assert hr.shape == (28, 20, 3) and lr.shape == (7, 5, 3)  # modcrop to a multiple of 4
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"contains no images"):
        D.folder_pairs(tmp_path / "empty")


def test_benchmark_layouts(tmp_path):
    hr = _rand((36, 45, 3), 3)
    lr = _rand((12, 15, 3), 4)
    _png(tmp_path / "a" / "benchmark" / "SetX" / "HR" / "baby.png", hr)
    _png(tmp_path / "a" / "benchmark" / "SetX" / "LR_bicubic" / "X3" / "babyx3.png", lr)
    _png(tmp_path / "b" / "SetX" / "X3" / "HR" / "img_001.png", hr)
    _png(tmp_path / "b" / "SetX" / "X3" / "LR" / "img_001.png", lr)
    for root, name in ((tmp_path / "a", "baby"), (tmp_path / "a" / "benchmark", "baby"),
                       (tmp_path / "b", "img_001")):
        (pair,) = D.benchmark_pairs(root, "SetX", 3)
        assert pair.name == name
        got_hr, got_lr = D.load_pair(pair, 3)
        np.testing.assert_array_equal(got_hr, hr)
        np.testing.assert_array_equal(got_lr, lr)
    with pytest.raises(FileNotFoundError, match=r"'SetX' at scale x2 not found .* looked for"):
        D.benchmark_pairs(tmp_path / "b", "SetX", 2)
    E.main(["bicubic", "--scale", "3", "--benchmark-dir", str(tmp_path / "b"), "--sets", "SetX",
            "--output-dir", str(tmp_path / "eval")])
    (row,) = _rows(tmp_path / "eval" / "eval_summary.csv")
    sr = D.upscale(lr, 3).astype(float)
    assert float(row["psnr"]) == pytest.approx(M.psnr(sr, hr.astype(float), 3), abs=1e-4)
    assert row["set"] == "SetX" and row["protocol"] == "benchmark" and row["n"] == "1"


def test_shared_set5_set14_pairs(shared_data):
    root = shared_data / "sr-benchmarks"
    pairs = D.benchmark_pairs(root, "Set5", 4)
    assert [p.name for p in pairs] == [f"img_00{i}" for i in range(1, 6)]
    for pair in pairs[:2]:
        hr, lr = D.load_pair(pair, 4)
        assert hr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
        # our bicubic vs the files' MATLAB imresize: close, not identical
        ours = D.downscale(hr, 4).astype(float)
        assert 45.0 < M.psnr(ours, lr.astype(float), 0, y_only=False) < 70.0
    # the protocol reproduces the bicubic row of the SR literature (Set5 x4: 28.42 / 0.8104)
    r = E.evaluate_pairs("bicubic", pairs, 4)
    assert r["psnr"] == pytest.approx(28.42, abs=0.05) and r["ssim"] == pytest.approx(0.8104,
                                                                                      abs=0.002)
    bridge = D.load_pair(D.benchmark_pairs(root, "Set14", 3)[2], 3)[0]   # grey PNG
    assert bridge.ndim == 3 and bridge.shape[-1] == 3
    np.testing.assert_array_equal(bridge[..., 0], bridge[..., 2])


def test_bicubic_is_tf_antialiased_bicubic_and_keeps_constants():
    import tensorflow as tf

    img = _rand((40, 36, 3), 5)
    ours = D.downscale(img, 4).astype(int)
    ref = np.clip(np.round(tf.image.resize(img.astype("float32"), (10, 9), "bicubic",
                                           antialias=True).numpy()), 0, 255)
    assert np.abs(ours - ref).max() <= 1
    flat = np.full((12, 12, 3), 77, np.uint8)
    np.testing.assert_array_equal(D.downscale(flat, 3), 77)
    np.testing.assert_array_equal(D.upscale(flat[:4, :4], 3), 77)


def test_patch_sampler_alignment_flips_and_transpose():
    s, p = 2, 5
    rng = np.random.default_rng(0)
    images = []
    for shape in ((16, 22), (20, 14)):
        hr = rng.integers(0, 256, shape + (3,)).astype(np.uint8)
        lr = hr.reshape(shape[0] // s, s, shape[1] // s, s, 3).mean(axis=(1, 3))  # box mean
        images.append((hr, lr))
    sampler = D.PatchSampler(images, s, p, batch_size=64, seed=1)
    lr, hr = sampler.batch()
    assert lr.shape == (64, p, p, 3) and hr.shape == (64, p * s, p * s, 3)
    np.testing.assert_allclose(hr.reshape(64, p, s, p, s, 3).mean(axis=(2, 4)), lr, atol=1e-4)
    # the 8 symmetries all occur: look at where each patch's HR top-left came from
    corners = {tuple(np.round(x[0, 0]).astype(int)) for x in hr}
    assert len(corners) > 16
    with pytest.raises(ValueError, match=r"every LR image is smaller than patch_size=12"):
        D.PatchSampler(images, s, 12, 4)


def test_patch_sampler_dataset_shapes():
    images = [(_rand((32, 32, 3), 0), _rand((8, 8, 3), 1))]
    ds = D.PatchSampler(images, 4, 6, 3).dataset()
    lr, hr = next(iter(ds))
    assert tuple(lr.shape) == (3, 6, 6, 3) and tuple(hr.shape) == (3, 24, 24, 3)


# ------------------------------------------------------------------------- evaluate
def test_evaluate_pairs_values_and_csv(tmp_path):
    pairs, truth = [], {}
    for i in range(2):
        hr = np.full((40, 44, 3), 60.0 + 10 * i)
        lr = D.downscale(hr.astype(np.uint8), 2)
        pairs.append(D.SRPair(f"im{i}", hr.astype(np.uint8), lr))
        truth[lr.tobytes()] = hr

    def offset_model(lr):   # the ground truth + 2 in every channel
        return truth[lr.tobytes()] + 2.0

    r = E.evaluate_pairs(offset_model, pairs, 2, "benchmark", tmp_path / "set.csv")
    expected = 20 * np.log10(255 / (2 * (65.738 + 129.057 + 25.064) / 256))
    assert r["n"] == 2 and r["psnr"] == pytest.approx(expected, abs=1e-9)
    rows = list(csv.reader(open(tmp_path / "set.csv")))
    assert rows[0] == ["image", "psnr", "ssim"] and [x[0] for x in rows[1:]] == ["im0", "im1"]
    assert float(rows[1][1]) == pytest.approx(expected, abs=1e-4)
    b = E.evaluate_pairs("bicubic", pairs, 2)   # flat images: bicubic is exact
    assert b["psnr"] == float("inf")
    with pytest.raises(ValueError, match=r"argument `model`. Expected a model, a callable or "
                                         r"'bicubic'. Received model='nearest'"):
        E.evaluate_pairs("nearest", pairs, 2)


def _rows(path):
    return list(csv.DictReader(open(path)))
