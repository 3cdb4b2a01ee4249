"""The ``keras-basis`` command line, driven in subprocesses on a tiny model.

Every subcommand runs as ``python -m keras_basis ...`` in a fresh process (the
way a user runs it); independent invocations run concurrently to keep the
TensorFlow start-up cost (several seconds each) down.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Lines TensorFlow's C++ runtime prints at import time, before our code runs
# (not controllable by TF_CPP_MIN_LOG_LEVEL); everything else must be ours.
_NATIVE_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} \d\d:\d\d:\d\d"
    r"|To enable the following instructions)"
)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


def _start(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_basis", *map(str, args)],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_many(commands, cwd, timeout=300, jobs=4):
    """Run CLI invocations, ``jobs`` at a time; return their CompletedProcess in order."""
    results, running, queue = {}, [], list(enumerate(commands))
    while queue or running:
        while queue and len(running) < jobs:
            i, args = queue.pop(0)
            running.append((i, args, _start(args, cwd)))
        i, args, proc = running.pop(0)
        out, err = proc.communicate(timeout=timeout)
        results[i] = subprocess.CompletedProcess(args, proc.returncode, out, err)
    return [results[i] for i in range(len(commands))]


def run_cli(*args, cwd, timeout=300):
    return run_many([args], cwd, timeout)[0]


def own_stderr_lines(result):
    """stderr without TensorFlow's import-time native log lines."""
    return [
        line for line in result.stderr.splitlines()
        if line.strip() and not _NATIVE_LOG.match(line)
    ]


def assert_ok(result):
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )


