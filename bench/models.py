"""The models compared: each archdsl spec beside the torchvision/timm model it reproduces.

Published figures are those of /work/shared/reference/figures.md (torchvision's model
documentation, ``num_params`` and ``_ops``; timm's model for Inception-v4): params as
``sum(p.numel() for p in model.parameters())``, MACs of convolution and fully connected
weights only. GoogLeNet and Inception-v3 are compared without their aux heads, as
torchvision ships them once weights are loaded (``aux_logits=False``); the archdsl side
then reads ``params_without_aux`` / ``macs_without_aux``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@dataclass(frozen=True)
class Model:
    name: str
    spec: str  # file under specs/
    network: str
    input: tuple[int, int, int]
    library: str  # "torchvision" | "timm"
    builder: str  # the library's constructor name
    params: int  # published
    macs: int  # published
    has_aux: bool = False
    #: as deep as GoogLeNet (22 weight layers on its longest path) or deeper: the models of the
    #: headline's ">= 10x the meta-device counter" target (alexnet 8, vgg16 16, squeezenet1_0 18)
    deep: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def spec_path(self) -> Path:
        return SPECS / self.spec

    def available(self) -> bool:
        """True when the spec file exists and names this network (specs land over time)."""
        path = self.spec_path
        return path.is_file() and f"network {self.network}" in path.read_text()

    def reference(self, aux: bool = False, init: bool = True):
        """The torchvision/timm module (eval mode). `aux` keeps the aux heads (for weight
        transfer onto an archdsl module, which has them); `init=False` skips the library's
        own weight initialisation where it offers that."""
        kwargs = dict(self.kwargs)
        if self.has_aux:
            kwargs["aux_logits"] = aux
        if not init and self.library == "torchvision" and self.builder in ("googlenet", "inception_v3"):
            kwargs["init_weights"] = False
        if self.library == "timm":
            import timm

            return timm.create_model(self.builder, pretrained=False, **kwargs).eval()
        import torchvision

        return getattr(torchvision.models, self.builder)(weights=None, **kwargs).eval()

    def compile(self):
        import archdsl

        return archdsl.compile(self.spec_path, self.network)

    def archdsl_figures(self, net=None) -> tuple[int, int]:
        """(params, MACs) from archdsl, without aux heads where the reference has none."""
        net = net or self.compile()
        if self.has_aux:
            return net.params_without_aux, net.macs_without_aux
        return net.params, net.macs


MODELS: tuple[Model, ...] = (
    Model("alexnet", "alexnet.arch", "alexnet_torchvision", (3, 224, 224), "torchvision", "alexnet",
          61_100_840, 714_188_480),
    Model("vgg16", "vgg.arch", "vgg16", (3, 224, 224), "torchvision", "vgg16",
          138_357_544, 15_470_264_320),
    Model("googlenet", "googlenet.arch", "googlenet_torchvision", (3, 224, 224), "torchvision", "googlenet",
          6_624_904, 1_498_376_192, has_aux=True, deep=True),
    Model("inception_v3", "inception_v3.arch", "inception_v3", (3, 299, 299), "torchvision", "inception_v3",
          23_834_568, 5_713_216_096, has_aux=True, deep=True),
    Model("resnet50", "resnet.arch", "resnet50", (3, 224, 224), "torchvision", "resnet50",
          25_557_032, 4_089_184_256, deep=True),
    Model("densenet121", "densenet.arch", "densenet121", (3, 224, 224), "torchvision", "densenet121",
          7_978_856, 2_834_161_664, deep=True),
    Model("squeezenet1_0", "squeezenet.arch", "squeezenet1_0", (3, 224, 224), "torchvision", "squeezenet1_0",
          1_248_424, 818_924_576),
    Model("inception_v4", "inception_v4.arch", "inception_v4", (3, 299, 299), "timm", "inception_v4",
          42_679_816, 12_253_974_624, deep=True),
)

BY_NAME = {m.name: m for m in MODELS}

#: the model of `--quick` runs and of the CI smoke test: small, and quick to build and run
QUICK = ("squeezenet1_0",)


def select(names: list[str] | None, quick: bool) -> list[Model]:
    if names:
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise SystemExit(f"unknown model(s): {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
        chosen = [BY_NAME[n] for n in names]
    else:
        chosen = [BY_NAME[n] for n in QUICK] if quick else list(MODELS)
    return [m for m in chosen if m.available()]


def missing(names: list[str] | None, quick: bool) -> list[Model]:
    """Requested models whose spec has not landed yet."""
    pool = [BY_NAME[n] for n in names] if names else ([BY_NAME[n] for n in QUICK] if quick else list(MODELS))
    return [m for m in pool if not m.available()]
