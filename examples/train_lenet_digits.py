"""Train LeNet-5 on scikit-learn's handwritten digits, on the CPU, in well under two minutes.

The network and its recipe are `lenet5_modern` in specs/lenet5.arch (dense C3, tanh,
average pooling, fc 120-84-10: 61,706 parameters; Adam at 2e-3, batch 32, 20 epochs,
cosine decay). The data is the 8x8 digits set that ships with scikit-learn (1,797 images,
no download), upsampled to the 32x32 input LeNet-5 expects: LeCun et al. (1998, §II-B)
also feed 32x32 images, padding 28x28 MNIST digits so that strokes reach the centre of
C3's receptive fields. This script is `archdsl train specs/lenet5.arch -n lenet5_modern
--data digits` through the API:

    python examples/train_lenet_digits.py                 # the full run (20 epochs)
    python examples/train_lenet_digits.py --quick         # 3 epochs, for a smoke test
    python examples/train_lenet_digits.py --epochs 30 --min-accuracy 0.97

Everything is seeded: the split, the initial weights and the batch order.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "lenet5.arch"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's 20)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs") / "lenet5_modern",
                        help="metrics.csv, steps.csv and the checkpoint last.pt go here")
    parser.add_argument("--min-accuracy", type=float, default=0.0,
                        help="exit with status 1 if the test accuracy ends below this (e.g. 0.97)")
    # one thread: LeNet-5 is too small for intra-op parallelism to pay, and on a busy machine
    # extra threads only spin against each other
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)

    import torch
    from rich.console import Console

    from archdsl.train import Config, train_file

    console = Console(soft_wrap=True)  # never break a result line at the terminal width
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cfg = Config(data="digits", out=args.out, epochs=3 if args.quick else args.epochs, seed=args.seed)
    result = train_file(SPEC, "lenet5_modern", cfg, log=console.print)

    accuracy, n_test = result["val_accuracy"], 450
    console.print(f"final test accuracy: {100 * accuracy:.2f}% ({round(accuracy * n_test)}/{n_test})")
    console.print(f"time: {time.perf_counter() - start:.1f} s")
    if accuracy < args.min_accuracy:
        console.print(f"below the required {100 * args.min_accuracy:.1f}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
