"""Real faults: processes killed with SIGKILL at random points.

* export: a child process exports in a loop and is killed after a random delay;
  the target is then either the old file, byte for byte, or a complete file that
  computes the model; never a partial file. The next export removes the temps the
  killed process left (its pid is gone) and writes a good file.
* training (marked slow): ``examples.cifar10.train --smoke`` and
  ``examples.div2k.train --smoke`` killed at random points and resumed until done:
  every epoch's metrics row is there exactly once, the state says the last epoch.

The random delays come from a seed printed in every assertion message (rerun with
``KB_FAULT_SEED=<seed>``).
"""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_basis import export_tflite, fileio
from keras_basis import tflite as kt

pytest.importorskip("ai_edge_litert")

REPO = pathlib.Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("KB_FAULT_SEED", int.from_bytes(os.urandom(4), "little")))
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
       "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""}

MODEL = """
import keras
import keras_basis

def build(seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c1")(x)
    y = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(10, name="head")(y), name=f"net{seed}")
    return keras_basis.compress(model, num_basis=8, verbose=0)
"""

EXPORT_LOOP = MODEL + """
import sys
model = build(0)
print("ready", flush=True)
while True:
    keras_basis.export_tflite(model, sys.argv[1])
    print("exported", flush=True)
"""


def _build(seed):
    scope = {}
    exec(MODEL, scope)
    return scope["build"](seed)


def _kill_export_after(target, delay):
    proc = subprocess.Popen([sys.executable, "-c", EXPORT_LOOP, str(target)], cwd=REPO,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", f"seed {SEED}: child failed"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _export_kills(tmp_path, trials):
    rng = np.random.default_rng(SEED)
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype("float32")
    old_model, new_model = _build(1), _build(0)
    new_out = keras.ops.convert_to_numpy(new_model(x))
    target = tmp_path / "m.tflite"
    export_tflite(old_model, target)
    old = target.read_bytes()
    outcomes = []
    for trial in range(trials):
        target.write_bytes(old)
        delay = float(rng.uniform(0.0, 3.0))
        code = _kill_export_after(target, delay)
        what = f"seed {SEED}, trial {trial}, killed after {delay:.2f}s"
        assert code == -signal.SIGKILL, what
        names = os.listdir(tmp_path)
        assert "m.tflite" in names, what
        content = target.read_bytes()
        if content == old:
            outcomes.append("old")
        else:  # a finished export: complete and computing the model
            y = kt.run_tflite(content, x)
            np.testing.assert_allclose(y, new_out, rtol=1e-4, atol=1e-5, err_msg=what)
            outcomes.append("new")
        assert set(names) - {"m.tflite"} <= {
            n for n in names if n.startswith(f".m.tflite{fileio.TEMP_MARK}")}, (what, names)
        # the next export cleans what the killed process left, then writes a good file
        path, content = export_tflite(new_model, target, return_content=True)
        assert os.listdir(tmp_path) == ["m.tflite"], (what, os.listdir(tmp_path))
        assert path.read_bytes() == content
        np.testing.assert_allclose(kt.run_tflite(path, x), new_out, rtol=1e-4, atol=1e-5)
    return outcomes


def test_export_killed_at_random_points(tmp_path):
    _export_kills(tmp_path, trials=2)


@pytest.mark.slow
def test_export_killed_at_random_points_many(tmp_path):
    outcomes = _export_kills(tmp_path, trials=10)
    assert "old" in outcomes or "new" in outcomes


# ---------------------------------------------------------------- training
def _rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _train_until_done(cmd, out, epochs, kills, timeout=900):
    """Run ``cmd``; kill it ``kills`` times at random points; rerun until it exits 0.

    A kill point is drawn relative to progress, not to wall time (start-up time
    varies a lot): once ``metrics.csv`` holds ``k`` rows (``k`` drawn from
    the rows already there to ``epochs-1``), the run is killed after a further
    random 0-3 s: while it starts or resumes, in the middle of epoch ``k+1`` or
    while that epoch's files are being written.
    """
    rng = np.random.default_rng(SEED)
    log = []
    start = time.time()
    while True:
        assert time.time() - start < timeout, (f"seed {SEED}: not done", log)
        err_path = out.parent / f"stderr-{len(log)}.txt"  # a file: a pipe could fill up
        with open(err_path, "w") as err_file:
            proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=err_file)
        killed = False
        if kills:
            have = len(_rows(out / "metrics.csv"))  # rows of the runs before
            rows_at = int(rng.integers(have, max(have + 1, epochs)))
            delay = float(rng.uniform(0.0, 3.0))
            while proc.poll() is None and len(_rows(out / "metrics.csv")) < rows_at:
                time.sleep(0.2)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills -= 1
                killed = True
                log.append(f"killed {delay:.1f}s after row {rows_at}, rows now "
                           f"{[r['epoch'] for r in _rows(out / 'metrics.csv')]}")
        if killed:
            continue
        proc.wait(timeout=timeout)
        assert proc.returncode == 0, (f"seed {SEED}", log, err_path.read_text()[-3000:])
        log.append("finished")
        print(f"seed {SEED}: " + "; ".join(log))  # where the kills landed (pytest -s)
        return log


def _check_run(out, epochs, log):
    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1)), (SEED, log, rows)
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == epochs, (SEED, log, state)
    assert not [p for p in os.listdir(out) if fileio.TEMP_MARK in p], (SEED, log)


def _tiny_image_folder(root, rng):
    from PIL import Image

    for split, count in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(count):
                arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}.png")


@pytest.mark.slow
def test_cifar10_training_killed_and_resumed(tmp_path):
    _tiny_image_folder(tmp_path / "data", np.random.default_rng(0))
    out = tmp_path / "run"
    epochs = 4
    cmd = [sys.executable, "-m", "examples.cifar10.train", "--smoke", "--network", "resnet20",
           "--variant", "baseline", "--data-dir", str(tmp_path / "data"), "--batch-size", "4",
           "--epochs", str(epochs), "--no-tflite", "--verbose", "0", "--output-dir", str(out)]
    log = _train_until_done(cmd, out, epochs, kills=2)
    _check_run(out, epochs, log)


@pytest.mark.slow
def test_div2k_training_killed_and_resumed(tmp_path):
    out = tmp_path / "run"
    epochs = 4
    cmd = [sys.executable, "-m", "examples.div2k.train", "--smoke", "--model", "edsr-8-128",
           "--blocks", "1", "--channels", "8", "--tflite-size", "12", "--epochs", str(epochs),
           "--output-dir", str(out)]
    log = _train_until_done(cmd, out, epochs, kills=3)
    _check_run(out, epochs, log)
