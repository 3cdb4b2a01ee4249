"""examples/div2k/train.py and cpu_experiment.py: outputs, resume, compress route, strategies."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_div2k_recipes import _png, _rand, _rows, randomise

import keras_basis
from examples import run
from examples.div2k import data as D
from examples.div2k import evaluate as E
from examples.div2k import models
from examples.div2k.models import edsr_8_128

REPO = pathlib.Path(__file__).resolve().parents[1]


def _train(argv, capsys):
    from examples.div2k import train

    assert train.main(argv) == 0
    return capsys.readouterr().out


def test_train_smoke_outputs_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--smoke", "--network", "edsr-8-128", "--blocks", "1", "--channels", "8",
            "--output-dir", str(out), "--tflite-size", "12"]
    log = _train(argv + ["--epochs", "1"], capsys)
    assert "NO --data-dir GIVEN: training on photographs bundled with scikit-image" in log
    for name in ("args.json", "metrics.csv", "ckpt-epoch0001.keras", "state.json",
                 "model.keras", "summary.json", "eval_summary.csv", "skimage-chelsea_x4.csv"):
        assert (out / name).exists(), name
    assert json.loads((out / "args.json").read_text())["epochs"] == 1
    assert json.loads((out / "state.json").read_text()) == {
        "epoch": 1, "checkpoint": "ckpt-epoch0001.keras"}
    assert [r["epoch"] for r in _rows(out / "metrics.csv")] == ["1"]
    # interrupted after epoch 1 = a rerun with more epochs continues from the checkpoint
    log = _train(argv + ["--epochs", "3"], capsys)
    assert "after epoch 1" in log and "Epoch 2/3" in log and "Epoch 1/3" not in log
    assert [r["epoch"] for r in _rows(out / "metrics.csv")] == ["1", "2", "3"]
    assert sorted(p.name for p in out.glob("ckpt-*")) == ["ckpt-epoch0003.keras"]
    ckpt = keras.models.load_model(out / "ckpt-epoch0003.keras")
    assert int(ckpt.optimizer.iterations.numpy()) == 3 * 2   # the optimizer state resumed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["block_weights"] == [2 * 8 * 8 * 9]
    (ev,) = summary["eval"]
    assert ev["set"] == "skimage-chelsea" and np.isfinite(ev["psnr"])
    final = keras.models.load_model(out / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (1, 12, 12, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(final(x))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out / "model.tflite"))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-2)


def test_from_pretrained_compress_full_rank_is_exact(tmp_path, capsys):
    base = edsr_8_128(4, num_blocks=2, channels=8)
    randomise(base, seed=3)
    base.save(tmp_path / "base.keras")
    out = tmp_path / "basis"
    # shared by the 2 convs of a block, m = 16 = rank bound min(p*9, 2*n*s): the SVD start
    # reproduces the baseline exactly
    _train(["--smoke", "--network", "edsr-8-128-basis-128-27", "--blocks", "2", "--channels", "8",
            "--num-basis", "16", "--basis-depth", "8", "--share-basis", "--no-tflite",
            "--from-pretrained", str(tmp_path / "base.keras"), "--epochs", "0",
            "--output-dir", str(out)], capsys)
    small = keras.models.load_model(out / "model.keras", compile=False)
    assert models.block_weight_counts(small) == [16 * 8 * 9 + 2 * 16 * 8] * 2
    assert len([la for la in small.layers if isinstance(la, keras_basis.BasisConv2D)]) == 2
    x = np.random.default_rng(0).uniform(0, 255, (1, 9, 7, 3)).astype("float32")
    np.testing.assert_allclose(small(x), base(x), rtol=1e-3, atol=0.05)
    # Factor: fresh body, every other layer copied from the baseline
    out = tmp_path / "factor"
    log = _train(["--smoke", "--network", "edsr-8-128-factor-sic2", "--blocks", "2", "--channels",
                  "8", "--no-tflite", "--from-pretrained", str(tmp_path / "base.keras"),
                  "--epochs", "0", "--output-dir", str(out)], capsys)
    assert "copied the weights of 5 layers" in log
    factor = keras.models.load_model(out / "model.keras", compile=False)
    for name in ("head_conv", "body_conv", "up1_conv", "up2_conv", "tail_conv"):
        for a, b in zip(factor.get_layer(name).get_weights(), base.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_train_on_div2k_layout_with_validation_split(tmp_path, capsys):
    root = tmp_path / "DIV2K"
    for i, split in ((1, "train"), (2, "train"), (801, "valid")):
        _png(root / f"DIV2K_{split}_HR" / f"{i:04d}.png", _rand((64, 60, 3), i))
    out = tmp_path / "run"
    log = _train(["--smoke", "--network", "srresnet", "--blocks", "1", "--channels", "8",
                  "--scale", "2", "--data-dir", str(root), "--div2k-valid", "--no-tflite",
                  "--epochs", "1", "--output-dir", str(out)], capsys)
    assert "DIV2K train (LR made on the fly): 2 images" in log
    (row,) = _rows(out / "eval_summary.csv")
    assert row["set"] == "DIV2K" and row["protocol"] == "div2k"
    assert [r["val_set"] for r in _rows(out / "metrics.csv")] == ["DIV2K"]


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    cmd = [sys.executable, "-m", "examples.div2k.train", "--smoke", "--strategy", "mirrored",
           "--logical-cpus", "2", "--network", "srresnet-basis-32-32", "--blocks", "1",
           "--channels", "8", "--num-basis", "2", "--basis-depth", "4", "--epochs", "1",
           "--eval-every", "0", "--no-tflite", "--output-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "strategy: mirrored (2 replica(s))" in proc.stdout
    assert (tmp_path / "summary.json").exists() and (tmp_path / "ckpt-epoch0001.keras").exists()


@pytest.mark.slow
def test_multi_worker_strategy_single_worker_cluster(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker",
                                                                        "index": 0}}
    cmd = [sys.executable, "-m", "examples.div2k.train", "--smoke", "--strategy", "multi-worker",
           "--network", "edsr-8-128", "--blocks", "1", "--channels", "8", "--epochs", "1",
           "--eval-every", "0", "--no-tflite", "--output-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_CONFIG": json.dumps(tf_config)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "strategy: multi-worker (1 replica(s))" in proc.stdout
    assert (tmp_path / "summary.json").exists()


@pytest.mark.slow
def test_cpu_experiment_quick(tmp_path, shared_data):
    from examples.div2k import cpu_experiment as X

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.div2k.cpu_experiment", "--quick", "--output-dir",
         str(tmp_path), "--data-dir", str(shared_data / "sr-train"), "--benchmark-dir",
         str(shared_data / "sr-benchmarks")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = run.read_csv(tmp_path / "results.csv")
    stages = ["baseline"] + [s for n, *_ in X.POINTS for s in (f"{n}-compressed", n)] + [
        n for n, *_ in X.FRESH]
    assert [r["network (x4)"] for r in rows] == ["Bicubic"] + [X.LABELS[s] for s in stages]
    pairs = D.benchmark_pairs(shared_data / "sr-benchmarks", "Set5", 4)
    bicubic = E.evaluate_pairs("bicubic", pairs, 4, max_lr_size=32)
    assert float(rows[0]["Set5 PSNR"]) == pytest.approx(bicubic["psnr"], abs=0.005)
    base = None
    for row, stage in zip(rows[1:], stages):  # each row = its run's own files and model
        folder = tmp_path / stage
        model = keras.models.load_model(folder / "model.keras", compile=False)
        block = models.block_weight_counts(model)[0]
        base = base or block
        assert int(row["params/block"]) == block and row["rate"] == f"{100 * block / base:.1f}%"
        assert int(row["conv weights"]) == models.weight_count(model)
        for ev in _rows(folder / "eval_summary.csv"):
            assert float(row[f"{ev['set']} PSNR"]) == pytest.approx(float(ev["psnr"]), abs=0.005)
            assert float(row[f"{ev['set']} SSIM"]) == pytest.approx(float(ev["ssim"]), abs=5e-5)
        args = json.loads((folder / "args.json").read_text())
        assert len(run.read_csv(folder / "metrics.csv")) == args["epochs"]
    assert int(rows[2]["params/block"]) == 2 * (14 * 64 * 9 + 14 * 64)  # Basis-64-14: m p 9 + m n
    assert (tmp_path / "crop_x4.png").stat().st_size > 10_000


def test_presets_flags_and_help(capsys):
    from examples.div2k import train

    args = train.parse_args(["--network", "srresnet-basis-64-14", "--output-dir", "o"])
    assert (args.epochs, args.steps_per_epoch, args.batch_size, args.patch_size,
            args.lr_milestones, args.restart, args.logical_cpus) == (
        300, 2000, 16, 24, "200", False, 0)
    args = train.parse_args(["--network", "edsr", "--output-dir", "o", "--patch-size", "32",
                             "--lr-milestones", "0.5", "--epochs", "10", "--restart"])
    assert (args.patch_size, args.restart) == (32, True)
    assert run.milestones(args.lr_milestones, args.epochs) == [5]
    args = train.parse_args(["--smoke", "--output-dir", "o"])
    assert (args.epochs, args.steps_per_epoch, args.batch_size, args.patch_size,
            args.tflite_size) == (2, 2, 2, 12, 16)
    with pytest.raises(SystemExit):
        train.parse_args(["--network", "srresnet", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "LR patch side (default: 24)" in text and "--epochs EPOCHS default: 300" in text
    assert "None" not in text.split("optimisation")[1]
