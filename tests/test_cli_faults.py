"""The command line on broken and hostile input: nothing broken passes as verified.

Each case runs ``python -m keras_basis`` in a fresh process (see test_cli.py).
Errors are one line on stderr (TensorFlow's import-time native lines aside,
see ``test_stderr_has_no_tensorflow_lines``), with the documented exit status,
and no file is left behind; the input is never overwritten.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_cli import _env, _tiny_model, assert_ok, own_stderr_lines, run_cli, run_many

MY_LAYERS = textwrap.dedent(
    """
    import keras


    @keras.saving.register_keras_serializable(package="tmp_test")
    class MyScale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0
    """
)
ENV_PROBE = textwrap.dedent(
    """
    import os

    print("user env:", {k: os.environ.get(k) for k in
                        ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "ABSL_MIN_LOG_LEVEL")})
    """
)


def _dense_model(nan=False):
    import keras

    x = keras.Input((4,), name="features")
    layer = keras.layers.Dense(3, name="logits")
    model = keras.Model(x, layer(x), name="dense")
    if nan:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.full_like(kernel, np.nan), bias])
    return model


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Models: conv (tiny), Dense-only, NaN, custom layer, tiny EDSR; a .tflite file."""
    import keras

    import keras_basis

    root = tmp_path_factory.mktemp("cli_faults")
    tiny = _tiny_model()
    tiny.save(root / "tiny.keras")
    (root / "tiny_copy.tflite").write_bytes((root / "tiny.keras").read_bytes())
    os.symlink(root / "tiny.keras", root / "link.keras")
    (root / "sub").mkdir()
    _dense_model().save(root / "dense.keras")
    _dense_model(nan=True).save(root / "nan.keras")
    (root / "my_layers.py").write_text(MY_LAYERS)
    (root / "env_probe.py").write_text(ENV_PROBE)
    sys.path.insert(0, str(root))
    try:
        import my_layers

        x = keras.Input((8, 8, 3))
        y = keras.layers.Conv2D(4, 3, name="conv")(my_layers.MyScale(name="scale")(x))
        keras.Model(x, y, name="custom").save(root / "custom.keras")
    finally:
        sys.path.remove(str(root))
    from examples.div2k.models import edsr

    edsr(scale=2, num_blocks=1, channels=8, input_shape=(8, 8, 3), name="edsr_tiny").save(
        root / "edsr.keras")
    content = keras_basis.export_tflite(tiny, root / "tiny.tflite")
    (root / "trunc.tflite").write_bytes(content.read_bytes()[:200])
    keras_basis.export_tflite(_dense_model(), root / "other.tflite")
    return root


# (argv, exit status, text of the one-line message, label the line starts with)
FAULTS = {
    "export onto its input": (["export", "tiny_copy.tflite", "./tiny_copy.tflite"], 1,
                              "./tiny_copy.tflite: OUT.tflite is the input file "
                              "tiny_copy.tflite; write to another file", "error"),
    "compress onto its input": (["compress", "tiny.keras", "tiny.keras", "--ratio", "0.5"], 1,
                                "tiny.keras: OUT.keras is the input file tiny.keras", "error"),
    "compress onto its input via a link": (["compress", "link.keras", "tiny.keras",
                                            "--ratio", "0.5"], 1,
                                           "OUT.keras is the input file link.keras", "error"),
    "compress onto its input via ..": (["compress", "tiny.keras", "sub/../tiny.keras",
                                        "--ratio", "0.5"], 1,
                                       "OUT.keras is the input file tiny.keras", "error"),
    "export output not .tflite": (["export", "tiny.keras", "o.keras"], 1,
                                  "o.keras: OUT.tflite must end with .tflite", "error"),
    "compress output not .keras": (["compress", "tiny.keras", "o.tflite", "--ratio", "0.5"], 1,
                                   "o.tflite: OUT.keras must end with .keras", "error"),
    "unknown custom layer": (["export", "custom.keras", "o.tflite"], 1,
                             "custom.keras: cannot load the Keras model: Could not locate "
                             "class 'MyScale' (module 'my_layers'): pass --import MODULE",
                             "error"),
    "unknown custom layer hint": (["report", "custom.keras"], 1, "e.g. --import my_layers",
                                  "error"),
    "bad --import": (["report", "tiny.keras", "--import", "no_such_module"], 1,
                     "--import no_such_module: cannot import it: ModuleNotFoundError", "error"),
    "bad --import file": (["report", "tiny.keras", "--import", "missing.py"], 1,
                          "--import missing.py: no such file", "error"),
    "bad --layers regex": (["compress", "tiny.keras", "o.keras", "--ratio", "0.5",
                            "--layers", "c["], 1,
                           "--layers: 'c[' is not a valid regular expression", "error"),
    "nothing to compress": (["compress", "dense.keras", "o.keras", "--ratio", "0.5"], 3,
                            "dense.keras: nothing was compressed in model 'dense'",
                            "nothing to do"),
    "NaN outputs are not verified": (["export", "nan.keras", "o.tflite"], 1,
                                     "Verification failed", "error"),
    "truncated tflite": (["bench", "trunc.tflite"], 1, "trunc.tflite", "error"),
}


