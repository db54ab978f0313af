"""Train LeNet-5 on scikit-learn's handwritten digits, on the CPU, in well under two minutes.

The network is `lenet5_modern` from specs/lenet5.arch (dense C3, tanh, average pooling,
fc 120-84-10: 61,706 parameters), built by archdsl. The data is the 8x8 digits set that
ships with scikit-learn (1,797 images, no download), upsampled to the 32x32 input LeNet-5
expects: LeCun et al. (1998, §II-B) also feed 32x32 images, padding 28x28 MNIST digits so
that strokes reach the centre of C3's receptive fields.

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


def load_digits_32(seed: int, test_fraction: float):
    """The digits as (N, 1, 32, 32) float tensors, standardised with the training set's
    statistics, and a stratified train/test split."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=test_fraction, random_state=seed,
                                           stratify=digits.target)
    x_train, x_test = images[train_idx], images[test_idx]
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, labels[train_idx], (x_test - mean) / std, labels[test_idx]


def accuracy(model, x, y, batch: int = 512) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--min-accuracy", type=float, default=0.0,
                        help="exit with status 1 if the test accuracy ends below this (e.g. 0.97)")
    # one thread: LeNet-5 is too small for intra-op parallelism to pay, and on a busy machine
    # extra threads only spin against each other
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs

    import torch
    import torch.nn.functional as F
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import archdsl

    console = Console(soft_wrap=True)  # never break a result line at the terminal width
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    net = archdsl.compile(SPEC, "lenet5_modern")
    model = archdsl.build(net)  # initialised from torch's seeded generator
    numel = sum(p.numel() for p in model.parameters())
    assert numel == net.params, (numel, net.params)
    x_train, y_train, x_test, y_test = load_digits_32(args.seed, args.test_fraction)
    console.print(f"lenet5_modern: {net.params:,} parameters, {net.macs:,} MACs per image; "
                  f"{len(x_train)} training and {len(x_test)} test images, {epochs} epochs")

    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    order = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = -(-len(x_train) // args.batch_size)

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("training", total=epochs * steps_per_epoch, status="")
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(len(x_train), generator=order)
            total_loss = 0.0
            for i in range(0, len(x_train), args.batch_size):
                idx = perm[i:i + args.batch_size]
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(idx)
                progress.update(task, advance=1, status=f"epoch {epoch}/{epochs}  loss {loss.item():.3f}")
            scheduler.step()
            test_acc = accuracy(model, x_test, y_test)
            progress.console.print(f"epoch {epoch:>2}: train loss {total_loss / len(x_train):.4f}  "
                                   f"test accuracy {100 * test_acc:.2f}%")

    final = accuracy(model, x_test, y_test)
    elapsed = time.perf_counter() - start
    correct = round(final * len(x_test))
    console.print(f"final test accuracy: {100 * final:.2f}% ({correct}/{len(x_test)})")
    console.print(f"time: {elapsed:.1f} s")
    if final < args.min_accuracy:
        console.print(f"below the required {100 * args.min_accuracy:.1f}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
