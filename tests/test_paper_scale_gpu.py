"""examples/paper_scale_gpu.py (+ examples/gpu/): the Keras-on-JAX GPU runner.

The data helpers are NumPy and run here under the TensorFlow backend; the on-device
augmentation is plain JAX (no Keras) and runs here too. The trainer needs Keras on JAX:
those tests run in a subprocess with ``KERAS_BACKEND=jax`` on the CPU (the ``jax`` extra,
part of ``.[test]``) and skip with the reason when JAX is not installed.
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


@pytest.mark.slow  # decodes all 60,000 JPEGs
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


def _run_jax(args, cwd=REPO, timeout=600):
    """Runs ``python ARGS`` with Keras on JAX (CPU); asserts success, returns stdout."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO),
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _run_jax_code(code, tmp_path, prelude=""):
    script = tmp_path / "case.py"
    script.write_text(prelude + textwrap.dedent(code))
    return _run_jax([script], cwd=tmp_path)



def _crop_flip_reference(image, dy, dx, flip, pad=4):
    """One image: zero-pad, crop at (dy, dx), mirror if ``flip`` (plain NumPy)."""
    h, w, c = image.shape
    padded = np.zeros((h + 2 * pad, w + 2 * pad, c), image.dtype)
    padded[pad:pad + h, pad:pad + w] = image
    out = padded[dy:dy + h, dx:dx + w]
    return out[:, ::-1] if flip else out


@needs_jax
def test_on_device_crop_flip_equals_a_per_image_numpy_reference():
    import jax

    from examples.gpu import core

    images = np.random.default_rng(1).integers(0, 256, (300, 8, 6, 3), dtype=np.uint8)
    idx, dy, dx, flip = map(np.asarray, core.cifar_epoch_inputs(jax.random.key(3), 300, 32))
    assert idx.shape == dy.shape == flip.shape == (9, 32)  # 300 // 32 steps, rest dropped
    assert len(set(idx.ravel())) == 288 and set(dy.ravel()) == set(range(9))
    assert set(dx.ravel()) == set(range(9)) and 0.3 < flip.mean() < 0.7
    for s in (0, 8):  # two steps of the epoch, as the training loop gathers them
        out = np.asarray(core.crop_flip(images[idx[s]], dy[s], dx[s], flip[s]))
        assert out.dtype == np.uint8
        for k, i in enumerate(idx[s]):
            np.testing.assert_array_equal(
                out[k], _crop_flip_reference(images[i], dy[s, k], dx[s, k], flip[s, k]))


REFERENCE_CODE = '''
import numpy as np

def crop_flip_reference(image, dy, dx, flip, pad=4):
    h, w, c = image.shape
    padded = np.zeros((h + 2 * pad, w + 2 * pad, c), image.dtype)
    padded[pad:pad + h, pad:pad + w] = image
    out = padded[dy:dy + h, dx:dx + w]
    return out[:, ::-1] if flip else out
'''