def _tiny_model():
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(1)
    x = inputs = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c3")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _conv_weights(model):
    """Weights of the convolution kernels (dense, basis and coefficients), no biases."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            total += int(np.prod(layer.kernel.shape))
        elif type(layer).__name__ == "BasisConv2D":
            total += int(np.prod(layer.basis.shape))
    return total


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with tiny.keras, a calibration image folder and a non-model file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("cli")
    model = _tiny_model()
    model.save(root / "tiny.keras")
    rng = np.random.default_rng(0)
    calib = root / "calib" / "class_a"
    calib.mkdir(parents=True)
    for i in range(12):
        pixels = (rng.random((12, 10, 3)) * 255).astype("uint8")  # resized to 8x8
        Image.fromarray(pixels).save(calib / f"img{i:02d}.png")
    (root / "notes.keras").write_text("this is not a model\n")
    (root / "a_file").write_text("a file, not a folder\n")
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def compressed(work):
    """Run ``compress`` twice concurrently: ratio 0.5 and a lossless num-basis."""
    half, exact = run_many(
        [
            # the parameter budget: under the default (MACs, pairs only at <= half a
            # layer's MACs) this tiny model cannot be halved ("ratio out of reach" below)
            ["compress", "tiny.keras", "half.keras", "--ratio", "0.5", "--objective", "params"],
            # Full rank saves nothing: naming the layers forces the pairs (else exit 3).
            ["compress", "tiny.keras", "exact.keras", "--num-basis", "1000", "--splits", "1",
             "--layers", "c1", "c2", "c3"],
        ],
        work,
    )
    return half, exact


def test_compress_ratio_halves_conv_weights_and_prints_report(work, compressed):
    import keras

    import keras_basis

    half, _ = compressed
    assert_ok(half)
    for name in ("c1", "c2", "c3"):
        assert re.search(rf"^{name}\s", half.stdout, re.M), half.stdout
    assert "saved half.keras" in half.stdout
    original = keras.models.load_model(work / "tiny.keras")
    small = keras.models.load_model(work / "half.keras")
    pairs = keras_basis.basis_pairs(small)
    assert [p.name for p in pairs] == ["c1", "c2", "c3"]
    before, after = _conv_weights(original), _conv_weights(small)
    assert before == 8 * 27 + 16 * 72 + 16 * 144
    assert 0.35 * before <= after <= 0.5 * before, (before, after)


def test_compress_full_rank_reproduces_outputs(work, compressed):
    import keras

    import keras_basis

    _, exact = compressed
    assert_ok(exact)
    original = keras.models.load_model(work / "tiny.keras")
    small = keras.models.load_model(work / "exact.keras")
    assert [p.name for p in keras_basis.basis_pairs(small)] == ["c1", "c2", "c3"]
    x = np.random.default_rng(2).random((4, 8, 8, 3)).astype("float32")
    want = original.predict(x, verbose=0)
    got = small.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _split_singular_values(kernel, s):
    """Independent reference: singular values of the s-split matrix of a kernel.

    The s channel groups of the (kh, kw, c, n) kernel, each reshaped to
    (kh*kw*c/s, n), side by side: a (kh*kw*c/s) x (n*s) matrix (the order of
    rows and columns does not change its singular values).
    """
    kh, kw, c, n = kernel.shape
    p = c // s
    blocks = [kernel[:, :, i * p:(i + 1) * p, :].reshape(kh * kw * p, n) for i in range(s)]
    return np.linalg.svd(np.concatenate(blocks, axis=1), compute_uv=False)


def test_report_and_plot(work, compressed):
    assert_ok(compressed[0])
    plot, plot_orig = work / "spectra.png", work / "spectra_orig.png"
    result, original = run_many(
        [
            ["report", "half.keras", "--reference", "tiny.keras", "--plot", plot.name],
            ["report", "tiny.keras", "--ratio", "0.3", "--objective", "params", "--plot",
             plot_orig.name],
        ],
        work,
    )
    assert_ok(result)
    assert_ok(original)
    assert "basis pairs" in result.stdout
    # One panel per Conv2D of the model (3), three panels a row of 420 x 290 pixels.
    assert f"saved {plot.name} (3 layers)" in result.stdout
    assert f"saved {plot_orig.name} (3 layers)" in original.stdout
    assert _png_size(plot) == _png_size(plot_orig) == (3 * 420, 290 + 50)
    assert plot.stat().st_size > 10_000
    assert "candidate" in original.stdout
    for name in ("c1", "c2", "c3"):
        assert re.search(rf"^{name}\s", original.stdout, re.M)


def test_spectra_data_and_marks_behind_the_plot(work, compressed):
    """The entries --plot draws: the reference kernels' spectra and the m of each pair."""
    import keras

    import keras_basis
    from keras_basis import plots, transform

    assert_ok(compressed[0])
    tiny = keras.models.load_model(work / "tiny.keras")
    half = keras.models.load_model(work / "half.keras")
    pairs = {p.name: p for p in keras_basis.basis_pairs(half)}
    entries = transform.spectra(half, tiny)
    assert [e["name"] for e in entries] == ["c1", "c2", "c3"]
    for e in entries:
        pair = pairs[e["name"]]
        assert e["marks"][0][0] == pair.m and len(e["marks"]) == 1
        assert (e["c"], e["n"], e["s"]) == (pair.c, pair.n, pair.s)
        kernel = np.asarray(tiny.get_layer(e["name"]).kernel)
        np.testing.assert_allclose(e["sv"], _split_singular_values(kernel, pair.s),
                                   rtol=1e-4, atol=1e-6)
    # An original model with --ratio 0.5: the m that compress --ratio 0.5 chose.
    planned = transform.spectra(tiny, ratio=0.5, objective="params")
    assert [(e["name"], e["s"], e["marks"][0][0]) for e in planned] == [
        (p.name, p.s, p.m) for p in pairs.values()]
    # An original model without a size: m keeping 90% and 99% of the energy.
    for e in transform.spectra(tiny, splits=1):
        kernel = np.asarray(tiny.get_layer(e["name"]).kernel)
        sv = _split_singular_values(kernel, 1)
        energy = np.cumsum(sv.astype(np.float64) ** 2) / np.sum(sv.astype(np.float64) ** 2)
        want = [int(np.argmax(energy >= f - 1e-9)) + 1 for f in (0.9, 0.99)]
        assert [m for m, _ in e["marks"]] == want, (e["name"], energy)
    # The figure draws each mark at m + 0.5, one panel per entry.
    fig = plots.spectra_figure(entries, "half.keras")
    assert len(fig.axes) == 3
    for ax, e in zip(fig.axes, entries):
        xs = [line.get_xdata()[0] for line in ax.get_lines()[1:]]
        assert xs == [m + 0.5 for m, _ in e["marks"]]
        assert ax.get_lines()[0].get_ydata()[0] == pytest.approx(1.0)


