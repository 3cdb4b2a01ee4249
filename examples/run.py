"""Run plumbing shared by the recipes' ``train.py`` scripts and ``paper_scale_gpu.py``.

One output folder per run (``--output-dir``), the same in every script:

- ``args.json``: the final arguments (after presets) and a few facts of the run;
- ``metrics.csv``: one row per finished epoch (``csv`` module, fixed columns);
- ``ckpt-epochNNNN.keras``: the model, optimizer included, after epoch ``NNNN`` (only
  the newest is kept);
- ``state.json``: ``{"epoch": N, "checkpoint": "ckpt-epochNNNN.keras"}``, the one file
  that says epoch N is done.

At the end of epoch N, :meth:`RunDir.end_epoch` writes, in this order: the checkpoint,
``metrics.csv`` with row N, ``state.json``; then it removes older checkpoints. A crash
anywhere before ``state.json`` leaves the previous state, so a rerun resumes after epoch
N-1 from its checkpoint and drops every row after N-1 (the row of N is written again by
the rerun): no row is lost and none is repeated. Every file is written atomically with
``keras_basis.fileio``.

Importing this module imports ``keras_basis`` (hence Keras) but not TensorFlow
(:func:`make_strategy` imports it when called): ``paper_scale_gpu.py`` uses it on JAX
machines without TensorFlow.

API:

- Command line: :func:`add_run_arguments` (``--output-dir``, ``--seed``, ``--strategy``,
  ``--logical-cpus``, ``--restart``, ``--smoke``: one spelling in every script) and
  :func:`parse_with_preset` (presets as data, applied with ``parser.set_defaults`` so
  that ``--help`` shows the real defaults).
- Distribution: :func:`make_strategy` (``default`` / ``mirrored`` / ``multi-worker``,
  optional logical CPU devices), :func:`worker` (index and chief flag from
  ``TF_CONFIG``), :func:`worker_dir` (non-chief workers write under ``worker-<i>/``).
- Output folder: :class:`RunDir` (resume point, metrics rows, checkpoint + state,
  ``args.json``, JSON/text files) and :func:`epoch_callback` (a Keras callback calling
  :meth:`RunDir.end_epoch`).
- Files: :func:`write_json`, :func:`write_csv`, :func:`read_csv`, :func:`checkpoint_name`.
- Learning rate: :func:`milestones` (epoch numbers or fractions of the epochs) and
  :func:`step_lr`.

Example::

    from examples import run

    parser = argparse.ArgumentParser()
    run.add_run_arguments(parser, smoke_help="tiny sizes (tests)")
    args = parser.parse_args(argv)
    strategy = run.make_strategy(args.strategy, args.logical_cpus)
    index, chief = run.worker()
    rd = run.RunDir(run.worker_dir(args.output_dir, index, chief), FIELDS,
                    restart=args.restart)
    rd.write_args(args, replicas=strategy.num_replicas_in_sync)
    model = keras.models.load_model(rd.checkpoint) if rd.checkpoint else build()
    model.fit(..., initial_epoch=rd.epoch,
              callbacks=[run.epoch_callback(rd, lambda epoch, logs, model: {...})])
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import re
import sys
import time

from keras_basis import fileio

__all__ = [
    "CHECKPOINT_RE",
    "STATE_FILE",
    "STRATEGIES",
    "RunDir",
    "add_run_arguments",
    "checkpoint_name",
    "epoch_callback",
    "make_strategy",
    "milestones",
    "parse_with_preset",
    "read_csv",
    "step_lr",
    "worker",
    "worker_dir",
    "write_csv",
    "write_json",
]

STRATEGIES = ("default", "mirrored", "multi-worker")
STATE_FILE = "state.json"
METRICS_FILE = "metrics.csv"
ARGS_FILE = "args.json"
CHECKPOINT_RE = re.compile(r"ckpt-epoch(\d{4,})\.keras")


# ------------------------------------------------------------------------ command line
def add_run_arguments(parser, smoke_help):
    """Adds the flags every training script spells the same way.

    ``--output-dir`` (required), ``--seed`` (0), ``--strategy`` (one of
    :data:`STRATEGIES`), ``--logical-cpus`` (split the CPU into N logical devices, to
    try ``--strategy mirrored`` without GPUs), ``--restart`` (ignore an existing
    checkpoint) and ``--smoke``.

    Args:
        parser: an ``argparse.ArgumentParser`` or one of its argument groups.
        smoke_help: the script's own description of ``--smoke``.

    Returns:
        ``parser``.
    """
    parser.add_argument("--output-dir", required=True,
                        help="args.json, metrics.csv, checkpoints, the model and results")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (weights, data order)")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES,
                        help="tf.distribute strategy (multi-worker: TF_CONFIG on every "
                             "machine)")
    parser.add_argument("--logical-cpus", type=int, default=0,
                        help="split the CPU into N logical devices (to try --strategy "
                             "mirrored without GPUs)")
    parser.add_argument("--restart", action="store_true",
                        help="ignore an existing checkpoint and start from epoch 0 (without it, "
                             "a rerun resumes after the last finished epoch)")
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    return parser


def parse_with_preset(parser, selector, argv, preset_of):
    """Parses ``argv`` after setting the defaults of the chosen preset.

    ``selector`` parses only the arguments that choose the preset (e.g. ``--network``,
    ``--variant``, ``--smoke``); ``parser.set_defaults(**preset_of(chosen))`` then makes
    the preset's values the defaults of ``parser``, which ``--help`` shows and any
    explicit flag overrides.

    Args:
        parser: the script's full ``argparse.ArgumentParser``.
        selector: an ``argparse.ArgumentParser(add_help=False)`` with the choosing
            arguments (spelled as in ``parser``).
        argv: the command line (``None``: ``sys.argv[1:]``).
        preset_of: ``callable(namespace) -> dict`` of defaults (keys are ``dest`` names).

    Returns:
        The parsed ``argparse.Namespace``.
    """
    chosen, _ = selector.parse_known_args(argv)
    parser.set_defaults(**preset_of(chosen))
    return parser.parse_args(argv)


# ------------------------------------------------------------------------ distribution
def make_strategy(name="default", logical_cpus=0):
    """A ``tf.distribute`` strategy; call before TensorFlow creates its devices.

    Args:
        name: ``"default"`` (no distribution), ``"mirrored"`` (every GPU of this machine,
            or every logical CPU device when there is no GPU and ``logical_cpus > 1``) or
            ``"multi-worker"`` (``MultiWorkerMirroredStrategy``; ``TF_CONFIG`` describes
            the cluster).
        logical_cpus: split the first physical CPU into this many logical devices
            (``0`` or ``1``: leave it whole).

    Returns:
        The strategy.

    Raises:
        ValueError: for an unknown ``name`` or a negative ``logical_cpus``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Invalid value for argument `strategy`. Expected one of "
                         f"{STRATEGIES}. Received strategy={name!r}.")
    if isinstance(logical_cpus, bool) or not isinstance(logical_cpus, int) or logical_cpus < 0:
        raise ValueError("Invalid value for argument `logical_cpus`. Expected an int >= 0. "
                         f"Received logical_cpus={logical_cpus!r}.")
    import tensorflow as tf

    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)])
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=cpus)


