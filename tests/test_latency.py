"""keras_basis.latency and ``keras-basis profile``: geometry keys, forms, the table file,
interleaved measurement, the one-layer files and the phone route. No timing assertions:
timings are only checked to be positive and finite.
"""

import json
import math
import os
import re

import numpy as np
import pytest

from keras_basis import latency, maths
from keras_basis.cli import profile as profile_command
from keras_basis.latency import LatencyTable, LayerGeometry, pair_form, parse_form

FAST = {"runs": 2, "warmup": 0}


# ------------------------------------------------------------------ geometry
def test_geometry_key_is_stable_and_of_layer_reads_a_conv2d():
    import keras

    assert LayerGeometry(32, 32, 64, 64, 3).key() == "h32w32_c64_n64_k3x3_s1x1_same_d1x1_b1"
    g = LayerGeometry(17, 9, 3, 8, (3, 1), strides=(2, 1), padding="VALID", use_bias=False)
    assert g.key() == "h17w9_c3_n8_k3x1_s2x1_valid_d1x1_b0"
    assert (g.kernel_size, g.strides, g.dilation_rate, g.padding) == ((3, 1), (2, 1), (1, 1),
                                                                      "valid")
    conv = keras.layers.Conv2D(8, (3, 1), strides=(2, 1), padding="valid", use_bias=False)
    conv(keras.Input((17, 9, 3)))
    assert LayerGeometry.of_layer(conv, (None, 17, 9, 3)) == g
    assert LayerGeometry.of_layer(conv, (17, 9, 3)) == g
    dilated = keras.layers.Conv2D(5, 3, padding="same", dilation_rate=2)
    assert LayerGeometry.of_layer(dilated, (1, 10, 12, 4)).key() == (
        "h10w12_c4_n5_k3x3_s1x1_same_d2x2_b1")
    # JSON round trip, hashable (a dict key), and the output size and MACs of maths.
    assert LayerGeometry.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert len({g, LayerGeometry.from_dict(g.to_dict())}) == 1
    assert g.output_size == ((17 - 3) // 2 + 1, 9)
    assert g.macs() == maths.conv_macs(3, 8, 3, 1, 8, 9)
    assert g.macs("pair:s=3,m=2") == maths.basis_macs(3, 8, 3, 1, 3, 2, 8, 9)


@pytest.mark.parametrize("fields, message", [
    ({"c": 0}, "`c` of LayerGeometry. Expected a positive int. Received c=0"),
    ({"height": 2.5}, "Received height=2.5"),
    ({"padding": "full"}, "Expected 'same' or 'valid'. Received padding='full'"),
    ({"kernel_size": (3, 0)}, "Received kernel_size=0"),
    ({"strides": (1, 2, 3)}, "a pair of positive ints. Received strides=(1, 2, 3)"),
    ({"use_bias": "yes"}, "Received use_bias='yes'"),
    ({"padding": "valid", "kernel_size": 9}, "kernel's extent"),
])
def test_bad_geometry_names_the_field(fields, message):
    args = dict(height=8, width=8, c=4, n=4, kernel_size=3)
    with pytest.raises(ValueError, match=re.escape(message)):
        LayerGeometry(**dict(args, **fields))


def test_of_layer_needs_a_known_input_size():
    import keras

    conv = keras.layers.Conv2D(4, 3, name="conv_x")
    with pytest.raises(ValueError, match=r"`input_shape` of layer 'conv_x'.*None"):
        LayerGeometry.of_layer(conv, (None, None, None, 3))


# --------------------------------------------------------------------- forms
@pytest.mark.parametrize("form, parsed", [
    ("dense", {"kind": "dense"}),
    ("pair:s=1,m=16", {"kind": "pair", "s": 1, "m": 16, "dilated": False}),
    ("pair:s=2,m=8,dilated", {"kind": "pair", "s": 2, "m": 8, "dilated": True}),
])
def test_form_text_round_trip(form, parsed):
    assert parse_form(form) == parsed
    if parsed["kind"] == "pair":
        assert pair_form(parsed["s"], parsed["m"], parsed["dilated"]) == form


@pytest.mark.parametrize("form", [
    "Dense", "pair:s=0,m=4", "pair:s=2,m=0", "pair:s=1,m=4,dilated", "pair:m=4,s=2",
    "pair:s=2", "pair:s=2,m=4,batch", "", None, 3,
])
def test_bad_form_is_a_value_error(form):
    with pytest.raises(ValueError, match=re.escape(f"Received form={form!r}")):
        parse_form(form)


def test_pair_form_checks_its_arguments():
    with pytest.raises(ValueError, match="Received s=0"):
        pair_form(0, 4)
    with pytest.raises(ValueError, match="Received dilated=True"):
        pair_form(1, 4, dilated=True)


def _break_even(c, n, k, s):
    """Largest m whose pair has fewer MACs than the dense conv, from the MAC formulas."""
    return max(m for m in range(1, c * n) if m * c * k * k + s * m * n < c * n * k * k)


def test_candidate_forms_are_the_aligned_pairs_below_the_dense_macs():
    g = LayerGeometry(32, 32, 64, 64, 3)
    s_opt = maths.optimal_splits(64, 64, 3, 3)
    assert s_opt == 4
    expected = ["dense"]
    for s in (1, s_opt):
        for m in range(16, _break_even(64, 64, 3, s) + 1, 16):
            expected += [pair_form(s, m)] + ([pair_form(s, m, True)] if s > 1 else [])
    assert latency.candidate_forms(g) == expected
    assert expected[1:4] == ["pair:s=1,m=16", "pair:s=1,m=32", "pair:s=1,m=48"]
    # narrow layers step by 8; a width stride of 2 has no dilated form
    narrow = latency.candidate_forms(LayerGeometry(16, 16, 16, 32, 3, strides=2))
    assert narrow[0] == "dense" and not any("dilated" in f for f in narrow)
    assert all(parse_form(f)["m"] % 8 == 0 for f in narrow[1:])
    # a layer too small for any multiple of 8 below its MACs: dense only
    assert latency.candidate_forms(LayerGeometry(8, 8, 3, 8, 3)) == ["dense"]


# --------------------------------------------------------------------- table
def _table():
    t = LatencyTable(meta={"machine": "test", "runtime": "tflite-xnnpack", "tool": "by hand",
                           "date": "2026-12-01"})
    g1, g2 = LayerGeometry(32, 32, 64, 64, 3), LayerGeometry(16, 16, 3, 8, 1, use_bias=False)
    t.set(g1, "dense", "float32", 1, 1.25)
    t.set(g1, "pair:s=4,m=16,dilated", "int8", 2, 0.5, p90_ms=0.6)
    t.set(g2, "dense", "int8", 1, 0.01)
    return t, g1, g2


def test_table_save_load_round_trip(tmp_path):
    t, g1, g2 = _table()
    path = tmp_path / "table.json"
    t.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == latency.FORMAT == "keras-basis/latency-table/1"
    assert data["meta"]["machine"] == "test"
    assert {e["key"] for e in data["entries"]} == {g1.key(), g2.key()}
    back = LatencyTable.load(path)
    assert back.entries == t.entries and back.meta == t.meta and len(back) == 3
    assert back.get(g1, "dense") == 1.25
    # the modes with a dense timing (the pair's int8 / 2 threads has none)
    assert back.modes == t.modes == (("float32", 1), ("int8", 1))
    assert LatencyTable().modes == ()
    assert back.get(g1.key(), "pair:s=4,m=16,dilated", "int8", 2) == 0.5
    assert back.entries[[e["form"] for e in back.entries].index(
        "pair:s=4,m=16,dilated")]["p90_ms"] == 0.6
    assert back.get(g1, "dense", "int8") is None and back.get(g2, "dense", "float32") is None
    # a hand-written entry may leave out the key
    entry = {k: v for k, v in t.entries[0].items() if k != "key"}
    assert LatencyTable([entry]).entries[0]["key"] == t.entries[0]["key"]


def test_table_save_is_atomic(tmp_path, monkeypatch):
    from keras_basis import fileio

    t, g1, _ = _table()
    path = tmp_path / "table.json"
    t.save(path)
    before = path.read_bytes()
    t.set(g1, "dense", "float32", 4, 9.0)

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError, match="table.json"):
        t.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["table.json"]


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "Received format 'list'"),
    ('{"format": "other/1", "entries": []}', "Received format 'other/1'"),
    ('{"format": "keras-basis/latency-table/1"}', "\"entries\" (a list)"),
    ("ENTRY ms NaN", "entry 0: Invalid value for argument `ms`"),
    ("ENTRY ms -0.5", "Received ms=-0.5"),
    ("ENTRY ms \"fast\"", "Received ms='fast'"),
    ("ENTRY quantize \"float16\"", "Received quantize='float16'"),
    ("ENTRY threads 0", "Received threads=0"),
    ("ENTRY form \"pair:s=2\"", "Received form='pair:s=2'"),
    ("ENTRY key \"h1w1\"", "Received key='h1w1'"),
    ("ENTRY ms DELETE", "a dict with the fields"),
])
def test_bad_table_file_is_a_value_error_naming_the_path(tmp_path, text, message):
    path = tmp_path / "bad.json"
    if text.startswith("ENTRY"):
        _, field, value = text.split(" ", 2)
        t, _, _ = _table()
        entry = t.entries[0]
        if value == "DELETE":
            del entry[field]
        else:
            entry[field] = "__VALUE__"
        body = json.dumps({"format": latency.FORMAT, "meta": {}, "entries": [entry]})
        text = body.replace('"__VALUE__"', value)
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        LatencyTable.load(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_set_and_get_check_their_arguments():
    t, g1, _ = _table()
    with pytest.raises(ValueError, match="Received ms=nan"):
        t.set(g1, "dense", "float32", 1, math.nan)
    with pytest.raises(ValueError, match="Received quantize='dynamic'"):
        t.get(g1, "dense", "dynamic")
    with pytest.raises(TypeError, match="Expected a LayerGeometry"):
        t.set(g1.key(), "dense", "float32", 1, 1.0)


# --------------------------------------------------------------- measurement
def _count_conversions(monkeypatch):
    calls = []
    real = latency.convert_form

    def counted(geometry, form, quantize="float32"):
        calls.append((geometry.key(), form, quantize))
        return real(geometry, form, quantize)

    monkeypatch.setattr(latency, "convert_form", counted)
    return calls


def test_measure_times_only_the_missing_forms(monkeypatch):
    calls = _count_conversions(monkeypatch)
    g = LayerGeometry(8, 8, 8, 8, 3)
    t = LatencyTable()
    first = t.measure(g, ["dense", "pair:s=1,m=4"], "float32", **FAST)
    assert len(calls) == 2 and set(first) == {"dense", "pair:s=1,m=4"}
    assert all(ms > 0 and math.isfinite(ms) for ms in first.values())
    again = t.measure(g, ["pair:s=1,m=4", "dense", "pair:s=2,m=4,dilated"], "float32", **FAST)
    assert len(calls) == 3 and calls[-1][1] == "pair:s=2,m=4,dilated"
    assert again["dense"] == first["dense"] and again["pair:s=1,m=4"] == first["pair:s=1,m=4"]
    # two thread counts: a form missing in either is converted once and timed where missing
    both = t.measure_threads(g, ["dense", "pair:s=2,m=4"], "float32", (1, 2), **FAST)
    assert [c[1] for c in calls[3:]] == ["dense", "pair:s=2,m=4"]
    assert both[1]["dense"] == first["dense"] and both[2]["dense"] > 0
    assert len(t) == 3 + 3
    with pytest.raises(ValueError, match="s dividing c=8"):
        t.measure(g, ["pair:s=3,m=4"])


def test_profile_model_times_dense_and_pairs_in_both_modes():
    import keras

    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", name="c1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="c2")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="c3")(x)  # same geometry as c2
    model = keras.Model(inputs, x)
    table = latency.profile_model(model, **FAST)
    g2 = LayerGeometry(8, 8, 16, 16, 3)
    forms = latency.candidate_forms(g2)
    assert forms == ["dense", "pair:s=1,m=8", "pair:s=4,m=8", "pair:s=4,m=8,dilated"]
    keys = {(e["key"], e["form"], e["quantize"]) for e in table.entries}
    expected = {(g2.key(), f, q) for f in forms for q in ("float32", "int8")}
    g1 = LayerGeometry(8, 8, 3, 16, 3)
    assert latency.candidate_forms(g1) == ["dense", "pair:s=1,m=8"]  # 8 * (27 + 16) < 432
    expected |= {(g1.key(), f, q) for f in ("dense", "pair:s=1,m=8") for q in ("float32", "int8")}
    assert keys == expected and len(table) == 2 * len(expected)  # 1 and 2 threads
    assert all(e["ms"] > 0 for e in table.entries)
    assert table.modes == (("float32", 1), ("float32", 2), ("int8", 1), ("int8", 2))


