"""archdsl in one page: spec text -> analytic report -> torch module -> forward pass.

Run from anywhere:

    python examples/quickstart.py

It compiles a small network written inline, prints its report, checks its `expect` lines,
builds the torch module and runs a batch through it; then does the same for Network In
Network from specs/nin.arch, whose figures are the published ones.
"""

from __future__ import annotations

from pathlib import Path

import archdsl

ROOT = Path(__file__).resolve().parent.parent

# Written the way a paper's table reads: one layer per statement, `act relu` is the
# activation after every conv and fc of this body, `noact` leaves it off the classifier.
SPEC = """
block conv_block(c) {
  conv 3x3 p1 -> c
  conv 3x3 p1 -> c
  maxpool 2
}

network quick(classes=10) {
  input 3x32x32
  act relu
  conv_block(32)
  conv_block(64)
  gap
  fc classes noact
  expect output = 10
  expect params = 66_218     # 896 + 9,248 + 18,496 + 36,928 + 650
}
"""


def main() -> None:
    import torch

    # 1. text -> compiled network: shapes, parameters and MACs, without torch
    net = archdsl.compile(SPEC)
    print(net.report().to_table())
    for outcome in net.check():
        print(f"expect {outcome.what}: {'ok' if outcome.ok else 'FAILED'}")

    # 2. compiled network -> torch.nn.Module whose parameter count equals the analytic one
    torch.manual_seed(0)
    model = archdsl.build(net).eval()
    numel = sum(p.numel() for p in model.parameters())
    print(f"analytic params: {net.params:,}   module numel: {numel:,}   equal: {numel == net.params}")
    print(f"MACs per image: {net.macs:,}   FLOPs: {net.flops:,}")

    # 3. forward: the module's output shape is the inferred one; names follow the spec
    x = torch.randn(4, *net.input_shape.dims)
    with torch.no_grad():
        y = model(x)
    print(f"forward: input {tuple(x.shape)} -> output {tuple(y.shape)} (inferred {net.output_shape})")
    print("first state_dict keys:", ", ".join(list(model.state_dict())[:3]))

    # 4. a spec file: Network In Network (Lin et al. 2014), CIFAR-10 model
    nin = archdsl.compile(ROOT / "specs" / "nin.arch", "nin")
    nin_model = archdsl.build(nin).eval()
    with torch.no_grad():
        out = nin_model(torch.randn(1, *nin.input_shape.dims))
    print(f"nin: params {nin.params:,}, MACs {nin.macs:,}, output {tuple(out.shape)}, "
          f"module numel {sum(p.numel() for p in nin_model.parameters()):,}")


if __name__ == "__main__":
    main()
