"""One SGD training step of GoogLeNet with its two auxiliary classifiers.

The aux contract of every network built by archdsl that declares `aux NAME { ... }` heads:

* eval mode:     model(x) -> the main output (a tensor), the aux heads do not run;
* training mode: model(x) -> (main, {"aux1": tensor, "aux2": tensor}), one entry per
  head, keyed by the name written after `aux` in the spec.

GoogLeNet (Szegedy et al. 2015, §5) adds the aux losses to the main loss with a weight of
0.3: loss = main + 0.3 * (aux1 + aux2); at inference the heads are discarded. The paper
trains with SGD and momentum 0.9 (§6). The network is `googlenet_torchvision` from
specs/googlenet.arch; its pools are adaptive, so a small input keeps the step quick.

    python examples/train_aux_step.py                          # batch 8 at 3x224x224
    python examples/train_aux_step.py --batch 2 --input 3x64x64 --steps 3
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "googlenet.arch"

#: GoogLeNet §5: "the losses of the auxiliary classifiers were weighted by 0.3"
AUX_WEIGHT = 0.3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="googlenet_torchvision", help="a network of specs/googlenet.arch")
    parser.add_argument("--input", default=None, help="CxHxW (default: the spec's 3x224x224)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import archdsl

    torch.manual_seed(args.seed)
    net = archdsl.compile(SPEC, args.network, input=args.input, classes=args.classes)
    model = archdsl.build(net)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.network}: {n_params:,} parameters, input {'x'.join(map(str, model.input_shape))}, "
          f"aux heads {', '.join(model.aux_names)}")

    x = torch.randn(args.batch, *model.input_shape)
    target = torch.randint(0, args.classes, (args.batch,))

    model.eval()
    with torch.no_grad():
        out = model(x)
    print(f"eval mode:     model(x) -> tensor {tuple(out.shape)}")

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        main_out, aux = model(x)
        if step == 1:
            shapes = ", ".join(f"{name!r}: tensor {tuple(t.shape)}" for name, t in aux.items())
            print(f"training mode: model(x) -> (tensor {tuple(main_out.shape)}, {{{shapes}}})")
        main_loss = F.cross_entropy(main_out, target)
        aux_losses = {name: F.cross_entropy(logits, target) for name, logits in aux.items()}
        loss = main_loss + AUX_WEIGHT * sum(aux_losses.values())
        optimizer.zero_grad()
        loss.backward()
        # every head is part of the graph: its parameters receive gradients
        with_grad = {name: sum(p.grad is not None and bool(p.grad.abs().sum() > 0)
                               for n, p in model.named_parameters() if f".{name}." in n)
                     for name in aux}
        optimizer.step()
        aux_text = "  ".join(f"{name} {value.item():.4f}" for name, value in aux_losses.items())
        print(f"step {step}: loss {loss.item():.4f} = main {main_loss.item():.4f} + {AUX_WEIGHT} x ({aux_text})")
        if not math.isfinite(loss.item()):
            print("the loss is not finite", file=sys.stderr)
            return 1
    print("aux parameters with a gradient: " + ", ".join(f"{name} {n}" for name, n in with_grad.items()))
    print(f"time: {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
