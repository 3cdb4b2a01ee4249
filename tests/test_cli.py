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
            ["compress", "tiny.keras", "half.keras", "--ratio", "0.5"],
            ["compress", "tiny.keras", "exact.keras", "--num-basis", "1000", "--splits", "1"],
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

    _, exact = compressed
    assert_ok(exact)
    original = keras.models.load_model(work / "tiny.keras")
    small = keras.models.load_model(work / "exact.keras")
    x = np.random.default_rng(2).random((4, 8, 8, 3)).astype("float32")
    want = original.predict(x, verbose=0)
    got = small.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_report_and_plot(work, compressed):
    assert_ok(compressed[0])
    plot = work / "spectra.png"
    result, original = run_many(
        [
            ["report", "half.keras", "--reference", "tiny.keras", "--plot", plot.name],
            ["report", "tiny.keras", "--ratio", "0.3"],
        ],
        work,
    )
    assert_ok(result)
    assert_ok(original)
    assert "basis pairs" in result.stdout
    assert f"saved {plot.name} (3 layers)" in result.stdout
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert plot.stat().st_size > 10_000
    assert "candidate" in original.stdout
    for name in ("c1", "c2", "c3"):
        assert re.search(rf"^{name}\s", original.stdout, re.M)


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


# error cases: (argv, expected exit status, text the one-line message must hold)
ERRORS = {
    "missing file": (["compress", "missing.keras", "o.keras", "--ratio", "0.5"], 1,
                     "missing.keras: no such file"),
    "not a model": (["report", "notes.keras"], 1, "notes.keras: not a Keras model file"),
    "ratio zero": (["compress", "tiny.keras", "o.keras", "--ratio", "0"], 2,
                   "argument --ratio: expected a number in (0, 1], received 0"),
    "ratio above one": (["compress", "tiny.keras", "o.keras", "--ratio", "1.5"], 2,
                        "expected a number in (0, 1], received 1.5"),
    "int8 without calibration": (["export", "tiny.keras", "o.tflite", "--quantize", "int8"],
                                 1, "--quantize int8 needs calibration data"),
    "unwritable output": (["compress", "tiny.keras", "a_file/o.keras", "--ratio", "0.5"], 1,
                          "a_file/o.keras: cannot write the output: a_file is not a folder"),
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
        "for cmd in ([], ['compress'], ['report'], ['export'], ['bench'], ['demo']):\n"
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
    pages = result.stdout.split("=====")[:6]
    assert len(pages) == 6
    for page, cmd in zip(pages, ["", "compress", "report", "export", "bench", "demo"]):
        assert f"usage: keras-basis {cmd}".rstrip() in page
        assert "examples:" in page
        assert re.search(rf"^\s+keras-basis {cmd}", page, re.M), page
    assert "pixel / 255 * SCALE + OFFSET" in pages[3]


def test_console_script_is_installed():
    script = shutil.which("keras-basis", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("keras-basis console script not installed (pip install -e . installs it)")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=300)
    assert_ok(result)
    assert result.stdout.strip().startswith("keras-basis ")