def worker(tf_config=None):
    """``(index, is_chief)`` of this process in a multi-worker cluster.

    Read from ``TF_CONFIG`` (or ``tf_config``, its JSON text): the chief is the task of
    type ``"chief"``, or worker 0 when the cluster has no ``"chief"``; without
    ``TF_CONFIG`` the process is worker 0 and the chief.

    Returns:
        ``(int, bool)``.
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    cfg = json.loads(text or "{}")
    task = cfg.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in cfg.get("cluster", {})
    return index, kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def worker_dir(output_dir, index, chief):
    """``output_dir`` for the chief, ``output_dir/worker-<index>`` for the others.

    Every worker keeps its own checkpoints (so all of them resume at the same epoch);
    only the chief's folder holds the run's results.
    """
    out = pathlib.Path(output_dir)
    return out if chief else out / f"worker-{index}"


# ------------------------------------------------------------------------------- files
def write_json(path, data):
    """Writes ``data`` as indented JSON (keys sorted, unknown types as ``str``)."""
    return fileio.write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str)
                             + "\n")


def write_csv(path, fields, rows):
    """Writes ``rows`` (dicts) under the header ``fields``; missing values are empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return fileio.write_text(path, buf.getvalue())


def read_csv(path):
    """The rows of a CSV file as dicts of strings (``[]`` when it does not exist)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def checkpoint_name(epoch):
    """``"ckpt-epoch0012.keras"`` for ``epoch=12``."""
    return f"ckpt-epoch{int(epoch):04d}.keras"


class RunDir:
    """The output folder of one run: resume point, metrics rows, checkpoints, files.

    Created at the start of a run, it reads ``state.json`` (unless ``restart``): when
    the checkpoint it names exists, :attr:`epoch` is that epoch and :attr:`checkpoint`
    its path, else ``0`` and ``None``. :attr:`rows` are the rows of ``metrics.csv`` up
    to :attr:`epoch` (later rows belong to an epoch that did not finish).

    Args:
        path: the folder (created if missing).
        fields: the columns of ``metrics.csv``.
        restart: ignore an existing state (start at epoch 0; the next
            :meth:`end_epoch` replaces the old files).

    Example:

    >>> rd = RunDir("/tmp/run", ("epoch", "loss"))
    >>> rd.end_epoch({"epoch": rd.epoch + 1, "loss": 0.5}, model.save)
    """

    def __init__(self, path, fields, restart=False):
        self.path = pathlib.Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.fields = tuple(fields)
        self.epoch, self.checkpoint = 0, None
        state = self.path / STATE_FILE
        if state.exists() and not restart:
            saved = json.loads(state.read_text())
            ckpt = self.path / saved["checkpoint"]
            if ckpt.exists():
                self.epoch, self.checkpoint = int(saved["epoch"]), ckpt
        self.rows = [r for r in read_csv(self.path / METRICS_FILE)
                     if int(r["epoch"]) <= self.epoch]

    def write_args(self, args, **extra):
        """Writes ``args.json``: ``vars(args)``, ``extra``, ``argv`` and the resume point."""
        record = {**vars(args), **extra, "resumed_from_epoch": self.epoch,
                  "argv": list(sys.argv)}
        return write_json(self.path / ARGS_FILE, record)

    def write_json(self, name, data):
        """Writes ``data`` to ``<folder>/<name>`` as JSON (atomically)."""
        return write_json(self.path / name, data)

    def write_text(self, name, text):
        """Writes ``text`` to ``<folder>/<name>`` (atomically)."""
        return fileio.write_text(self.path / name, text)

    def save_model(self, model, name="model.keras"):
        """``model.save`` to ``<folder>/<name>``, atomically; returns the path."""
        return fileio.atomic_write(self.path / name, model.save)

    def write_metrics(self):
        """Rewrites ``metrics.csv`` from :attr:`rows`."""
        return write_csv(self.path / METRICS_FILE, self.fields, self.rows)

    def end_epoch(self, row, save_checkpoint):
        """Records a finished epoch: checkpoint, then metrics row, then ``state.json``.

        Args:
            row: the epoch's metrics (``row["epoch"]`` is the 1-based epoch number);
                replaces any row of the same or a later epoch.
            save_checkpoint: ``callable(path)`` writing the checkpoint, e.g.
                ``model.save`` (called on a temporary path, then moved).

        Returns:
            The checkpoint's path.
        """
        epoch = int(row["epoch"])
        name = checkpoint_name(epoch)
        fileio.atomic_write(self.path / name, save_checkpoint)
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch] + [dict(row)]
        self.write_metrics()
        write_json(self.path / STATE_FILE, {"epoch": epoch, "checkpoint": name})
        for old in self.path.glob("ckpt-epoch*.keras"):
            if old.name != name and CHECKPOINT_RE.fullmatch(old.name):
                old.unlink(missing_ok=True)
        self.epoch, self.checkpoint = epoch, self.path / name
        return self.checkpoint


def epoch_callback(run_dir, make_row):
    """A ``keras.callbacks.Callback`` recording every epoch in ``run_dir``.

    Args:
        run_dir: a :class:`RunDir`.
        make_row: ``callable(epoch, logs, model) -> dict`` of the epoch's metrics
            (``epoch`` 1-based); ``"epoch"`` and ``"seconds"`` (wall time of the epoch)
            are added.

    Returns:
        The callback (its ``on_epoch_end`` calls :meth:`RunDir.end_epoch` with
        ``model.save``).
    """
    import keras

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            seconds = round(time.time() - getattr(self, "t0", time.time()), 2)
            row = {"epoch": epoch + 1, **make_row(epoch + 1, dict(logs or {}), self.model),
                   "seconds": seconds}
            run_dir.end_epoch(row, self.model.save)

    return EpochEnd()


# ------------------------------------------------------------------------ learning rate
def milestones(text, epochs):
    """Epochs (0-based starts) at which a step schedule decays the learning rate.

    Args:
        text: comma-separated values; a value below 1 is a fraction of ``epochs``
            (``0.5`` of 300 -> 150), others are epoch numbers (the authors'
            ``--decay step-250-325`` is ``"250,325"``). Empty: no decay.
        epochs: the number of epochs of the run.

    Returns:
        list of int, sorted.

    Raises:
        ValueError: naming ``lr_milestones`` for a negative or non-numeric value.
    """
    out = []
    for part in str(text).split(","):
        if not part.strip():
            continue
        try:
            value = float(part)
        except ValueError:
            value = -1.0
        if value < 0 or (value >= 1 and value != int(value)):
            raise ValueError("Invalid value for argument `lr_milestones`. Expected fractions "
                             "< 1 or epoch numbers, comma-separated. Received "
                             f"lr_milestones={text!r}.")
        out.append(int(round(value * epochs)) if value < 1 else int(value))
    return sorted(out)


def step_lr(epoch, lr, boundaries, factor):
    """``lr * factor ** (number of boundaries <= epoch)`` (``epoch`` 0-based)."""
    return lr * factor ** sum(epoch >= b for b in boundaries)
