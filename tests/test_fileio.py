"""keras_basis.fileio: the one atomic writer."""

import os
import stat
import time

import pytest

from keras_basis import fileio


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_text_and_bytes(tmp_path):
    fileio.write_text(tmp_path / "a.txt", "héllo\n")
    fileio.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _names(tmp_path) == ["a.txt", "b.bin"]


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fileio.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_writer_sees_target_suffix(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        with open(tmp, "w") as f:
            f.write("model")

    fileio.atomic_write(tmp_path / "m.keras", write)
    assert seen[0].endswith(".keras") and seen[0] != str(tmp_path / "m.keras")
    assert os.path.dirname(seen[0]) == str(tmp_path)
    assert (tmp_path / "m.keras").read_text() == "model"


def test_failed_write_keeps_target_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.keras"
    target.write_text("old")

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fileio.atomic_write(target, write)
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["m.keras"]


def test_keyboard_interrupt_cleans_up(tmp_path):
    def write(tmp):
        open(tmp, "w").close()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(tmp_path / "x.txt", write)
    assert _names(tmp_path) == []


def test_oserror_names_the_target(tmp_path):
    def write(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=r"No space left on device \(writing .*x\.bin\)"):
        fileio.atomic_write(tmp_path / "x.bin", write)


def test_stale_temps_are_cleaned_fresh_ones_kept(tmp_path):
    target = tmp_path / "m.tflite"
    stale = tmp_path / f".m.tflite{fileio.TEMP_MARK}abc.tflite"
    fresh = tmp_path / f".m.tflite{fileio.TEMP_MARK}def.tflite"
    other = tmp_path / f".n.tflite{fileio.TEMP_MARK}ghi.tflite"
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - 2 * fileio.STALE_AFTER_S
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    fileio.write_bytes(target, b"new")
    assert _names(tmp_path) == sorted([target.name, fresh.name, other.name])


def test_unique_temp_names(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        open(tmp, "w").close()

    for _ in range(3):
        fileio.atomic_write(tmp_path / "a.txt", write)
    assert len(set(seen)) == 3


def test_oserror_without_errno_keeps_its_message(tmp_path):
    def write(tmp):
        raise OSError("disk full")

    with pytest.raises(OSError, match=r"disk full \(writing .*x\.bin\)"):
        fileio.atomic_write(tmp_path / "x.bin", write)


WRITER = """
import os, signal, sys, time
from keras_basis import fileio

def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"partial")
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # as by kill -9, mid-write
    print("writing", flush=True)
    time.sleep(60)  # a live writer, still busy

fileio.atomic_write(sys.argv[1], write)
"""


def _temps(folder):
    return [p for p in _names(folder) if fileio.TEMP_MARK in p]


def test_temp_of_a_killed_writer_is_cleaned_at_once(tmp_path):
    import signal
    import subprocess
    import sys

    target = tmp_path / "m.tflite"
    done = subprocess.run([sys.executable, "-c", WRITER, str(target), "kill"])
    assert done.returncode == -signal.SIGKILL
    left = _temps(tmp_path)
    assert len(left) == 1  # fresh (seconds old): the age rule alone would keep it
    assert fileio.clean_stale_temps(target) == [tmp_path / left[0]]
    assert _names(tmp_path) == []


def test_temp_of_a_live_writer_is_kept(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "m.tflite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), "live"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        live = _temps(tmp_path)
        assert len(live) == 1
        foreign = tmp_path / f".m.tflite{fileio.TEMP_MARK}otherhost-1-xyz.tflite"
        foreign.write_bytes(b"another machine's writer")
        fileio.write_bytes(target, b"ours")
        assert sorted(_temps(tmp_path)) == sorted(live + [foreign.name])
        assert target.read_bytes() == b"ours"
    finally:
        proc.kill()
        proc.wait()
