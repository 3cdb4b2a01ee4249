"""Output scale of a freshly initialised EDSR-8-128 x4: plain vs basis initialisations.

Builds EDSR-8-128 (``examples.div2k.models.edsr_8_128``) untrained, as the plain
network and as Basis-128-27 with ``basis_init="authors"`` (the released code's
Kaiming-uniform basis and coefficients) and ``basis_init="matched"``, each from the
same seed, and prints the standard deviation of its output on one random input
(pixels uniform in [0, 255]). A from-scratch training starts from these scales.

    python benchmarks/init_scale.py                  # 48x48 input, seed 0 (seconds)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # examples/

import keras  # noqa: E402
import numpy as np  # noqa: E402

from examples.div2k.models import edsr_8_128  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=48, help="LR input side")
    p.add_argument("--num-basis", type=int, default=27)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    x = np.random.default_rng(args.seed).uniform(0, 255, (1, args.size, args.size, 3))
    x = x.astype("float32")
    print(f"EDSR-8-128 x4, untrained, input {args.size}x{args.size} uniform [0, 255], "
          f"seed {args.seed}")
    for label, kwargs in (
        ("plain (PyTorch-default init)", {}),
        (f"Basis-128-{args.num_basis}, basis_init='authors'",
         {"num_basis": args.num_basis, "basis_init": "authors"}),
        (f"Basis-128-{args.num_basis}, basis_init='matched'",
         {"num_basis": args.num_basis, "basis_init": "matched"}),
    ):
        keras.utils.set_random_seed(args.seed)
        y = edsr_8_128(4, **kwargs)(x)
        print(f"  {label:<40} output std {float(np.std(y)):12.1f}")


if __name__ == "__main__":
    main()
