"""examples/run.py: flags, presets, strategy, chief, checkpoint + resume, files."""

import argparse
import json
import os
import pathlib
import subprocess
import sys

import pytest

from examples import run

REPO = pathlib.Path(__file__).resolve().parents[1]
FIELDS = ("epoch", "loss", "seconds")


def _fake_save(tag):
    def save(path):
        pathlib.Path(path).write_text(tag)

    return save


def _epochs(rows):
    return [int(r["epoch"]) for r in rows]


# ------------------------------------------------------------------ checkpoint + resume
def test_checkpoint_naming_state_and_only_newest_kept(tmp_path):
    assert run.checkpoint_name(7) == "ckpt-epoch0007.keras"
    assert run.checkpoint_name(12345) == "ckpt-epoch12345.keras"
    rd = run.RunDir(tmp_path, FIELDS)
    assert (rd.epoch, rd.checkpoint, rd.rows) == (0, None, [])
    for epoch in (1, 2):
        path = rd.end_epoch({"epoch": epoch, "loss": 1.0 / epoch, "seconds": 3}, _fake_save(
            f"model after {epoch}"))
        assert path == tmp_path / run.checkpoint_name(epoch)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-epoch0002.keras", "metrics.csv", "state.json"]
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "epoch": 2, "checkpoint": "ckpt-epoch0002.keras"}
    assert (tmp_path / "metrics.csv").read_text() == "epoch,loss,seconds\n1,1.0,3\n2,0.5,3\n"
    again = run.RunDir(tmp_path, FIELDS)
    assert again.epoch == 2 and again.checkpoint.read_text() == "model after 2"
    assert again.rows == [{"epoch": "1", "loss": "1.0", "seconds": "3"},
                          {"epoch": "2", "loss": "0.5", "seconds": "3"}]
    # --restart: epoch 0, and the next epoch replaces the old files
    fresh = run.RunDir(tmp_path, FIELDS, restart=True)
    assert (fresh.epoch, fresh.checkpoint, fresh.rows) == (0, None, [])
    fresh.end_epoch({"epoch": 1, "loss": 9.0, "seconds": 1}, _fake_save("new"))
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-epoch0001.keras"]
    assert _epochs(run.read_csv(tmp_path / "metrics.csv")) == [1]


@pytest.mark.parametrize("crash_at", ["state", "metrics", "checkpoint"])
def test_crash_during_end_epoch_loses_no_row_and_repeats_none(tmp_path, monkeypatch, crash_at):
    rd = run.RunDir(tmp_path, FIELDS)
    for epoch in (1, 2):
        rd.end_epoch({"epoch": epoch, "loss": float(epoch), "seconds": 1}, _fake_save(str(epoch)))

    class Crash(Exception):
        pass

    def crash(*args):
        raise Crash()

    if crash_at == "state":  # after the checkpoint and the metrics row of epoch 3
        real = run.write_json
        monkeypatch.setattr(run, "write_json", lambda path, data: crash() if pathlib.Path(
            path).name == run.STATE_FILE else real(path, data))
    elif crash_at == "metrics":  # after the checkpoint of epoch 3
        monkeypatch.setattr(run, "write_csv", crash)
    with pytest.raises(Crash):
        rd.end_epoch({"epoch": 3, "loss": 33.0, "seconds": 1},
                     crash if crash_at == "checkpoint" else _fake_save("3"))
    monkeypatch.undo()
    written = _epochs(run.read_csv(tmp_path / "metrics.csv"))
    assert written == ([1, 2, 3] if crash_at == "state" else [1, 2])  # the row came first
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2
    # the rerun resumes after epoch 2 (its checkpoint) and drops the unfinished row
    resumed = run.RunDir(tmp_path, FIELDS)
    assert resumed.epoch == 2 and resumed.checkpoint.read_text() == "2"
    assert _epochs(resumed.rows) == [1, 2]
    resumed.end_epoch({"epoch": 3, "loss": 3.0, "seconds": 1}, _fake_save("3 again"))
    rows = run.read_csv(tmp_path / "metrics.csv")
    assert _epochs(rows) == [1, 2, 3] and rows[2]["loss"] == "3.0"
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-epoch0003.keras"]
    assert not [p for p in tmp_path.iterdir() if "kbtmp" in p.name]  # no temp file left


def test_state_naming_a_missing_checkpoint_starts_over(tmp_path):
    rd = run.RunDir(tmp_path, FIELDS)
    rd.end_epoch({"epoch": 1, "loss": 1.0, "seconds": 1}, _fake_save("1"))
    (tmp_path / "ckpt-epoch0001.keras").unlink()
    again = run.RunDir(tmp_path, FIELDS)
    assert (again.epoch, again.checkpoint, again.rows) == (0, None, [])


