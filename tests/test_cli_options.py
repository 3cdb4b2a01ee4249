"""keras_basis.cli in-process: flag parsing, shared option groups, image loading.

The subprocess tests of every command are in test_cli.py; these check the
pieces without a TensorFlow start-up per case.
"""

import argparse
import re

import numpy as np
import pytest

from keras_basis import cli
from keras_basis.cli import demo as demo_command
from keras_basis.cli import io_helpers, options


def _parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def _flags(help_text):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", help_text)))


def test_registry_has_every_command_with_register_and_run():
    assert list(cli.COMMANDS) == ["compress", "report", "export", "bench", "profile", "demo"]
    for name, module in cli.COMMANDS.items():
        assert module.NAME == name
        assert callable(module.register) and callable(module.run)
        assert _parse(*{"compress": ["compress", "a.keras", "b.keras", "--ratio", "0.5"],
                         "report": ["report", "a.keras"],
                         "export": ["export", "a.keras", "b.tflite"],
                         "bench": ["bench", "a.tflite"],
                         "profile": ["profile", "a.keras"],
                         "demo": ["demo"]}[name]).run is module.run


def test_shared_flags_are_spelled_and_defaulted_the_same_everywhere():
    compress = _parse("compress", "a.keras", "b.keras", "--ratio", "0.5")
    export = _parse("export", "a.keras", "b.tflite")
    report = _parse("report", "a.keras")
    for args in (compress, export):
        assert (args.num_calibration, args.scale, args.offset, args.image_size,
                args.calibration_dir) == (200, (1.0,), (0.0,), None, None)
    for args in (compress, report):
        assert args.splits == "auto"
    for args in (compress, export, report):
        assert args.safe_mode is True
    off = _parse("export", "a.keras", "b.tflite", "--safe-mode", "off", "--scale", "2,3,4",
                 "--image-size", "32x24", "--fold")
    assert (off.safe_mode, off.scale, off.image_size, off.fold) == (False, (2.0, 3.0, 4.0),
                                                                    (32, 24), "all")
    assert _parse("export", "a.keras", "b.tflite", "--fold", "auto").fold == "auto"
    assert export.fold == "none" and export.num_verify == 16 and export.fold_threads == 1