def test_layer_geometries_of_a_compressed_model_name_the_current_forms():
    import keras

    import keras_basis

    x = inputs = keras.Input((None, None, 16))
    x = keras.layers.Conv2D(16, 3, padding="same", name="a")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", name="b")(x)
    model = keras.Model(inputs, x)
    small = keras_basis.compress(model, num_basis=8, splits=4, layers=["a"], verbose=0)
    with pytest.raises(ValueError, match="input_shape"):
        latency.layer_geometries(small)
    sites = latency.layer_geometries(small, input_shape=(12, 10, 16))
    assert [(s.layer, s.geometry, s.form) for s in sites] == [
        ("b", LayerGeometry(12, 10, 16, 32, 3, strides=2), "dense"),
        ("a", LayerGeometry(12, 10, 16, 16, 3), "pair:s=4,m=8"),
    ]


# ------------------------------------------------------------- phone route
def test_emitted_one_layer_files_compute_the_keras_models(tmp_path):
    import keras

    from keras_basis import tflite

    x = inputs = keras.Input((6, 7, 8))
    model = keras.Model(inputs, keras.layers.Conv2D(12, 3, padding="same", name="c")(x))
    forms = ["pair:s=2,m=8", "pair:s=2,m=8,dilated"]
    entries = profile_command.emit_models(model, tmp_path, quantize=("float32",),
                                          forms=lambda g: forms)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"] == entries
    assert [e["form"] for e in entries] == ["dense"] + forms
    g = LayerGeometry(6, 7, 8, 12, 3)
    assert entries[2]["file"] == f"{g.key()}__pair-s2-m8-dilated__float32.tflite"
    data = np.random.default_rng(1).standard_normal((3, 6, 7, 8)).astype(np.float32)
    for entry in entries:
        geometry = LayerGeometry.from_dict(entry["geometry"])
        one = latency.one_layer_model(geometry, entry["form"])
        err = tflite.compare_with_keras(one, tmp_path / entry["file"], data)
        assert err["max_rel_error"] < 1e-5, (entry["form"], err)
    # the pair's file holds the one-layer pair (the dilated form: no TRANSPOSE)
    ops = tflite.op_histogram(tmp_path / entries[2]["file"])
    assert ops.get("CONV_2D") == 2 and "TRANSPOSE" not in ops


