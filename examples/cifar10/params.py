"""Print parameters and FLOPs of every CIFAR-10 network and configuration.

One line per network/configuration: ``params`` (weights + biases of convs, bases and
classifier, BatchNorm excluded: the paper's convention), the paper's figure and the
difference, Keras' trainable count (with BatchNorm), MMACs and MFLOPs (= 2 MACs) of
one 32x32 image, and FLOPs relative to the baseline.

Usage::

    python -m examples.cifar10.params            # paper networks + CPU-scale ResNet-20s
    python -m examples.cifar10.params --paper    # paper networks only
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (network, variant, builder kwargs, label, paper figure or None)
PAPER_ROWS = [
    ("resnet56", "baseline", {}, "-", 849_000),
    ("resnet56", "basis", {}, "Table8 m=24/48/84 stage-shared", 186_000),
    ("resnet56", "factor", {}, "2 SIC", 212_000),
    ("resnet56", "group", {}, "group size 4/4/8", 206_000),
    ("vgg16", "baseline", {}, "-", 14_700_000),
    ("vgg16", "basis", {}, "Table9 m=128 p=128", 3_210_000),
    ("vgg16", "factor", {}, "2 SIC", 3_340_000),
    ("vgg16", "group", {}, "group size 64", 3_800_000),
    ("densenet40", "baseline", {}, "-", 1_041_000),
    ("densenet40", "basis", {"config": "M24"}, "M24", 320_000),
    ("densenet40", "basis", {"config": "M26"}, "M26", 336_000),
    ("densenet40", "basis", {"config": "M32"}, "M32", 383_000),
    ("densenet40", "basis", {"config": "M36T6"}, "M36T6", 331_000),
    ("densenet40", "basis", {"config": "M38T12"}, "M38T12", 326_000),
    ("densenet40", "basis", {"config": "M36T6", "coef_kernel": 1}, "M36T6 1x1-coef", None),
    ("densenet40", "factor", {}, "2 SIC", 317_000),
    ("densenet40", "group", {}, "3/6 groups", 337_000),
]


def cpu_rows():
    """The ResNet-20 models of the CPU-scale experiment (cpu_experiment.py)."""
    from examples.cifar10.cpu_experiment import RATIO, scratch_configs

    rows = [("resnet20", "baseline", {}, "CPU experiment", None)]
    for label, v, kw in scratch_configs():
        rows.append(("resnet20", v, kw, label + (f", ratio {RATIO}" if "ratio" in kw else ""),
                     None))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper", action="store_true", help="paper networks only")
    args = parser.parse_args(argv)

    import keras

    from examples.cifar10.models import build, count_model

    rows = PAPER_ROWS + ([] if args.paper else cpu_rows())
    header = (f"{'network':<11} {'variant':<9} {'configuration':<36} {'params':>10} "
              f"{'paper':>10} {'diff':>7} {'trainable':>10} {'MMACs':>8} {'MFLOPs':>8} "
              f"{'FLOPs%':>7}")
    print(header)
    print("-" * len(header))
    base_macs = {}
    results = []
    for network, variant, kw, label, paper in rows:
        counts = count_model(build(network, variant, **kw))
        keras.backend.clear_session()
        if variant == "baseline":
            base_macs[network] = counts["macs"]
        rel = 100.0 * counts["macs"] / base_macs[network] if network in base_macs else float("nan")
        diff = f"{100.0 * (counts['params'] - paper) / paper:+.1f}%" if paper else "-"
        paper_s = f"{paper:,}" if paper else "-"
        print(f"{network:<11} {variant:<9} {label:<36} {counts['params']:>10,} {paper_s:>10} "
              f"{diff:>7} {counts['trainable']:>10,} {counts['macs'] / 1e6:>8.1f} "
              f"{2 * counts['macs'] / 1e6:>8.1f} {rel:>6.1f}%", flush=True)
        results.append((network, variant, label, counts, paper))
    return results


if __name__ == "__main__":
    main()
