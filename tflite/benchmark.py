#!/usr/bin/env python3
"""Latency, size and ops of one or more .tflite files, side by side.

The same command as ``keras-basis bench``, with the same flags (this script
is that command under another name; see tflite/README.md): for every thread
count x XNNPACK setting x file, the median and p90 latency of one batch-1
inference on random inputs over --runs runs after --warmup untimed runs, the
file size and the ratios to the first row; --ops adds an op histogram with one
column per file, --json writes every measurement.

Examples:

    python tflite/benchmark.py /tmp/resnet56.tflite /tmp/resnet56_basis.tflite
    python tflite/benchmark.py a.tflite b.tflite --threads 1,2 --xnnpack both --runs 100
    python tflite/benchmark.py *.tflite --ops --json /tmp/bench.json

The numbers are for this machine's CPU; tflite/README.md shows how to get the
same table on an Android phone with the LiteRT benchmark_model tool.
Uses only the public API of keras_basis (keras_basis.cli.run_command).
"""

import sys

from keras_basis.cli import run_command


def main(argv=None):
    """Run ``keras-basis bench`` as ``benchmark.py``; returns the exit status."""
    return run_command("bench", argv, prog="python tflite/benchmark.py")


if __name__ == "__main__":
    sys.exit(main())