def _verified_error(stdout):
    match = re.search(r"max \|TFLite - Keras\| = ([0-9.e+-]+)", stdout)
    assert match, stdout
    return float(match.group(1))


def test_export_float_int8_and_bench(work, compressed):
    import keras

    from keras_basis import tflite

    assert_ok(compressed[0])
    flt, int8, fold = run_many(
        [
            ["export", "half.keras", "half.tflite"],
            ["export", "half.keras", "half_int8.tflite", "--quantize", "int8",
             "--calibration-dir", "calib", "--scale", "2", "--offset", "-1"],
            ["export", "half.keras", "half_fold.tflite", "--fold"],
        ],
        work,
    )
    for r in (flt, int8, fold):
        assert_ok(r)
        assert "verified" in r.stdout and "bytes" in r.stdout
    assert _verified_error(flt.stdout) < 1e-4
    assert _verified_error(fold.stdout) < 1e-4
    assert "on 12 calibration images" in int8.stdout
    # Independent check of the float file: run it and compare with Keras here.
    model = keras.models.load_model(work / "half.keras")
    x = np.random.default_rng(3).random((5, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        tflite.run_tflite(work / "half.tflite", x), model.predict(x, verbose=0),
        rtol=1e-4, atol=1e-5,
    )
    # Three basis pairs: 6 convolutions (basis + coefficients); folded back: 3.
    assert tflite.op_histogram(work / "half.tflite")["CONV_2D"] == 6
    assert tflite.op_histogram(work / "half_int8.tflite")["CONV_2D"] == 6
    assert tflite.op_histogram(work / "half_fold.tflite")["CONV_2D"] == 3
    assert (work / "half_int8.tflite").stat().st_size < (work / "half.tflite").stat().st_size

    bench = run_cli("bench", "half.tflite", "half_int8.tflite", "--runs", "5", cwd=work)
    assert_ok(bench)
    rows = [ln.split() for ln in bench.stdout.splitlines() if ln.startswith("half")]
    assert [r[0] for r in rows] == ["half.tflite", "half_int8.tflite"]
    for r in rows:
        size = int(r[1].replace(",", ""))
        assert size == (work / r[0]).stat().st_size
        assert float(r[4]) > 0 and float(r[5]) >= float(r[4])  # median, p90


@pytest.fixture(scope="module")
def compress_options(work):
    """compress with --share (explicit group, network), --layers, --init svd/data."""
    base = ["compress", "tiny.keras"]
    names = ["share_group", "share_network", "layers_name", "layers_regex", "init_svd",
             "init_data"]
    results = run_many(
        [
            base + ["share_group.keras", "--num-basis", "4", "--share", "c2,c3"],
            base + ["share_network.keras", "--num-basis", "4", "--share", "network"],
            base + ["layers_name.keras", "--num-basis", "2", "--layers", "c2"],
            base + ["layers_regex.keras", "--num-basis", "2", "--layers", "c[13]"],
            base + ["init_svd.keras", "--num-basis", "2", "--splits", "1"],
            base + ["init_data.keras", "--num-basis", "2", "--splits", "1", "--init", "data",
                    "--calibration-dir", "calib"],
        ],
        work,
    )
    return dict(zip(names, results))


def _basis_layers(model):
    return [layer for layer in model.layers if type(layer).__name__ == "BasisConv2D"]


def test_compress_share_stores_one_basis(work, compress_options):
    import keras

    import keras_basis

    for name, n_bases in (("share_group", 2), ("share_network", 1)):
        assert_ok(compress_options[name])
        small = keras.models.load_model(work / f"{name}.keras")
        pairs = keras_basis.basis_pairs(small)
        assert [p.name for p in pairs] == ["c1", "c2", "c3"]
        bases = _basis_layers(small)
        assert len(bases) == n_bases, [b.name for b in bases]
        # c2 and c3 use one basis: the same layer, one weight in the saved file.
        assert pairs[1].basis_layer is pairs[2].basis_layer
        assert len([w for w in small.weights if w.path.endswith("/basis")]) == n_bases
    group = keras.models.load_model(work / "share_group.keras")
    assert pairs_m(group) == [4, 4, 4]
    assert tuple(group.get_layer("c3").kernel.shape) == (1, 1, 4 * 4, 16)  # s=4, m=4


def pairs_m(model):
    import keras_basis

    return [p.m for p in keras_basis.basis_pairs(model)]


def test_compress_layers_compresses_only_the_matching_ones(work, compress_options):
    import keras

    import keras_basis

    original = keras.models.load_model(work / "tiny.keras")
    for name, chosen in (("layers_name", {"c2"}), ("layers_regex", {"c1", "c3"})):
        assert_ok(compress_options[name])
        small = keras.models.load_model(work / f"{name}.keras")
        assert {p.name for p in keras_basis.basis_pairs(small)} == chosen
        for layer in ("c1", "c2", "c3"):
            if layer in chosen:
                continue
            kept = small.get_layer(layer)
            assert type(kept) is keras.layers.Conv2D and kept.kernel_size == (3, 3)
            np.testing.assert_array_equal(kept.kernel.numpy(),
                                          original.get_layer(layer).kernel.numpy())


def _calibration_images(folder, size=(8, 8)):
    """The calibration folder read as the CLI must: sorted, RGB, bilinear, / 255."""
    from PIL import Image

    files = sorted(folder.rglob("*.png"))
    return np.stack([
        np.asarray(Image.open(f).convert("RGB").resize(size[::-1], Image.BILINEAR),
                   np.float32) / 255.0
        for f in files
    ])


def test_compress_init_data_refits_on_the_calibration_images(work, compress_options):
    import keras

    assert_ok(compress_options["init_svd"])
    assert_ok(compress_options["init_data"])
    original = keras.models.load_model(work / "tiny.keras")
    svd = keras.models.load_model(work / "init_svd.keras")
    data = keras.models.load_model(work / "init_data.keras")
    x = _calibration_images(work / "calib")
    assert x.shape == (12, 8, 8, 3)
    want = original.predict(x, verbose=0)

    def error(model):
        return np.linalg.norm(model.predict(x, verbose=0) - want) / np.linalg.norm(want)

    assert not np.allclose(svd.get_layer("c2").kernel.numpy(),
                           data.get_layer("c2").kernel.numpy())
    # m = 2 of 8-16 filters: the SVD start is poor on these images; the refit is not.
    assert error(data) < 0.5 * error(svd), (error(data), error(svd))


def test_export_fold_auto_follows_its_printed_plan(work, compressed):
    from keras_basis import tflite

    assert_ok(compressed[0])
    result = run_cli("export", "half.keras", "half_auto.tflite", "--fold", "auto", cwd=work)
    assert_ok(result)
    decisions = re.findall(r"^\s+(c\d)\s.*-> (fold|keep)\b", result.stdout, re.M)
    assert [name for name, _ in decisions] == ["c1", "c2", "c3"], result.stdout
    folded = sum(d == "fold" for _, d in decisions)
    # A kept pair is two convolutions (basis + coefficients), a folded one is one.
    assert tflite.op_histogram(work / "half_auto.tflite")["CONV_2D"] == 6 - folded
    assert f"CONV_2D x{6 - folded}" in result.stdout
    assert _verified_error(result.stdout) < 1e-4


def _script(name, *args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "tflite" / name), *map(str, args)], cwd=cwd, env=_env(),
        capture_output=True, text=True, timeout=300,
    )