@pytest.mark.slow  # about a minute on 2 cores (JAX)
@needs_jax
def test_scanned_epochs_equal_keras_train_on_batch_and_keep_the_models_variables(tmp_path):
    """Two compiled epochs of a pair (lr 0.1, then 0.01 after a milestone) == the same
    batches fed one by one to Keras' own ``train_on_batch``: losses, weights, BN stats.
    The donated states leave the models' own variables intact.

    In float64: in float32 the two programs differ in the last bits (XLA compiles a
    loop body differently), and a few steps at lr 0.1 amplify that to 1e-4."""
    out = _run_jax_code("""
        import json, jax, jax.numpy as jnp, keras
        from keras import ops
        jax.config.update("jax_enable_x64", True)
        keras.config.set_floatx("float64")
        from examples.cifar10.common import CIFAR_MEAN, CIFAR_STD
        from examples.cifar10.models import resnet
        from examples.cifar10.optim import CoupledSGD
        from examples.gpu import core

        MEAN, STD = np.float64(CIFAR_MEAN), np.float64(CIFAR_STD)

        def loss_fn(y, logits):
            return ops.mean(keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True))

        def opt():
            return CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=1e-3)

        keras.utils.set_random_seed(0)
        members, refs = [], []
        for variant in ("baseline", "basis"):
            a, b = resnet(8, variant), resnet(8, variant)
            b.set_weights(a.get_weights())
            b.compile(optimizer=opt(),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            members.append(core.Member(variant, a, opt(), loss_fn,
                                       lambda x: (ops.cast(x, "float64") - MEAN) / STD))
            refs.append(b)
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, 20).astype(np.int32)

        def batch_fn(data, inp):
            idx, dy, dx, flip = inp
            return core.crop_flip(data[0][idx], dy, dx, flip), data[1][idx]

        train = core.make_train_fn(members, batch_fn)
        states = tuple(m.initial_state() for m in members)
        given = states[0][0][0]
        before = [[v.numpy().copy() for v in m.model.weights] for m in members]
        mine, ref = [], []
        for epoch, lr in enumerate((0.1, 0.01)):
            inputs = core.cifar_epoch_inputs(jax.random.key(epoch), 20, 8)  # 2 steps
            states, losses = train(states, (np.float64(lr),) * 2,
                                   (jnp.asarray(x), jnp.asarray(y)), inputs)
            mine += np.asarray(losses).tolist()
            idx, dy, dx, flip = map(np.asarray, inputs)
            for b in refs:
                b.optimizer.learning_rate = lr
            for s in range(len(idx)):
                xb = np.stack([crop_flip_reference(x[i], dy[s, k], dx[s, k], flip[s, k])
                               for k, i in enumerate(idx[s])])
                xb = (xb.astype(np.float64) - MEAN) / STD
                ref.append([float(b.train_on_batch(xb, y[idx[s]])) for b in refs])

        def maxdiff(arrays, variables):
            return max(float(np.max(np.abs(np.asarray(a) - v.numpy())))
                       for a, v in zip(arrays, variables))

        print(json.dumps({
            "losses": mine, "ref": ref,
            "dw": [maxdiff(s[0], b.trainable_variables) for s, b in zip(states, refs)],
            "dn": [maxdiff(s[1], b.non_trainable_variables) for s, b in zip(states, refs)],
            "moved": [maxdiff(s[0], m.model.trainable_variables)
                      for s, m in zip(states, members)],
            "models_unchanged": all(np.array_equal(w, v.numpy()) for m, ws in
                                    zip(members, before) for w, v in zip(ws, m.model.weights)),
            "donated": bool(given.is_deleted()),
            "lr": [float(s[2][m.lr_index]) for s, m in zip(states, members)],
        }))
    """, tmp_path, prelude=REFERENCE_CODE)
    r = json.loads(out.strip().splitlines()[-1])
    assert len(r["losses"]) == len(r["ref"]) == 4
    for mine, ref in zip(r["losses"], r["ref"]):  # the losses come back as float32
        assert mine == pytest.approx(ref, rel=1e-6)
    assert max(r["dw"]) < 1e-12 and max(r["dn"]) < 1e-12
    assert min(r["moved"]) > 1e-3  # trained, and the models' own variables are not
    assert r["models_unchanged"]
    assert r["lr"] == pytest.approx([0.01, 0.01])
    print("state buffers donated on this platform:", r["donated"])