def test_tflite_scripts_have_the_commands_flags(capsys):
    for name in ("export", "bench"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([name, "--help"])
        page = capsys.readouterr().out
        script = cli.command_parser(name, "python tflite/script.py").format_help()
        assert script.startswith("usage: python tflite/script.py [-h] [--debug]")
        assert _flags(script) == _flags(page)
        assert "--num-calibration" in _flags(script) or "--threads" in _flags(script)
    with pytest.raises(ValueError, match="Expected one of.*Received name='convert'"):
        cli.command_parser("convert", "x")


def test_bench_threads_and_xnnpack():
    args = _parse("bench", "a.tflite", "b.tflite", "--threads", "1,2,4")
    assert (args.threads, args.xnnpack, args.runs, args.warmup) == ((1, 2, 4), "on", 100, 10)
    assert _parse("bench", "a.tflite", "--no-xnnpack").xnnpack == "off"
    assert _parse("bench", "a.tflite", "--xnnpack", "both").xnnpack == "both"


@pytest.mark.parametrize("parse, text, expected", [
    (options.ratio_list, "0.5,0.25", (0.5, 0.25)),
    (options.thread_list, "1, 2", (1, 2)),
    (options.number_list, "-1.5,2", (-1.5, 2.0)),
    (options.image_size, "224", (224, 224)),
    (options.image_size, "32X16", (32, 16)),
    (options.splits, "auto", "auto"),
    (options.splits, "3", 3),
])
def test_value_types(parse, text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("parse, text, message", [
    (options.ratio_list, "0.5,2", "expected comma-separated ratios: expected a number in "
                                  "(0, 1], received 2"),
    (options.thread_list, ",", "expected comma-separated thread counts, received ','"),
    (options.image_size, "3x", "expected HxW or N (e.g. 224x224), received '3x'"),
    (options.splits, "0", "expected 'auto' or a positive integer, received '0'"),
    (options.non_negative_int, "-1", "expected an integer >= 0, received '-1'"),
])
def test_value_type_errors(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse(text)
    assert str(err.value) == message


def test_demo_quick_keeps_the_flags_given_explicitly():
    from keras_basis.demo import DemoConfig

    full, quick = DemoConfig(), DemoConfig.quick()
    assert demo_command.config_from_args(_parse("demo")) == full
    assert demo_command.config_from_args(_parse("demo", "--quick")) == quick
    mixed = demo_command.config_from_args(_parse("demo", "--quick", "--epochs", "7",
                                                 "--output-dir", "x"))
    assert mixed == quick.replace(epochs=7, output_dir="x")
    # The value equal to the full run's default still wins over --quick's.
    same = demo_command.config_from_args(_parse("demo", "--quick", "--epochs",
                                                str(full.epochs)))
    assert same.epochs == full.epochs and same.finetune_epochs == quick.finetune_epochs
    seeded = demo_command.config_from_args(_parse("demo", "--seed", "3", "--ratios", "0.5"))
    assert seeded == full.replace(seed=3, ratios=(0.5,))


def test_load_images_even_spacing_and_per_channel_normalisation(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = []
    for i in range(10):
        a = (rng.random((6, 5, 3)) * 255).astype("uint8")
        pixels.append(a)
        Image.fromarray(a).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    x = io_helpers.load_images(tmp_path, (6, 5), 3, limit=4, scale=(2.0, 1.0, 0.5),
                               offset=(-1.0,))
    # 4 of 10 files, evenly spaced: 0, 2, 5, 7; same size, so no resampling.
    want = np.stack([pixels[i] for i in (0, 2, 5, 7)]).astype(np.float32) / 255.0
    want = want * np.float32([2.0, 1.0, 0.5]) - 1.0
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-6)
    gray = io_helpers.load_images(tmp_path, (3, 4), 1, limit=100)
    assert gray.shape == (10, 3, 4, 1) and 0.0 <= gray.min() and gray.max() <= 1.0
    with pytest.raises(io_helpers.CLIError, match="--scale needs 1 or 3 comma-separated"):
        io_helpers.load_images(tmp_path, (6, 5), 3, scale=(1.0, 2.0))


def test_bench_rows_are_relative_to_the_first_result():
    results = [
        dict(file="a.tflite", size_bytes=4000, threads=1, median_ms=2.0, p90_ms=2.5,
             xnnpack=True),
        dict(file="b.tflite", size_bytes=1000, threads=1, median_ms=0.5, p90_ms=0.7,
             xnnpack=False),
    ]
    rows = cli.bench.latency_rows(results)
    assert rows[1] == ["b.tflite", "1,000", "0.25", 1, "0.500", "0.700", "0.25", "off"]
    assert rows[0][2] == rows[0][6] == "1.00"


def test_version_goes_to_stdout(capsys):
    import keras_basis

    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"keras-basis {keras_basis.__version__}\n", "")


def test_output_may_not_be_the_input(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.keras").symlink_to(model)
    for out in (model, tmp_path / "sub" / ".." / "m.keras", tmp_path / "link.keras"):
        with pytest.raises(io_helpers.CLIError, match="OUT.keras is the input file"):
            io_helpers.check_output_file(out, ".keras", source=model, name="OUT.keras")
    assert io_helpers.check_output_file(tmp_path / "n.keras", ".keras", source=model)
    with pytest.raises(io_helpers.CLIError, match=r"o.bin: OUT.tflite must end with .tflite"):
        io_helpers.check_output_file(tmp_path / "o.bin", ".tflite", name="OUT.tflite")


def test_load_error_keeps_the_unknown_class_and_hints_import():
    cause = TypeError(
        "Could not locate class 'MyScale'. Make sure custom classes and functions are "
        "decorated with `@keras.saving.register_keras_serializable()`. Full object config: "
        "{'module': 'my_layers', 'class_name': 'MyScale'}"
    )
    outer = TypeError("<class 'Functional'> could not be deserialized properly. " + "x" * 400)
    outer.__context__ = cause
    text = io_helpers.load_error_text(outer)
    assert text.startswith("Could not locate class 'MyScale' (module 'my_layers'): pass "
                           "--import MODULE")
    assert text.endswith("e.g. --import my_layers")
    assert len(io_helpers.load_error_text(ValueError("y" * 1000))) == 400


def test_import_modules_by_name_and_file(tmp_path, monkeypatch):
    (tmp_path / "kb_probe_mod.py").write_text("VALUE = 41\n")
    (tmp_path / "kb_probe_file.py").write_text("VALUE = 42\n")
    (tmp_path / "kb_broken.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    by_name, by_file = io_helpers.import_modules(
        ["kb_probe_mod", str(tmp_path / "kb_probe_file.py")])
    assert (by_name.VALUE, by_file.VALUE) == (41, 42)
    with pytest.raises(io_helpers.CLIError, match="--import kb_broken: cannot import it: "
                       "RuntimeError: boom"):
        io_helpers.import_modules(["kb_broken"])
    with pytest.raises(io_helpers.CLIError, match="--import nope.py: no such file"):
        io_helpers.import_modules(["nope.py"])


def test_layers_regex_errors_name_the_option():
    from keras_basis.cli import compress

    assert compress.layers_argument(["c1", "c2"]) == ["c1", "c2"]
    assert compress.layers_argument(["c[12]", "d"]) == "(?:c[12])|(?:d)"
    with pytest.raises(io_helpers.CLIError, match=r"--layers: 'c\[' is not a valid regular"):
        compress.layers_argument(["c["])


def test_import_flag_on_every_loading_command():
    assert _parse("compress", "a.keras", "b.keras", "--ratio", "0.5", "--import", "m1",
                  "--import", "m2.py").imports == ["m1", "m2.py"]
    assert _parse("export", "a.keras", "b.tflite").imports == []
    assert _parse("report", "a.keras", "--import", "x").imports == ["x"]


def test_disk_full_errors_name_the_target_not_the_temp():
    from keras_basis import fileio

    temp = f"/data/out/.model.tflite{fileio.TEMP_MARK}abcd1234-77-xyz.tflite"
    err = OSError(28, "No space left on device", temp)
    assert io_helpers.error_text(err) == "/data/out/model.tflite: No space left on device"
    err = OSError(28, "No space left on device", "/data/plain.keras")
    assert io_helpers.error_text(err) == "/data/plain.keras: No space left on device"


def test_objective_flags():
    """--objective/--latency-table of compress, --objective of demo (None: the library's)."""
    assert _parse("compress", "a.keras", "b.keras", "--ratio", "0.5").objective is None
    args = _parse("compress", "a.keras", "b.keras", "--ratio", "0.5", "--objective", "latency",
                  "--latency-table", "t.json")
    assert (args.objective, args.latency_table) == ("latency", "t.json")
    assert args.latency_modes is None
    args = _parse("compress", "a.keras", "b.keras", "--ratio", "0.5", "--objective", "latency",
                  "--latency-modes", "float32:1, int8:4")
    assert args.latency_modes == (("float32", 1), ("int8", 4))
    for bad in ("int4:1", "int8:0", "int8", "float32:x", ","):
        with pytest.raises(SystemExit):
            _parse("compress", "a.keras", "b.keras", "--ratio", "0.5", "--latency-modes", bad)
    assert _parse("export", "a.keras", "b.tflite", "--fold", "auto", "--latency-table",
                  "t.json").latency_table == "t.json"
    from keras_basis.cli.demo import config_from_args

    assert config_from_args(_parse("demo")).objective is None
    assert config_from_args(_parse("demo", "--quick", "--objective", "params")).objective == (
        "params")