BENCHMARK_LOG = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/m.tflite]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/m.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.148824
INFO: Initialized session in 3.42ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if \
exceeding 150 seconds.
INFO: count=412 first=1562 curr=1187 min=1102 max=1562 avg=1213.5 std=41
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if \
exceeding 150 seconds.
INFO: count=842 first=1190 curr=1150 min=1093 max=1402 avg=1187.25 std=33
INFO: Inference timings in us: Init: 3420, First inference: 1562, Warmup (avg): 1213.5, \
Inference (avg): 1187.25
INFO: Memory footprint delta from the start of the tool (MB): init=2.5 overall=3.1
"""


def test_benchmark_model_logs_are_parsed():
    assert profile_command.parse_benchmark_log(BENCHMARK_LOG) == (pytest.approx(1.18725), 4)
    older = "\n".join(ln for ln in BENCHMARK_LOG.splitlines()
                      if "Inference timings" not in ln and "Num threads" not in ln)
    assert profile_command.parse_benchmark_log(older) == (pytest.approx(1.18725), None)
    assert profile_command.parse_benchmark_log("ERROR: Could not open model") == (None, None)


def test_table_from_logs_reads_the_manifest_files_logs(tmp_path):
    g = LayerGeometry(32, 32, 64, 64, 3)
    files = {(form, q): profile_command.file_stem(g, form, q) + ".tflite"
             for form in ("dense", "pair:s=4,m=16,dilated") for q in ("float32", "int8")}
    manifest = {"format": profile_command.MANIFEST_FORMAT, "meta": {"machine": "phone"},
                "models": [{"file": f, "geometry": g.to_dict(), "key": g.key(), "form": form,
                            "quantize": q} for (form, q), f in files.items()]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    logs = tmp_path / "logs"
    logs.mkdir()
    stem = files["dense", "float32"][:-len(".tflite")]
    (logs / f"{stem}.log").write_text(BENCHMARK_LOG)  # Num threads: [4] in the log
    one_thread = BENCHMARK_LOG.replace("Num threads: [4]", "").replace("1187.25", "2000")
    stem = files["pair:s=4,m=16,dilated", "int8"][:-len(".tflite")]
    (logs / f"{stem}.t1.log").write_text(one_thread)
    (logs / f"{stem}.t2.log").write_text("benchmark_model crashed")
    table, missing = profile_command.table_from_logs(tmp_path / "manifest.json", logs)
    assert table.get(g, "dense", "float32", 4) == pytest.approx(1.18725)
    assert table.get(g, "pair:s=4,m=16,dilated", "int8", 1) == pytest.approx(2.0)
    assert len(table) == 2 and table.meta["tool"] == "benchmark_model"
    assert sorted(missing) == sorted([files["dense", "int8"],
                                      files["pair:s=4,m=16,dilated", "float32"]])


# ----------------------------------------------------------------------- CLI
@pytest.fixture
def tiny_keras(tmp_path):
    import keras

    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", name="first")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="second")(x)
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, x).save(path)
    return path


def test_cli_profile_end_to_end(tiny_keras, tmp_path, capsys):
    from keras_basis import cli

    out = tmp_path / "table.json"
    argv = ["profile", str(tiny_keras), "--quantize", "float32", "--runs", "2",
            "--warmup", "0", "--threads", "1"]
    assert cli.main(argv + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^first\s+8x8 3->16 k3x3\s+float32\s+1\s+\d", printed, re.M), printed
    assert re.search(r"^second\s+8x8 16->16 k3x3\s+float32\s+1\s+[\d.]+\s+pair:s=", printed,
                     re.M), printed
    table = LatencyTable.load(out)
    assert len(table) == 2 + 4 and table.meta["tool"] == "keras-basis profile"
    # extending: nothing new to time for float32; int8 adds its entries to the new file
    more = tmp_path / "more.json"
    assert cli.main(argv + ["--table", str(out), "--out", str(more)]) == 0
    assert "0 form(s) timed, 6 from" in capsys.readouterr().out
    assert cli.main(argv[:3] + ["int8", "--runs", "2", "--warmup", "0", "--threads", "1",
                                "--table", str(out), "--out", str(more)]) == 0
    assert len(LatencyTable.load(more)) == 12 and len(LatencyTable.load(out)) == 6


def test_cli_profile_phone_route(tiny_keras, tmp_path, capsys):
    from keras_basis import cli

    models = tmp_path / "phone"
    assert cli.main(["profile", "--emit-models", str(models), str(tiny_keras), "--quantize",
                     "int8"]) == 0
    manifest = json.loads((models / "manifest.json").read_text())
    files = sorted(p.name for p in models.glob("*.tflite"))
    assert files == sorted(e["file"] for e in manifest["models"]) and len(files) == 6
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in files[:3]:
        (logs / name.replace(".tflite", ".log")).write_text(BENCHMARK_LOG)
    out = tmp_path / "phone.json"
    assert cli.main(["profile", "--from-logs", str(logs), "--manifest",
                     str(models / "manifest.json"), "--out", str(out)]) == 0
    assert "3 file(s) without a log" in capsys.readouterr().out
    table = LatencyTable.load(out)
    assert len(table) == 3 and all(e["threads"] == 4 for e in table.entries)


@pytest.mark.parametrize("argv, status, message", [
    (["profile"], 1, "expected MODEL.keras"),
    (["profile", "missing.keras"], 1, "missing.keras: no such file"),
    (["profile", "--from-logs", "logs"], 1, "--from-logs needs --manifest"),
    (["profile", "TINY", "--manifest", "m.json"], 1, "--manifest goes with --from-logs"),
    (["profile", "TINY", "--out", "t.txt"], 1, "--out must end with .json"),
    (["profile", "TINY", "--table", "missing.json"], 1, "missing.json: no such file"),
    (["profile", "TINY", "--table", "TINY"], 1, "not a latency table: not JSON"),
    (["profile", "GAP"], 3, "no compressible Conv2D"),
])
def test_cli_profile_errors(tiny_keras, tmp_path, capsys, monkeypatch, argv, status, message):
    import keras

    from keras_basis import cli

    monkeypatch.chdir(tmp_path)
    gap = tmp_path / "gap.keras"
    keras.Sequential([keras.Input((4, 4, 3)), keras.layers.GlobalAveragePooling2D()]).save(gap)
    argv = [{"TINY": str(tiny_keras), "GAP": str(gap)}.get(a, a) for a in argv]
    assert cli.main(argv) == status
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_cli_profile_usage_errors_exit_2(capsys):
    from keras_basis import cli

    for argv in (["profile", "m.keras", "--quantize", "float16"],
                 ["profile", "m.keras", "--input-shape", "8,8"],
                 ["profile", "m.keras", "--threads", "0"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "keras-basis profile: error:" in capsys.readouterr().err


# ------------------------------------------------------------ interleaved timing
def test_time_interleaved_samples_and_bad_arguments():
    """One dict per file, in order; a file faster than min_sample_ms is invoked several
    times per sample (reps > 1), never with min_sample_ms=0; bad arguments are named."""
    small = latency.convert_form(LayerGeometry(8, 8, 4, 4, 3), "dense")
    big = latency.convert_form(LayerGeometry(32, 32, 16, 16, 3), "dense")
    single = latency.time_interleaved([small, big], runs=3, warmup=1, min_sample_ms=0)
    assert [r["reps"] for r in single] == [1, 1]
    for r in single:
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
    sampled = latency.time_interleaved([small, big], runs=3, warmup=2, min_sample_ms=20)
    assert sampled[0]["reps"] > 1 and sampled[0]["reps"] >= sampled[1]["reps"]
    for kwargs, name in ((dict(threads=1.5), "threads"), (dict(threads=0), "threads"),
                         (dict(threads=True), "threads"), (dict(runs=0), "runs"),
                         (dict(warmup=-1), "warmup"), (dict(min_sample_ms=-1), "min_sample_ms")):
        with pytest.raises(ValueError, match=rf"argument `{name}`.*Received {name}="):
            latency.time_interleaved([small], **kwargs)


def test_paired_ratios_are_the_median_of_same_round_ratios():
    """A burst that slows every file of some rounds drops out of the paired ratio;
    samples come back only when asked; bad results are named."""
    small = latency.convert_form(LayerGeometry(8, 8, 4, 4, 3), "dense")
    res = latency.time_interleaved([small, small], runs=4, warmup=1, samples=True)
    assert [len(r["samples_ms"]) for r in res] == [4, 4]
    assert res[0]["median_ms"] == pytest.approx(np.median(res[0]["samples_ms"]))
    assert "samples_ms" not in latency.time_interleaved([small], runs=2, warmup=1)[0]
    # hand-made samples: file 1 is 0.5x file 0 in every round; rounds 3-5 run 4x slower
    base = [1.0, 1.0, 1.1, 4.0, 4.2, 4.1]
    rows = [{"samples_ms": base}, {"samples_ms": [0.5 * b for b in base]},
            {"samples_ms": [0.9, 1.0, 1.0, 1.0, 1.0, 1.0]}]
    assert latency.paired_ratios(rows) == pytest.approx([1.0, 0.5, np.median(
        np.array(rows[2]["samples_ms"]) / np.array(base))])
    assert latency.paired_ratios(rows, reference=1)[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"argument `results`.*samples=True"):
        latency.paired_ratios([{"median_ms": 1.0}])
    with pytest.raises(ValueError, match=r"Received reference=5"):
        latency.paired_ratios(rows, reference=5)


def test_cli_compress_latency_modes(tiny_keras, tmp_path, capsys):
    """--latency-modes picks the modes of a table the budget bounds: here a table whose
    float32 pairs are slower than dense (unreachable) and int8 / 4 threads ones faster."""
    import keras

    import keras_basis
    from keras_basis import cli

    model = keras.models.load_model(tiny_keras)
    table = LatencyTable()
    for site in latency.layer_geometries(model):
        geo = site.geometry
        for form in latency.candidate_forms(geo):
            table.set(geo, form, "int8", 4, geo.macs(form) * 1e-6)
            table.set(geo, form, "float32", 1, 1.0 if form == "dense" else 3.0)
    path = tmp_path / "phone.json"
    table.save(path)
    out = tmp_path / "small.keras"
    argv = ["compress", str(tiny_keras), str(out), "--ratio", "0.9", "--objective", "latency",
            "--latency-table", str(path)]
    assert cli.main(argv) != 0  # the table's two modes: float32 cannot be reached
    err = capsys.readouterr().err
    assert "cannot reach ratio=0.9" in err and "(float32, 1 thread)" in err
    assert cli.main(argv + ["--latency-modes", "int8:4"]) == 0
    assert keras_basis.basis_pairs(keras.models.load_model(out))
    assert cli.main(["compress", str(tiny_keras), str(tmp_path / "x.keras"), "--ratio", "0.5",
                     "--latency-modes", "int8:1"]) != 0
    assert "--latency-modes needs --objective latency" in capsys.readouterr().err