@pytest.mark.slow  # two JAX training runs plus TensorFlow evaluation (minutes)
@needs_jax
def test_cifar_run_resumes_at_the_right_epoch_and_models_load_under_tensorflow(tmp_path):
    """One 3-epoch run, and the same run interrupted after epoch 1 and resumed: the same
    history and weights; the .keras files load under TensorFlow and score as reported."""
    tar = _tiny_cifar_tar(tmp_path / "c.tar.gz", per_class=(8, 3))
    common = ["cifar", "--tar", str(tar), "--budget", "3000", "--depth", "8", "--unroll", "2",
              "--batch-size", "40", "--max-epochs", "3", "--lr-milestones", "1,2",
              "--eval-every", "2", "--checkpoint-every", "2", "--eval-batch-size", "7"]
    _run_jax_code(f"""
        from examples.paper_scale_gpu import main
        common = {common!r}
        main(common + ["--output-dir", "full"])
        main(common + ["--output-dir", "split", "--stop-after", "1"])
        main(common + ["--output-dir", "split"])
    """, tmp_path)
    full, split = tmp_path / "full", tmp_path / "split"
    a = json.loads((full / "cifar.json").read_text())
    b = json.loads((split / "cifar.json").read_text())
    assert a["epochs_done"] == b["epochs_done"] == a["planned_epochs"] == 3
    assert a["steps_per_epoch"] == 80 // 40 and a["milestones"] == [1, 2]
    assert [int(r["epoch"]) for r in b["history"]] == [1, 2, 3]
    assert [float(r["lr"]) for r in b["history"]] == pytest.approx([0.1, 0.01, 0.001])
    assert json.loads((split / "args.json").read_text())["resumed_from_epoch"] == 1
    assert json.loads((split / "state.json").read_text()) == {
        "epoch": 3, "checkpoint": "ckpt-epoch0003.npz"}
    assert sorted(p.name for p in split.glob("ckpt-*")) == ["ckpt-epoch0003.npz"]
    for key in ("resnet8-baseline_loss", "resnet8-basis_loss"):
        assert [float(r[key]) for r in b["history"]] == pytest.approx(
            [float(r[key]) for r in a["history"]], rel=1e-5)
    assert set(a["final_test_accuracy"]) == {"resnet8-baseline", "resnet8-basis"}
    assert a["history"][1]["resnet8-basis_test_acc"] != ""  # eval every 2 epochs
    assert a["history"][0]["resnet8-basis_test_acc"] != ""  # ... and after the first

    import keras

    from examples.cifar10 import models  # noqa: F401  (registers the custom objects)

    data = G.load_cifar_tar(tar)
    x = (data["test"][0].astype("float32") - np.float32(CIFAR_MEAN)) / np.float32(CIFAR_STD)
    for name, acc in a["final_test_accuracy"].items():
        model = keras.models.load_model(full / f"{name}.keras")  # saved under JAX
        resumed = keras.models.load_model(split / f"{name}.keras")
        assert model.count_params() == a["params"][name]
        for w, v in zip(model.weights, resumed.weights):
            np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
        pred = np.argmax(model.predict(x, verbose=0), -1)
        assert np.mean(pred == data["test"][1]) == pytest.approx(acc, abs=1e-9)
        assert b["final_test_accuracy"][name] == pytest.approx(acc, abs=1e-9)


@pytest.mark.slow  # a JAX SR training run (minutes)
@needs_jax
def test_sr_run_smoke_with_both_inits(tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(hr / f"{i}.png")
    out = tmp_path / "out"
    _run_jax(["-m", "examples.paper_scale_gpu", "sr", "--train-dir", hr, "--output-dir", out,
              "--budget", "300", "--batch-size", "1", "--patch-size", "8", "--unit-steps", "1",
              "--epochs", "2", "--presets",
              "edsr-8-128-basis-128-27+authors,edsr-8-128-basis-128-27+matched"])
    summary = json.loads((out / "sr.json").read_text())
    assert summary["steps_done"] == 2 and len(summary["history"]) == 2
    first = summary["history"][0]
    # the released init starts with outputs far from the 0-255 range; matched does not
    assert float(first["edsr-8-128-basis-128-27+authors_loss"]) > 3 * float(
        first["edsr-8-128-basis-128-27+matched_loss"])
    assert sorted(p.name for p in out.glob("*.keras")) == [
        "edsr-8-128-basis-128-27_authors.keras", "edsr-8-128-basis-128-27_matched.keras"]


def test_units_that_fit_cuts_the_plan_to_the_deadline():
    import time

    now = time.time()
    assert G.units_that_fit(2, 10, 5.0, now + 100) == 10  # 2 + 20 >= 10: unchanged
    assert G.units_that_fit(2, 10, 20.0, now + 100) in (6, 7)  # 2 + 100 // 20 (timing)
    assert G.units_that_fit(2, 10, 20.0, now - 5) == 3  # past the deadline: one more
