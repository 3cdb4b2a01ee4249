"""Per-residual-block and whole-network parameter counts of every SR configuration.

Counts are convolution weights without biases (and without BatchNorm / PReLU
parameters), the convention of the paper's Tables 1-3; a basis shared by the two
convolutions of a block (Basis-S) is counted once. The "all" column is Keras'
``count_params()`` (biases, BN, PReLU included). The per-block count is checked
against the paper's and the script exits with status 1 on any mismatch.

Usage (repository root):

    python -m examples.div2k.params            # x4, every preset
    python -m examples.div2k.params --scale 2 --preset edsr-basis-s
"""

from __future__ import annotations

import argparse
import sys

from examples.div2k import models


def count(preset, scale):
    """``(block_weights, num_blocks, conv_weights, all_params)`` of one preset."""
    model = models.build(preset, scale)
    blocks = models.block_weight_counts(model)
    if len(set(blocks)) != 1:
        raise AssertionError(f"{preset}: blocks differ: {blocks}")
    return blocks[0], len(blocks), models.weight_count(model), model.count_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    parser.add_argument("--preset", action="append", help="preset(s) (default: all)")
    args = parser.parse_args(argv)
    presets = args.preset or list(models.PRESETS)
    header = (f"{'network (x%d)' % args.scale:<26} {'per block':>10} {'expected':>10} "
              f"{'paper':>6} "
              f"{'rate':>6} {'blocks':>6} {'conv weights':>13} {'all params':>12}  check")
    print(header)
    print("-" * len(header))
    failures = 0
    baselines = {}
    for preset in presets:
        block, n, weights, total = count(preset, args.scale)
        family = "srresnet" if preset.startswith("srresnet") else (
            "edsr-8-128" if preset.startswith("edsr-8-128") else "edsr")
        base = baselines.get(family) or models.PAPER_BLOCK_PARAMS[family]
        baselines.setdefault(family, base)
        paper = models.PAPER_BLOCK_PARAMS[preset]
        printed = models.PAPER_PRINTED_K[preset]
        ok = block == paper and round(block / 1000) == printed
        failures += not ok
        print(f"{preset:<26} {block:>10,} {paper:>10,} {f'{printed}k':>6} "
              f"{100 * block / base:>5.1f}% {n:>6} "
              f"{weights:>13,} {total:>12,}  {'ok' if ok else 'MISMATCH'}")
    print("\nper block: the two 3x3 convs of one residual block (conv weights, no biases, "
          "no BN/PReLU);\nexpected: the exact count behind the paper's rounded figure "
          "(paper, Tables 2-3); rate: of the baseline block.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
