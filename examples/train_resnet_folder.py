"""Train a CIFAR ResNet (He et al. 2016, §4.2) on an image folder, the way any
torchvision ImageFolder data set is trained.

The script first writes a small synthetic data set in ImageFolder's layout,

    DATA/train/<class>/*.png    DATA/val/<class>/*.png

with four classes of 32x32 textures (horizontal stripes, vertical stripes, a checkerboard,
diagonal stripes) in random colours, phases and noise, then trains `resnet20` from
specs/resnet.arch on it with the spec's own initialisation (He et al. 2015) and recipe
(SGD, momentum 0.9, weight decay 1e-4, learning rate 0.1), shortened with --epochs and a
smaller batch. It is the same as

    archdsl train specs/resnet.arch -n resnet20 --data DATA --epochs 8 --batch 32

The spec's network has 10 outputs; archdsl compiles it again with classes=4 for the
folder's four classes. Usage:

    python examples/train_resnet_folder.py              # 8 epochs
    python examples/train_resnet_folder.py --quick      # 1 epoch, for a smoke test
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "resnet.arch"
CLASSES = ("horizontal", "vertical", "checker", "diagonal")


def make_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """Write the synthetic textures as PNG files in ImageFolder's layout."""
    import torch
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                period = 6 + 6 * torch.rand(1, generator=g).item()
                phase = 2 * math.pi * torch.rand(1, generator=g).item()
                coord = {"horizontal": y, "vertical": x, "diagonal": x + y}.get(name)
                if coord is None:
                    wave = torch.sin(2 * math.pi * x / period + phase) * torch.sin(2 * math.pi * y / period + phase)
                else:
                    wave = torch.sin(2 * math.pi * coord / period + phase)
                fg, bg = torch.rand(3, generator=g) * 255, torch.rand(3, generator=g) * 255
                img = bg[:, None, None] + (fg - bg)[:, None, None] * (wave > 0).float()
                img = img + 10 * torch.randn(3, 32, 32, generator=g)
                pixels = img.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("textures"), help="where the image folder is written")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one epoch on fewer images")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs") / "resnet20_textures")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch
    from rich.console import Console

    from archdsl.train import Config, train_file

    console = Console(soft_wrap=True)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    per_class = {"train": 24, "val": 8} if args.quick else {"train": 64, "val": 16}
    make_folder(args.data, per_class)
    console.print(f"image folder {args.data}: {len(CLASSES)} classes, {per_class['train']} training and "
                  f"{per_class['val']} validation images each")
    cfg = Config(data=str(args.data), out=args.out, epochs=1 if args.quick else args.epochs, batch=args.batch)
    result = train_file(SPEC, "resnet20", cfg, log=console.print)
    console.print(f"validation accuracy: {100 * result['val_accuracy']:.1f}% (chance: {100 / len(CLASSES):.0f}%)")
    console.print(f"time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
