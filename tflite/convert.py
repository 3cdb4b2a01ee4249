#!/usr/bin/env python3
"""Convert a .keras model (basis layers included) to a verified .tflite file.

The same command as ``keras-basis export``, with the same flags (this script
is that command under another name; see tflite/README.md).

Examples:

    # float32, verified against Keras on random inputs
    python tflite/convert.py small.keras /tmp/small.tflite

    # full-integer int8, calibrated on 200 images of a folder, normalised like
    # the model's training inputs: x = pixel/255 * SCALE + OFFSET per channel,
    # here (pixel/255 - mean) / std with CIFAR-10's mean and std
    python tflite/convert.py small.keras /tmp/small_int8.tflite --quantize int8 \\
        --calibration-dir calib_images/ --num-calibration 200 \\
        --scale 4.0486,4.1068,3.8226 --offset -1.9895,-1.9803,-1.7068

    # fold back the basis pairs that are slower than their dense form here
    python tflite/convert.py small.keras /tmp/small_auto.tflite --fold auto

    # a fully convolutional SR network (unknown H, W) in the 0-255 range
    python tflite/convert.py edsr.keras /tmp/edsr.tflite --image-size 128x128 --scale 255

Uses only the public API of keras_basis (keras_basis.cli.run_command).
"""

import sys

from keras_basis.cli import run_command


def main(argv=None):
    """Run ``keras-basis export`` as ``convert.py``; returns the exit status."""
    return run_command("export", argv, prog="python tflite/convert.py")


if __name__ == "__main__":
    sys.exit(main())
