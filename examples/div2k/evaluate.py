"""Evaluate a super-resolution model (or bicubic) the paper's way; per-image CSVs.

Benchmark sets: Y channel (BT.601), shave = scale. DIV2K validation: RGB, shave =
scale + 6. Output quantised to 0-255, HR cropped to LR x scale (metrics.py).

Usage (from the repository root):

    python -m examples.div2k.evaluate /tmp/run/model.keras --scale 4 \\
        --benchmark-dir ../shared/data/sr-benchmarks --sets Set5,Set14 \\
        --output-dir /tmp/run/eval
    python -m examples.div2k.evaluate bicubic --scale 4 --benchmark-dir ... --sets Set5
    python -m examples.div2k.evaluate model.keras --div2k-dir /data/DIV2K --scale 4
"""

from __future__ import annotations

import argparse
import csv
import io
import pathlib

import numpy as np

from examples.div2k import data as D
from examples.div2k import metrics as M
from keras_basis import fileio

__all__ = ["evaluate_pairs", "super_resolve", "write_summary", "main"]


def _write_text(path, text):
    """Writes ``text`` to ``path`` atomically (keras_basis.fileio), creating its folder."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return fileio.write_text(path, text)


def _csv_text(header, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def super_resolve(model, lr):
    """Runs ``model`` on one uint8 LR image; returns the raw float output (H*s, W*s, 3).

    Args:
        model: a Keras model (0-255 in and out) or any callable taking an
            ``(H, W, 3)`` uint8 array and returning the SR image.
        lr: ``(H, W, 3)`` uint8.
    """
    import keras

    if isinstance(model, keras.Model):
        x = np.asarray(lr, dtype=np.float32)[None]
        return keras.ops.convert_to_numpy(model(x, training=False))[0]
    return np.asarray(model(lr), dtype=np.float64)


def _centre_crop(hr, lr, size, scale):
    h, w = lr.shape[:2]
    if h <= size and w <= size:
        return hr, lr
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    lr = lr[y : y + size, x : x + size]
    hr = hr[y * scale : (y + lr.shape[0]) * scale, x * scale : (x + lr.shape[1]) * scale]
    return hr, lr


def evaluate_pairs(model, pairs, scale, protocol="benchmark", csv_path=None, max_lr_size=None):
    """PSNR/SSIM of ``model`` on every pair, optionally written to a per-image CSV.

    Args:
        model: Keras model or callable (see :func:`super_resolve`); the string
            ``"bicubic"`` evaluates bicubic upsampling of the LR image.
        pairs: list of :class:`examples.div2k.data.SRPair`.
        scale: 2, 3 or 4.
        protocol: ``"benchmark"`` (Y, shave = scale) or ``"div2k"`` (RGB, shave =
            scale + 6).
        csv_path: where to write ``image,psnr,ssim`` rows (atomically).
        max_lr_size: centre-crop LR images to at most this side (quick checks only;
            the numbers are then not the benchmark's).

    Returns:
        dict with ``psnr`` and ``ssim`` (means), ``n`` and ``rows``.

    Example:

    >>> evaluate_pairs(model, benchmark_pairs(root, "Set5", 4), 4, csv_path="set5.csv")
    """
    if isinstance(model, str):
        if model != "bicubic":
            raise ValueError(
                f"Invalid value for argument `model`. Expected a model, a callable or "
                f"'bicubic'. Received model={model!r}."
            )

        def model(lr):
            return D.upscale(lr, scale)

    rows = []
    for pair in pairs:
        hr, lr = D.load_pair(pair, scale)
        if max_lr_size:
            hr, lr = _centre_crop(hr, lr, max_lr_size, scale)
        sr = super_resolve(model, lr)
        p, s = M.sr_metrics(sr, hr, scale, protocol)
        rows.append((pair.name, p, s))
    if csv_path is not None:
        _write_text(
            csv_path,
            _csv_text(["image", "psnr", "ssim"], [(n, f"{p:.4f}", f"{s:.6f}") for n, p, s in rows]),
        )
    return {
        "psnr": float(np.mean([r[1] for r in rows])),
        "ssim": float(np.mean([r[2] for r in rows])),
        "n": len(rows),
        "rows": rows,
    }


def write_summary(path, results):
    """Writes ``set,scale,protocol,n,psnr,ssim`` rows (one per evaluated set)."""
    rows = [
        (r["set"], r["scale"], r["protocol"], r["n"], f"{r['psnr']:.4f}", f"{r['ssim']:.6f}")
        for r in results
    ]
    _write_text(path, _csv_text(["set", "scale", "protocol", "n", "psnr", "ssim"], rows))


def eval_sets(scale, benchmark_dir=None, sets=(), div2k_dir=None, valid_limit=None):
    """``[(set_name, pairs, protocol)]`` for the benchmark sets and DIV2K validation."""
    out = [(name, D.benchmark_pairs(benchmark_dir, name, scale), "benchmark") for name in sets]
    if div2k_dir:
        out.append(("DIV2K", D.div2k_pairs(div2k_dir, scale, "valid", valid_limit), "div2k"))
    return out


def evaluate_all(model, scale, sets, output_dir=None, max_lr_size=None, log=print):
    """Evaluates on every ``(name, pairs, protocol)``; writes CSVs under ``output_dir``."""
    results = []
    for name, pairs, protocol in sets:
        csv_path = None if output_dir is None else pathlib.Path(output_dir) / f"{name}_x{scale}.csv"
        r = evaluate_pairs(model, pairs, scale, protocol, csv_path, max_lr_size)
        r.update(set=name, scale=scale, protocol=protocol)
        results.append(r)
        log(f"{name} x{scale}: PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}  ({r['n']} images)")
    if output_dir is not None and results:
        write_summary(pathlib.Path(output_dir) / "eval_summary.csv", results)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="PSNR/SSIM of an SR model (.keras) or of bicubic, the paper's protocol.",
        epilog="Example: python -m examples.div2k.evaluate run/model.keras --scale 4 "
        "--benchmark-dir ../shared/data/sr-benchmarks --sets Set5,Set14 --output-dir run/eval",
    )
    parser.add_argument("model", help="a .keras file, or 'bicubic'")
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    parser.add_argument("--benchmark-dir", help="folder with benchmark/<Set> or <Set>/X<s>")
    parser.add_argument("--sets", default="Set5,Set14", help="comma-separated set names")
    parser.add_argument("--div2k-dir", help="DIV2K root: also evaluate DIV2K_valid (RGB)")
    parser.add_argument("--valid-limit", type=int, help="first N DIV2K validation images")
    parser.add_argument("--output-dir", help="per-image CSVs and eval_summary.csv")
    args = parser.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s] if args.benchmark_dir else []
    if not sets and not args.div2k_dir:
        parser.error("give --benchmark-dir (with --sets) and/or --div2k-dir")
    if args.model == "bicubic":
        model = "bicubic"
    else:
        import keras

        import examples.div2k.models  # noqa: F401  (registers the custom layers)
        import keras_basis  # noqa: F401  (registers BasisConv2D)

        model = keras.models.load_model(args.model, compile=False)
    evaluate_all(
        model,
        args.scale,
        eval_sets(args.scale, args.benchmark_dir, sets, args.div2k_dir, args.valid_limit),
        args.output_dir,
    )


if __name__ == "__main__":
    main()