def test_tflite_scripts_are_the_cli_commands(work, compressed):
    """tflite/convert.py and benchmark.py take the flags of export and bench."""
    import json

    from keras_basis import tflite

    assert_ok(compressed[0])
    convert = _script("convert.py", "half.keras", "script_int8.tflite", "--quantize", "int8",
                      "--int8-io", "--calibration-dir", "calib", "--num-calibration", "6",
                      "--scale", "2,2,2", "--offset", "-1", "--num-verify", "4", cwd=work)
    assert_ok(convert)
    assert "on 4 calibration images" in convert.stdout
    ops = tflite.tflite_ops(work / "script_int8.tflite")
    assert ops[0]["inputs"][0]["dtype"] == ops[-1]["outputs"][0]["dtype"] == "INT8"  # --int8-io
    bench = _script("benchmark.py", "script_int8.tflite", "--threads", "1,2", "--runs", "3",
                    "--xnnpack", "both", "--ops", "--json", "bench.json", cwd=work)
    assert_ok(bench)
    report = json.loads((work / "bench.json").read_text())
    assert [(r["threads"], r["xnnpack"]) for r in report["latency"]] == [
        (1, True), (2, True), (1, False), (2, False)]
    assert report["ops"] == {"script_int8.tflite": tflite.op_histogram(
        work / "script_int8.tflite")}
    assert report["sizes"]["script_int8.tflite"] == (work / "script_int8.tflite").stat().st_size
    rows = [ln.split() for ln in bench.stdout.splitlines() if ln.startswith("script_int8")]
    assert [(r[3], r[7]) for r in rows] == [("1", "on"), ("2", "on"), ("1", "off"),
                                            ("2", "off")]
    bad = _script("convert.py", "half.keras", "o.tflite", "--calibration-count", "5", cwd=work)
    assert bad.returncode == 2
    assert "python tflite/convert.py: error: unrecognized arguments: --calibration-count" \
        in bad.stderr


