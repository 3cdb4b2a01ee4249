"""examples/paper_scale_gpu.py: the Keras-on-JAX runner of the short GPU runs.

The data helpers are NumPy and run here under the TensorFlow backend. The trainer needs
JAX: those tests run in a subprocess with ``KERAS_BACKEND=jax`` (the ``jax`` extra, part
of ``.[test]``) and skip with the reason when JAX is not installed.
"""

import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples import paper_scale_gpu as G  # noqa: E402
from examples.cifar10.common import CIFAR_MEAN, CIFAR_STD  # noqa: E402

needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="JAX is not installed (pip install -e '.[jax]'); the GPU runner is Keras-on-JAX",
)
# insertion order differs from the alphabetical (= CIFAR-10 id) order on purpose
CLASSES = ["truck", "airplane", "cat", "automobile", "bird", "deer", "dog", "frog", "horse",
           "ship"]


def _tiny_cifar_tar(path, per_class=(3, 2), size=32):
    """A tar in the JPEG copy's layout; image colour encodes (split, class, index)."""
    with tarfile.open(path, "w:gz") as tar:
        for split, count in zip(("train", "test"), per_class):
            for c, name in enumerate(CLASSES):
                for i in range(count):
                    value = 20 * sorted(CLASSES).index(name) + 5 * i
                    img = np.full((size, size, 3), value, np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{name}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)
    return path