def test_args_json_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "--seed", "3"])
    rd = run.RunDir(tmp_path / "new", FIELDS)
    ns = argparse.Namespace(seed=3, output_dir=pathlib.Path("/o"), epochs=5)
    rd.write_args(ns, replicas=2)
    assert json.loads((tmp_path / "new" / "args.json").read_text()) == {
        "seed": 3, "output_dir": "/o", "epochs": 5, "replicas": 2, "resumed_from_epoch": 0,
        "argv": ["train.py", "--seed", "3"]}
    run.write_csv(tmp_path / "t.csv", ("a", "b"), [{"a": "x,y", "b": 1}, {"a": 2}])
    assert (tmp_path / "t.csv").read_text() == 'a,b\n"x,y",1\n2,\n'
    assert run.read_csv(tmp_path / "t.csv") == [{"a": "x,y", "b": "1"}, {"a": "2", "b": ""}]
    assert run.read_csv(tmp_path / "missing.csv") == []


def test_epoch_callback_records_fit_and_resumes_the_optimizer(tmp_path):
    import keras
    import numpy as np

    x = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    rd = run.RunDir(tmp_path, FIELDS)

    def make_row(epoch, logs, model):
        return {"loss": logs["loss"]}

    hist = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                     callbacks=[run.epoch_callback(rd, make_row)])
    rows = run.read_csv(tmp_path / "metrics.csv")
    assert _epochs(rows) == [1, 2] and all(float(r["seconds"]) >= 0 for r in rows)
    np.testing.assert_allclose([float(r["loss"]) for r in rows], hist.history["loss"],
                               rtol=1e-6)
    rd = run.RunDir(tmp_path, FIELDS)
    resumed = keras.models.load_model(rd.checkpoint)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    resumed.fit(x, y, batch_size=4, epochs=3, initial_epoch=rd.epoch, verbose=0,
                callbacks=[run.epoch_callback(rd, make_row)])
    assert _epochs(run.read_csv(tmp_path / "metrics.csv")) == [1, 2, 3]
    assert int(keras.models.load_model(tmp_path / "ckpt-epoch0003.keras")
               .optimizer.iterations.numpy()) == 6


# ------------------------------------------------------------------------- distribution
@pytest.mark.parametrize("tf_config, expected", [
    (None, (0, True)),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, (0, True)),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, (1, False)),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}},
     (0, False)),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "chief", "index": 0}},
     (0, True)),
])
def test_worker_and_worker_dir(tf_config, expected, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert run.worker() == expected
    index, chief = expected
    assert run.worker_dir("out", index, chief) == pathlib.Path(
        "out" if chief else f"out/worker-{index}")


def test_make_strategy_checks_and_default():
    import tensorflow as tf

    assert run.make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match=r"argument `strategy`. Expected one of \('default', "
                                         r"'mirrored', 'multi-worker'\). Received "
                                         r"strategy='horovod'"):
        run.make_strategy("horovod")
    with pytest.raises(ValueError, match=r"`logical_cpus`. Expected an int >= 0. Received "
                                         r"logical_cpus=-1"):
        run.make_strategy("default", -1)


def test_make_strategy_mirrored_on_logical_cpus():
    code = ("from examples import run; s = run.make_strategy('mirrored', 3); "
            "print(type(s).__name__, s.num_replicas_in_sync)")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["MirroredStrategy", "3"]


# -------------------------------------------------------------------- flags and presets
def _parser():
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--network", default="a")
    p.add_argument("--epochs", type=int, help="epochs")
    run.add_run_arguments(p, smoke_help="tiny")
    selector = argparse.ArgumentParser(add_help=False)
    selector.add_argument("--network", default="a")
    selector.add_argument("--smoke", action="store_true")
    return p, selector


def _preset(ns):
    return {"epochs": 1 if ns.smoke else {"a": 300, "b": 400}[ns.network]}


def test_parse_with_preset_defaults_overrides_and_help(capsys):
    p, sel = _parser()
    args = run.parse_with_preset(p, sel, ["--network", "b", "--output-dir", "o"], _preset)
    assert (args.epochs, args.seed, args.strategy, args.logical_cpus, args.restart) == (
        400, 0, "default", 0, False)
    p, sel = _parser()
    assert run.parse_with_preset(p, sel, ["--output-dir", "o", "--epochs", "7"],
                                 _preset).epochs == 7
    p, sel = _parser()
    assert run.parse_with_preset(p, sel, ["--smoke", "--output-dir", "o"], _preset).epochs == 1
    p, sel = _parser()
    with pytest.raises(SystemExit):
        run.parse_with_preset(p, sel, ["--network", "b", "--help"], _preset)
    assert "epochs (default: 400)" in " ".join(capsys.readouterr().out.split())


def test_milestones_and_step_lr():
    assert run.milestones("250,325", 400) == [250, 325]
    assert run.milestones("0.5,0.75", 300) == [150, 225]
    assert run.milestones("", 10) == [] and run.milestones("200", 2) == [200]
    assert [run.step_lr(e, 0.1, [250, 325], 0.1) for e in (249, 250, 324, 325)] == \
        pytest.approx([0.1, 0.01, 0.01, 0.001])
    for bad in ("-1", "x", "2.5"):
        with pytest.raises(ValueError, match=f"`lr_milestones`.*Received lr_milestones='{bad}'"):
            run.milestones(bad, 10)