# error cases: (argv, expected exit status, text the one-line message must hold)
ERRORS = {
    "missing file": (["compress", "missing.keras", "o.keras", "--ratio", "0.5"], 1,
                     "missing.keras: no such file"),
    "not a model": (["report", "notes.keras"], 1, "notes.keras: not a Keras model file"),
    "ratio zero": (["compress", "tiny.keras", "o.keras", "--ratio", "0"], 2,
                   "argument --ratio: expected a number in (0, 1], received 0"),
    "ratio above one": (["compress", "tiny.keras", "o.keras", "--ratio", "1.5"], 2,
                        "expected a number in (0, 1], received 1.5"),
    "ratio out of reach": (["compress", "tiny.keras", "o.keras", "--ratio", "0.5"], 1,
                           "objective='macs' cannot reach ratio=0.5 on model"),
    "int8 without calibration": (["export", "tiny.keras", "o.tflite", "--quantize", "int8"],
                                 1, "--quantize int8 needs calibration data"),
    "unwritable output": (["compress", "tiny.keras", "a_file/o.keras", "--ratio", "0.5"], 1,
                          "a_file/o.keras: cannot write the output: a_file is not a folder"),
    "bad image size": (["export", "tiny.keras", "o.tflite", "--image-size", "0x8"], 2,
                       "argument --image-size: expected HxW or N (e.g. 224x224), received '0x8'"),
    "scale per channel": (["export", "tiny.keras", "o.tflite", "--scale", "1,2"], 1,
                          "--scale needs 1 or 3 comma-separated values (the model has 3 "
                          "input channels); received 2"),
    "int8-io without int8": (["export", "tiny.keras", "o.tflite", "--int8-io"], 1,
                             "--int8-io needs --quantize int8; received --quantize none"),
}
# More error cases: each costs a TensorFlow start-up, so they run with -m slow.
MORE_ERRORS = {
    "output folder missing": (["export", "tiny.keras", "nowhere/o.tflite"], 1,
                              "folder nowhere does not exist"),
    "unwritable plot": (["report", "tiny.keras", "--plot", "a_file/p.png"], 1,
                        "cannot write the output"),
    "unwritable demo dir": (["demo", "--output-dir", "a_file/out"], 1,
                            "cannot write to the output folder"),
    "bench not tflite": (["bench", "tiny.keras"], 1, "tiny.keras: not a TFLite file"),
    "unknown layer": (["compress", "tiny.keras", "o.keras", "--num-basis", "2",
                       "--layers", "nosuch"], 1, "no layer named 'nosuch'"),
    "empty calibration dir": (["export", "tiny.keras", "o.tflite", "--quantize", "int8",
                               "--calibration-dir", "empty"], 1, "empty: no images found"),
    "init data without images": (["compress", "tiny.keras", "o.keras", "--num-basis", "2",
                                  "--init", "data"], 1, "--init data needs calibration images"),
    "bad thread list": (["bench", "x.tflite", "--threads", "1,0"], 2,
                        "argument --threads: expected comma-separated thread counts: expected "
                        "a positive integer, received 0"),
    "bad fold choice": (["export", "tiny.keras", "o.tflite", "--fold", "some"], 2,
                        "argument --fold: invalid choice: 'some'"),
}