def test_load_cifar_tar_labels_are_the_alphabetical_class_ids(tmp_path):
    data = G.load_cifar_tar(_tiny_cifar_tar(tmp_path / "c.tar.gz"))
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    assert xtr.shape == (30, 32, 32, 3) and xtr.dtype == np.uint8
    assert xte.shape == (20, 32, 32, 3)
    assert np.bincount(ytr).tolist() == [3] * 10 and np.bincount(yte).tolist() == [2] * 10
    for x, y in ((xtr, ytr), (xte, yte)):  # colour 20 * label + 5 * index
        np.testing.assert_array_equal(x[:, 0, 0, 0] // 20, y)


def test_load_cifar_tar_on_the_shared_jpeg_copy(shared_data):
    data = G.load_cifar_tar(shared_data / "cifar10-jpeg.tar.gz")
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    assert xtr.shape == (50000, 32, 32, 3) and xte.shape == (10000, 32, 32, 3)
    assert np.bincount(ytr).tolist() == [5000] * 10
    assert np.bincount(yte).tolist() == [1000] * 10
    with tarfile.open(shared_data / "cifar10-jpeg.tar.gz") as tar:  # one file by hand
        member = tar.getmember("cifar10-jpeg/test/ship/0000.jpg")
        ref = np.asarray(Image.open(tar.extractfile(member)).convert("RGB"))
    hits = [i for i in np.flatnonzero(yte == 8) if np.array_equal(xte[i], ref)]
    assert hits, "test/ship/0000.jpg not found among the label-8 test images"


def test_augment_epoch_is_pad4_crop_and_flip():
    images = np.random.default_rng(1).integers(0, 256, (40, 8, 6, 3), dtype=np.uint8)
    out = G.augment_epoch(images, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # the same draws, in the same order
    n = len(images)
    dy, dx, flip = rng.integers(0, 9, n), rng.integers(0, 9, n), rng.random(n) < 0.5
    for i in range(n):
        padded = np.zeros((16, 14, 3), np.uint8)
        padded[4:12, 4:10] = images[i]
        ref = padded[dy[i]:dy[i] + 8, dx[i]:dx[i] + 6]
        np.testing.assert_array_equal(out[i], ref[:, ::-1] if flip[i] else ref)
    assert 0 < flip.sum() < n and len(set(zip(dy, dx))) > 10


def _run_jax(args, cwd=REPO, timeout=600):
    """Runs ``python ARGS`` with Keras on JAX (CPU); asserts success, returns stdout."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO),
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _run_jax_code(code, tmp_path):
    script = tmp_path / "case.py"
    script.write_text(textwrap.dedent(code))
    return _run_jax([script], cwd=tmp_path)


@needs_jax
def test_member_step_equals_keras_train_on_batch(tmp_path):
    """The jitted stateless step (and a learning-rate change) == Keras' own training."""
    out = _run_jax_code("""
        import json, numpy as np, keras
        from keras import ops
        from examples.paper_scale_gpu import Member
        from examples.cifar10.models import resnet
        from examples.cifar10.optim import CoupledSGD

        def loss_fn(y, logits):
            return ops.mean(keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True))

        keras.utils.set_random_seed(0)
        a, b = resnet(8, "basis"), resnet(8, "basis")
        b.set_weights(a.get_weights())
        opt = lambda: CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=1e-3)
        member = Member("a", a, opt(), loss_fn, lambda x: x)
        b.compile(optimizer=opt(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        losses = []
        for i in range(4):
            x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
            y = rng.integers(0, 10, 8).astype("int32")
            if i == 2:
                member.set_lr(0.01)
                b.optimizer.learning_rate = 0.01
            member.step(x, y)
            losses.append((member.take_loss(), float(b.train_on_batch(x, y))))
        tv, ntv, _ = member.state
        dw = max(float(np.max(np.abs(np.asarray(t) - v.numpy())))
                 for t, v in zip(tv, b.trainable_variables))
        dn = max(float(np.max(np.abs(np.asarray(t) - v.numpy())))
                 for t, v in zip(ntv, b.non_trainable_variables))
        moved = max(float(np.max(np.abs(np.asarray(t) - v.numpy())))
                    for t, v in zip(tv, a.trainable_variables))
        print(json.dumps({"losses": losses, "dw": dw, "dn": dn, "moved": moved}))
    """, tmp_path)
    r = json.loads(out.strip().splitlines()[-1])
    for mine, keras_loss in r["losses"]:
        assert mine == pytest.approx(keras_loss, rel=1e-5)
    assert r["dw"] < 1e-5 and r["dn"] < 1e-5
    assert r["moved"] > 1e-3  # the weights did train (and the model's own are untouched)


@needs_jax
def test_cifar_run_end_to_end_and_models_load_under_tensorflow(tmp_path):
    tar = _tiny_cifar_tar(tmp_path / "c.tar.gz", per_class=(8, 2))
    out = tmp_path / "out"
    _run_jax(["-m", "examples.paper_scale_gpu", "cifar", "--tar", tar, "--out", out,
              "--budget", "300", "--depth", "8", "--batch-size", "16", "--max-epochs", "2",
              "--eval-every", "1"])
    summary = json.loads((out / "cifar.json").read_text())
    assert summary["epochs_done"] == 2 and summary["steps_per_epoch"] == 80 // 16
    assert [row["epoch"] for row in summary["history"]] == [1, 2]
    assert set(summary["final_test_accuracy"]) == {"resnet8-baseline", "resnet8-basis"}

    import keras

    from examples.cifar10 import models  # noqa: F401  (registers the custom objects)

    data = G.load_cifar_tar(tar)
    x = data["test"][0].astype("float32")
    for name, acc in summary["final_test_accuracy"].items():
        model = keras.models.load_model(out / f"{name}.keras")  # saved under JAX
        assert model.count_params() == summary["params"][name]
        x_norm = (x - np.float32(CIFAR_MEAN)) / np.float32(CIFAR_STD)
        pred = np.argmax(model.predict(x_norm, verbose=0), -1)
        assert np.mean(pred == data["test"][1]) == pytest.approx(acc, abs=1e-9)


@needs_jax
def test_sr_run_smoke_with_both_inits(tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(hr / f"{i}.png")
    out = tmp_path / "out"
    _run_jax(["-m", "examples.paper_scale_gpu", "sr", "--train-dir", hr, "--out", out,
              "--budget", "300", "--batch-size", "1", "--patch-size", "8", "--unit-steps", "1",
              "--max-units", "2", "--presets",
              "edsr-8-128-basis-128-27+authors,edsr-8-128-basis-128-27+matched"])
    summary = json.loads((out / "sr.json").read_text())
    assert summary["steps_done"] == 2 and len(summary["history"]) == 2
    first = summary["history"][0]
    # the released init starts with outputs far from the 0-255 range; matched does not
    assert first["edsr-8-128-basis-128-27+authors_l1"] > 3 * first[
        "edsr-8-128-basis-128-27+matched_l1"]
    assert sorted(p.name for p in out.glob("*.keras")) == [
        "edsr-8-128-basis-128-27_authors.keras", "edsr-8-128-basis-128-27_matched.keras"]


def test_units_that_fit_cuts_the_plan_to_the_deadline():
    import time

    now = time.time()
    assert G.units_that_fit(2, 10, 5.0, now + 100) == 10  # 2 + 20 >= 10: unchanged
    assert G.units_that_fit(2, 10, 20.0, now + 100) in (6, 7)  # 2 + 100 // 20 (timing)
    assert G.units_that_fit(2, 10, 20.0, now - 5) == 3  # past the deadline: one more