@pytest.fixture(scope="module")
def fault_results(work):
    names = list(FAULTS)
    return dict(zip(names, run_many([FAULTS[n][0] for n in names], work)))


@pytest.mark.parametrize("case", list(FAULTS))
def test_fault_is_one_line_and_writes_nothing(work, fault_results, case):
    argv, status, text, kind = FAULTS[case]
    result = fault_results[case]
    assert result.returncode == status, result.stderr
    lines = own_stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"keras-basis {argv[0]}: {kind}: "), lines[0]
    assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (work / "o.keras").exists() and not (work / "o.tflite").exists()
    assert not list(work.glob(".o.*")), list(work.glob(".*"))


def test_inputs_are_never_overwritten(work, fault_results):
    import keras

    for case in ("compress onto its input", "compress onto its input via a link",
                 "compress onto its input via .."):
        assert fault_results[case].returncode == 1
    assert fault_results["export onto its input"].returncode == 1
    assert (work / "tiny_copy.tflite").read_bytes() == (work / "tiny.keras").read_bytes()
    model = keras.models.load_model(work / "tiny.keras")
    assert [w.name for w in model.layers][-1] == "logits"  # still the Keras model


def test_non_image_model_exports_verified_on_random_inputs(work):
    """A Dense model needs no images: 16 random inputs of its (4,) input shape."""
    from keras_basis import tflite

    result = run_cli("export", "dense.keras", "dense.tflite", cwd=work)
    assert_ok(result)
    assert "on 16 random inputs" in result.stdout, result.stdout
    assert "FULLY_CONNECTED x1" in result.stdout
    size = int(result.stdout.split("size ")[1].split(" bytes")[0].replace(",", ""))
    assert size == (work / "dense.tflite").stat().st_size
    import keras

    model = keras.models.load_model(work / "dense.keras")
    x = np.random.default_rng(5).standard_normal((6, 4)).astype("float32")
    np.testing.assert_allclose(tflite.run_tflite(work / "dense.tflite", x),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_import_option_loads_custom_layers(work):
    """--import NAME (from the current folder) and --import FILE.py, on every loader."""
    import keras

    from keras_basis import tflite

    by_name, by_file, report = run_many(
        [
            ["export", "custom.keras", "custom.tflite", "--import", "my_layers"],
            ["compress", "custom.keras", "custom_small.keras", "--num-basis", "2",
             "--import", "./my_layers.py"],
            ["report", "custom.keras", "--import", "my_layers", "--import", "env_probe"],
        ],
        work,
    )
    for r in (by_name, by_file, report):
        assert_ok(r)
    assert "verified custom.tflite" in by_name.stdout
    assert "conv" in report.stdout
    x = np.random.default_rng(1).random((3, 8, 8, 3)).astype("float32")
    sys.path.insert(0, str(work))
    try:
        import my_layers  # noqa: F401

        model = keras.models.load_model(work / "custom.keras")
    finally:
        sys.path.remove(str(work))
    # Independent reference: the valid 3x3 conv of 2 * x (MyScale), with NumPy.
    kernel, bias = model.get_layer("conv").get_weights()
    got = tflite.run_tflite(work / "custom.tflite", x)
    want = np.zeros((3, 6, 6, 4), np.float32) + bias
    for i in range(6):
        for j in range(6):
            patch = 2.0 * x[:, i:i + 3, j:j + 3, :]
            want[:, i, j, :] += np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_import_modules_see_the_users_environment(work):
    """TensorFlow is quietened while it loads; --import modules see the user's variables."""
    env = _env()
    for key in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "ABSL_MIN_LOG_LEVEL"):
        env.pop(key, None)
    env["GLOG_minloglevel"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # unset, TensorFlow itself would set "1"
    result = subprocess.run(
        [sys.executable, "-m", "keras_basis", "report", "tiny.keras", "--import", "env_probe"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )
    assert_ok(result)
    assert ("user env: {'TF_CPP_MIN_LOG_LEVEL': '0', 'GLOG_minloglevel': '1', "
            "'ABSL_MIN_LOG_LEVEL': None}") in result.stdout


def test_ported_like_model_exports_with_import_of_the_recipe(work):
    """A tiny EDSR of examples.div2k (MeanShift, PixelShuffle): --import examples.div2k.models."""
    import keras

    from keras_basis import tflite

    without, with_import = run_many(
        [
            ["export", "edsr.keras", "edsr_no.tflite"],
            ["export", "edsr.keras", "edsr.tflite", "--import", "examples.div2k.models",
             "--scale", "255"],
        ],
        work,
    )
    assert without.returncode == 1
    line = own_stderr_lines(without)
    assert len(line) == 1 and "Could not locate class" in line[0] and "--import" in line[0]
    assert not (work / "edsr_no.tflite").exists()
    assert_ok(with_import)
    assert "verified edsr.tflite" in with_import.stdout
    import examples.div2k.models  # noqa: F401

    model = keras.models.load_model(work / "edsr.keras")
    x = np.random.default_rng(2).random((2, 8, 8, 3)).astype("float32") * 255
    np.testing.assert_allclose(tflite.run_tflite(work / "edsr.tflite", x),
                               model.predict(x, verbose=0), rtol=1e-4, atol=1e-2)


RACE = textwrap.dedent(
    """
    import sys

    from keras_basis import fileio

    other = open(sys.argv[1], "rb").read()
    write_bytes = fileio.write_bytes


    def racing(path, content):
        done = write_bytes(path, content)
        write_bytes(path, other)  # a concurrent export to the same path finished just after
        return done


    fileio.write_bytes = racing
    from keras_basis.cli import main

    sys.exit(main(sys.argv[2:]))
    """
)


def test_concurrent_export_reports_its_own_bytes(work):
    """The verified line and the ops are about the bytes this process made, not the path's."""
    (work / "race.py").write_text(RACE)
    result = subprocess.run(
        [sys.executable, "race.py", "other.tflite", "export", "tiny.keras", "race.tflite"],
        cwd=work, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert_ok(result)
    own = (work / "tiny.tflite").stat().st_size
    assert f"size {own:,} bytes" in result.stdout, result.stdout
    from keras_basis import tflite

    ops = tflite.op_histogram(work / "tiny.tflite")
    assert "ops: " + ", ".join(f"{k} x{v}" for k, v in ops.items()) in result.stdout
    # The other writer's file is at the path now; this process did not report it.
    assert (work / "race.tflite").read_bytes() == (work / "other.tflite").read_bytes()


def test_help_documents_the_exit_status(work):
    result = run_cli("--help", cwd=work)
    assert_ok(result)
    text = " ".join(result.stdout.split())
    for part in ("exit status: 0 done; 1 error", "2 usage error", "3 nothing to do",
                 "130 interrupted"):
        assert part in text, text
    compress = run_cli("compress", "--help", cwd=work)
    assert "Exit status 3 (nothing saved)" in " ".join(compress.stdout.split())


# The command, with its model load made slow: "ready" comes from inside the running
# export, so the test's Ctrl-C lands there (not before main() starts, and not after a
# fast export has finished, when the interpreter is shutting down).
INTERRUPT = textwrap.dedent(
    """
    import sys
    import time

    import keras

    from keras_basis.cli import main

    _load = keras.models.load_model


    def slow_load(*args, **kwargs):
        model = _load(*args, **kwargs)
        print("ready", flush=True)
        time.sleep(120)
        return model


    keras.models.load_model = slow_load
    sys.exit(main(sys.argv[1:]))
    """
)


def _default_sigint():
    """Child processes get the default SIGINT action: a shell starts background jobs
    (``cmd &``, e.g. a CI script) with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_and_status_130(work):
    (work / "interrupt.py").write_text(INTERRUPT)
    proc = subprocess.Popen(
        [sys.executable, "interrupt.py", "export", "tiny.keras", "int.tflite", "--num-verify",
         "16"],
        cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] in ("keras-basis export: interrupted", "keras-basis: interrupted"), err
    assert "Traceback" not in err
    assert not (work / "int.tflite").exists()


def test_stderr_has_no_tensorflow_lines(work, fault_results):
    result = fault_results["export output not .tflite"]
    assert result.stderr.splitlines() == [
        "keras-basis export: error: o.keras: OUT.tflite must end with .tflite"]


def test_stderr_is_one_line_without_any_log_settings(work):
    env = _env()
    for key in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "ABSL_MIN_LOG_LEVEL"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "keras_basis", "report", "missing.keras"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["keras-basis report: error: missing.keras: no such file"]


def test_ctrl_c_while_tensorflow_loads_is_one_line(work):
    proc = subprocess.Popen([sys.executable, "-m", "keras_basis", "report", "missing.keras"],
                            cwd=work, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    time.sleep(1.0)  # TensorFlow takes several seconds to load
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["keras-basis: interrupted"]