@pytest.fixture(scope="module")
def error_results(work):
    names = list(ERRORS)
    results = run_many([ERRORS[n][0] for n in names], work)
    return dict(zip(names, results))


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_is_one_line_without_traceback(work, error_results, case):
    _check_error(work, ERRORS[case], error_results[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(MORE_ERRORS))
def test_more_errors_are_one_line(work, case):
    _check_error(work, MORE_ERRORS[case], run_cli(*MORE_ERRORS[case][0], cwd=work))


def _check_error(work, expected, result):
    argv, status, text = expected
    assert result.returncode == status, result.stderr
    lines = own_stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"keras-basis {argv[0]}: error: "), lines[0]
    assert text in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (work / "o.keras").exists() and not (work / "o.tflite").exists()


def test_every_help_lists_examples(work):
    script = (
        "import sys\n"
        "from keras_basis.cli import main\n"
        "for cmd in ([], ['compress'], ['report'], ['export'], ['bench'], ['profile'],\n"
        "            ['demo']):\n"
        "    try:\n"
        "        main(cmd + ['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (cmd, e.code)\n"
        "    print('=====')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=_env(), capture_output=True, text=True,
        timeout=300,
    )
    assert_ok(result)
    pages = result.stdout.split("=====")[:7]
    assert len(pages) == 7
    for page, cmd in zip(pages, ["", "compress", "report", "export", "bench", "profile",
                                 "demo"]):
        assert f"usage: keras-basis {cmd}".rstrip() in page
        assert "examples:" in page
        assert re.search(rf"^\s+keras-basis {cmd}", page, re.M), page
    assert "pixel / 255 * SCALE + OFFSET" in pages[3]
    # Real defaults, never "None", and one spelling of the shared flags everywhere.
    for page in pages:
        assert "None" not in page
    for cmd, flags in ((1, ["--ratio R", "--num-basis M", "--splits S", "(default: auto)",
                            "--num-calibration N", "(default: 200)", "--scale S[,S...]"]),
                       (2, ["--ratio R", "--num-basis M", "--splits S", "(default: auto)"]),
                       (3, ["--num-calibration N", "(default: 200)", "--scale S[,S...]",
                            "--image-size HxW", "(default: none)", "(default: 16)"]),
                       (4, ["--threads N[,N...]", "(default: 100)", "(default: on)"]),
                       (1, ["--objective {params,macs,latency}", "--latency-table TABLE.json"]),
                       (6, ["(default: 20)", "(default: 0.75,0.5,0.25)", "(default: error)",
                            "--objective {params,macs,latency}"])):
        page = " ".join(pages[cmd].split())
        for flag in flags:
            assert flag in page, (cmd, flag)


def test_console_script_is_installed():
    script = shutil.which("keras-basis", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("keras-basis console script not installed (pip install -e . installs it)")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=300)
    assert_ok(result)
    assert result.stdout.strip().startswith("keras-basis ")
