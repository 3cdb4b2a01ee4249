#!/usr/bin/env python3
"""Convert a .keras model (basis layers included) to a verified .tflite file.

Examples:

    # float32, verified against Keras on random inputs
    python tflite/convert.py small.keras /tmp/small.tflite

    # full-integer int8, calibrated on 200 images of a folder, normalised like
    # the model's training inputs ((pixel/255 - mean) / std, here CIFAR-10's)
    python tflite/convert.py small.keras /tmp/small_int8.tflite --quantize int8 \\
        --calibration-dir calib_images/ --scale 0.00392157 \\
        --mean 0.4914 0.4822 0.4465 --std 0.2470 0.2435 0.2616

    # fold back the basis pairs that are slower than their dense form here
    python tflite/convert.py small.keras /tmp/small_auto.tflite --fold auto

    # a fully convolutional SR network (unknown H, W) in the 0-255 range
    python tflite/convert.py edsr.keras /tmp/edsr.tflite --input-shape 128 128 3 --scale 1

Uses only the public API of keras_basis (export_tflite, keras_basis.tflite).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="convert.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", type=pathlib.Path, help="input .keras file")
    p.add_argument("output", type=pathlib.Path, help="output .tflite file")
    g = p.add_argument_group("conversion")
    g.add_argument("--quantize", choices=("none", "float16", "dynamic", "int8"), default="none",
                   help="weight/activation precision (default: none = float32)")
    g.add_argument("--int8-io", action="store_true",
                   help="with --quantize int8: int8 inputs and outputs too")
    g.add_argument("--fold", choices=("none", "all", "auto"), default="none",
                   help="fold basis pairs back into dense Conv2D: all, or auto = only where "
                        "the dense form is faster on this machine (default: none)")
    g.add_argument("--fold-threads", type=int, default=1,
                   help="threads used to time the pairs for --fold auto (default 1)")
    g.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                   help="input shape H W C when the model's is unknown (e.g. 128 128 3)")
    g.add_argument("--safe-mode", choices=("on", "off"), default="on",
                   help="Keras safe_mode for loading (off allows Lambda layers)")
    c = p.add_argument_group("calibration / verification images")
    c.add_argument("--calibration-dir", type=pathlib.Path,
                   help="folder of images (resized to the input size) for int8 calibration "
                        "and for the verification")
    c.add_argument("--calibration-count", type=int, default=200,
                   help="at most this many images are used (default 200)")
    c.add_argument("--scale", type=float, default=1 / 255,
                   help="pixel multiplier before mean/std (default 1/255; 1 for 0-255 models)")
    c.add_argument("--mean", type=float, nargs="+", default=[0.0],
                   help="per-channel mean subtracted after --scale (default 0)")
    c.add_argument("--std", type=float, nargs="+", default=[1.0],
                   help="per-channel std divided after the mean (default 1)")
    c.add_argument("--verify-count", type=int, default=8,
                   help="inputs compared with Keras after export (default 8; 0 skips)")
    args = p.parse_args(argv)
    if args.quantize == "int8" and args.calibration_dir is None:
        p.error("--quantize int8 needs --calibration-dir (a folder of images like the inputs)")
    if args.int8_io and args.quantize != "int8":
        p.error("--int8-io needs --quantize int8")
    if args.input_shape is not None and len(args.input_shape) != 3:
        p.error(f"--input-shape expects H W C; received {args.input_shape}")
    return args


def load_images(folder, height, width, channels, count, scale, mean, std):
    """Images of ``folder`` (sorted names) as float32 ``(N, H, W, C)``."""
    import numpy as np

    try:
        from PIL import Image
    except ImportError:
        sys.exit("convert.py: reading --calibration-dir needs Pillow: pip install pillow")
    if not folder.is_dir():
        sys.exit(f"convert.py: --calibration-dir {folder} is not a folder")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not files:
        sys.exit(f"convert.py: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if channels not in (1, 3):
        sys.exit(f"convert.py: images need a 1- or 3-channel input; the model has {channels}")
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), height, width, channels), np.float32)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert(mode).resize((width, height), Image.BILINEAR)
            out[i] = np.asarray(im, np.float32).reshape(height, width, channels)
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    for name, v in (("--mean", mean), ("--std", std)):
        if v.size not in (1, channels):
            sys.exit(f"convert.py: {name} needs 1 or {channels} values; received {v.size}")
    return (out * scale - mean) / std


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import keras_basis
    from keras_basis import tflite

    if not args.model.is_file():
        sys.exit(f"convert.py: {args.model} is not a file")
    model = keras.saving.load_model(args.model, safe_mode=args.safe_mode == "on")
    shape = tuple(model.inputs[0].shape[1:])
    if args.input_shape:
        shape = tuple(args.input_shape)
    if None in shape:
        sys.exit(f"convert.py: the model's input shape is {shape}; pass --input-shape H W C")
    height, width, channels = shape

    images = None
    if args.calibration_dir is not None:
        images = load_images(args.calibration_dir, height, width, channels,
                             args.calibration_count, args.scale, args.mean, args.std)
        print(f"calibration: {len(images)} images from {args.calibration_dir}, "
              f"range [{images.min():.3g}, {images.max():.3g}]")

    quantize = None if args.quantize == "none" else args.quantize
    fold = {"none": False, "all": True}.get(args.fold)
    if args.fold == "auto":
        plan = tflite.fold_plan(model, quantize=quantize, threads=args.fold_threads,
                                input_shape=shape)
        print(f"fold plan ({args.fold_threads} thread(s), batch 1):")
        for row in plan:
            print(f"  {row['coefficients']:<32} {str(row['input_shape']):<20} "
                  f"basis {row['basis_ms']:8.3f} ms  dense {row['dense_ms']:8.3f} ms  "
                  f"MACs {row['basis_macs'] / row['dense_macs']:.2f}x  "
                  f"-> {'fold' if row['fold'] else 'keep'}")
        fold = [row["coefficients"] for row in plan if row["fold"]]

    path = keras_basis.export_tflite(
        model, args.output, quantize=quantize, representative_dataset=images,
        int8_io=args.int8_io, fold=fold, input_shape=shape,
        calibration_steps=args.calibration_count,
    )
    hist = tflite.op_histogram(path)
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {model.count_params():,} Keras params)")
    print("ops: " + ", ".join(f"{k} x{v}" for k, v in hist.items()))
    if args.verify_count > 0:
        if images is not None:
            probe, what = images[: args.verify_count], "calibration images"
        else:
            rng = np.random.default_rng(0)
            probe = rng.standard_normal((args.verify_count,) + shape).astype(np.float32)
            what = "random N(0,1) inputs"
        err = tflite.compare_with_keras(model, path, probe)
        extra = (f", top-1 agreement {err['top1_agreement']:.3f}"
                 if "top1_agreement" in err else "")
        print(f"verified on {len(probe)} {what}: max abs error {err['max_abs_error']:.3g}, "
              f"max relative error {err['max_rel_error']:.3g}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
