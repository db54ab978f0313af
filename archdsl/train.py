"""`archdsl train`: a spec trained with its own recipe, on one process or many (torchrun).

Plain torch, no trainer library: torch.nn.parallel.DistributedDataParallel, a
DistributedSampler (used on one process too, so that one process and N see the same
batches: rank r of N takes every N-th index of the same seeded permutation), torch.amp for
mixed precision, torch.save for checkpoints. Under ``torchrun`` (which sets RANK,
WORLD_SIZE, LOCAL_RANK and the rendezvous) the same command trains data-parallel: the
recipe's batch is the global batch, split evenly over the processes; rank 0 alone prints,
writes the metrics and saves checkpoints.

A checkpoint (``last.pt``) holds the model, optimizer, scheduler and grad-scaler states,
the position in the run and torch's generators, so that ``--resume`` continues the run
exactly where it stopped: the same batches, dropout masks and losses as an uninterrupted
run on the same machine and settings (tests/test_train.py checks it bit for bit).
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

from .lower_torch import lower
from .network import CompiledNetwork
from .optim import recipe as make_recipe
from .optim import require_recipe

METRICS = ("epoch", "step", "train_loss", "val_loss", "val_accuracy", "lr", "images_per_second", "seconds")


@dataclass
class Config:
    """One run. `epochs`, `batch` override the recipe; `max_steps` stops early (saving a checkpoint)."""

    data: str = "digits"
    out: Path = Path("runs")
    epochs: int | None = None
    batch: int | None = None
    device: str = "cpu"
    seed: int = 0
    resume: bool = False
    precision: str = "auto"  # auto | 32 | bf16 | 16
    workers: int = 0
    max_steps: int | None = None
    val_fraction: float = 0.1
    progress: bool = True
    sync_bn: bool = False


# ---------------------------------------------------------------- data


def digits(shape: tuple[int, ...], seed: int):
    """scikit-learn's 8x8 digits (1,797 images, shipped with it), resized to the network's
    input (bilinear, channels repeated) and standardised with the training set's mean and
    std; a stratified 75/25 train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    c, h, w = shape if len(shape) == 3 else (1, 8, 8)
    if (h, w) != (8, 8):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    x = x.expand(-1, c, -1, -1).contiguous()
    y = torch.tensor(d.target, dtype=torch.long)
    tr, te = train_test_split(range(len(y)), test_size=0.25, random_state=seed, stratify=d.target)
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    if len(shape) == 1:
        x = x.flatten(1)
    return TensorDataset(x[tr], y[tr]), TensorDataset(x[te], y[te]), 10


def image_folder(path: Path, shape: tuple[int, ...], seed: int, val_fraction: float):
    """torchvision's ImageFolder: PATH/train and PATH/val (or PATH/test) when present, else
    PATH split by the seed. Images are resized to the network's input, made RGB or grey to
    its channels, and normalised with ImageNet's mean and std (3 channels) or 0.5."""
    from torchvision import datasets, transforms as T

    c, h, w = shape
    norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) if c == 3 else T.Normalize([0.5] * c, [0.5] * c)
    tf = T.Compose([*([T.Grayscale(c)] if c != 3 else []), T.Resize((h, w)), T.ToTensor(), norm])
    train_dir = path / "train"
    val_dir = next((path / v for v in ("val", "test") if (path / v).is_dir()), None)
    if train_dir.is_dir():
        train = datasets.ImageFolder(train_dir, transform=tf)
        val = datasets.ImageFolder(val_dir, transform=tf) if val_dir else None
        return train, val, len(train.classes)
    full = datasets.ImageFolder(path, transform=tf)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(len(full) * val_fraction))
    return Subset(full, order[n_val:]), Subset(full, order[:n_val]) if n_val else None, len(full.classes)


def datasets_for(cfg: Config, shape: tuple[int, ...]):
    if cfg.data == "digits":
        return digits(shape, cfg.seed)
    path = Path(cfg.data)
    if not path.is_dir():
        raise FileNotFoundError(f"--data: no such folder: {path} (give `digits` or an ImageFolder folder)")
    if len(shape) != 3:
        raise ValueError(f"an image folder needs a CxHxW input, the network takes {shape}")
    return image_folder(path, shape, cfg.seed, cfg.val_fraction)


# ---------------------------------------------------------------- processes


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def join(device: str) -> World:
    """The process group torchrun described in the environment (nccl on CUDA, gloo on the
    CPU); one process on its own when there is none."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _mean(world: World, *values: float) -> list[float]:
    """Sums over the processes of `values` (one all-reduce); as given on one process."""
    if world.size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


class _From(torch.utils.data.Sampler):
    """A sampler's indices from position `start` on: a resumed epoch skips what it has seen."""

    def __init__(self, sampler, start: int):
        self.sampler, self.start = sampler, start

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.start):
            next(it, None)
        return it

    def __len__(self):
        return max(0, len(self.sampler) - self.start)


# ---------------------------------------------------------------- the run


def _precision(cfg: Config, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a grad scaler is needed): `auto` is float16 with a
    scaler on CUDA (torch.amp's recipe) and float32 on the CPU."""
    p = cfg.precision
    if p == "auto":
        p = "16" if device.type == "cuda" else "32"
    if p == "32":
        return None, False
    if p == "bf16":
        return torch.bfloat16, False
    return torch.float16, device.type == "cuda"


def _checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _evaluate(model, data: Dataset | None, world: World, device, batch: int, autocast) -> tuple[float, float]:
    """(mean loss, accuracy) over `data`, each process taking every N-th sample."""
    if data is None or len(data) == 0:
        return math.nan, math.nan
    model.eval()
    part = Subset(data, list(range(world.rank, len(data), world.size)))
    loss = correct = count = 0.0
    with torch.no_grad():
        for x, y in DataLoader(part, batch_size=max(batch, 64)):
            x, y = x.to(device), y.to(device)
            with autocast():
                out = torch.flatten(model(x), 1).float()
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            count += len(y)
    loss, correct, count = _mean(world, loss, correct, count)
    return loss / count, correct / count


def train_file(file, network: str | None, cfg: Config, input=None, log=print) -> dict[str, Any]:
    """Compile `network` of `file`, load the data for its input, and :func:`fit`. A network
    whose output does not match the data's classes is compiled again with `classes=N` when
    it has that parameter (every classifier of specs/ does)."""
    from . import compile

    net = compile(file, network, input)
    require_recipe(net)
    train_ds, val_ds, classes = datasets_for(cfg, net.input_shape.dims)
    if net.output_shape.numel != classes:
        from . import load

        spec = load(file)
        names = [p.name for p in next(n for n in spec.program.networks if n.name == net.name).params] \
            if net.name in [n.name for n in spec.program.networks] else []
        if "classes" not in names:
            raise ValueError(f"{net.name} has {net.output_shape.numel} outputs and no `classes` parameter, "
                             f"but the data has {classes} classes")
        net = compile(file, net.name, input, classes=classes)
        if int(os.environ.get("RANK", "0")) == 0:
            log(f"{net.name}: compiled with classes={classes} for the data")
    return fit(net, cfg, log, (train_ds, val_ds))


def fit(net: CompiledNetwork, cfg: Config, log=print, data=None) -> dict[str, Any]:
    """Train `net` with its recipe on `data` (train, validation), or the data `cfg` names.
    Returns the final metrics, the model, the step losses and whether the processes agree."""
    recipe = require_recipe(net)
    world = join(cfg.device)
    device = torch.device(f"cuda:{world.local_rank}" if cfg.device == "cuda" and world.size > 1 else cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_ds, val_ds = data if data is not None else datasets_for(cfg, net.input_shape.dims)[:2]
    model = lower(net, device=device, seed=cfg.seed)
    if cfg.sync_bn and world.size > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    batch = cfg.batch or recipe.batch or 64
    if batch % world.size:
        raise ValueError(f"the batch of {batch} does not split evenly over {world.size} processes")
    per_rank = batch // world.size
    sampler = DistributedSampler(train_ds, num_replicas=world.size, rank=world.rank, shuffle=True, seed=cfg.seed)
    steps_per_epoch = math.ceil(len(sampler) / per_rank)
    training = make_recipe(net, model, steps_per_epoch)
    epochs = cfg.epochs or recipe.epochs or (math.ceil(recipe.iterations / steps_per_epoch) if recipe.iterations
                                             else 1)
    last_step = cfg.max_steps or (recipe.iterations if recipe.iterations and not cfg.epochs else None)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world.size > 1 else model
    dtype, scaling = _precision(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=scaling)

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    out = Path(cfg.out)
    ckpt = out / "last.pt"
    epoch = step = seen = 0
    partial = (0.0, 0.0)
    if cfg.resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        training.optimizer.load_state_dict(state["optimizer"])
        training.scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        epoch, step, seen = state["epoch"], state["step"], state["seen"]
        partial = tuple(state.get("partial", (0.0, 0.0)))
        torch.set_rng_state(state["rng"][world.rank] if world.rank < len(state["rng"]) else state["rng"][0])
        if device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state(state["cuda_rng"][min(world.rank, len(state["cuda_rng"]) - 1)].cpu())
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        for name, header in (("metrics.csv", METRICS), ("steps.csv", ("step", "epoch", "loss", "lr"))):
            if not cfg.resume or not (out / name).exists():
                with open(out / name, "w", newline="") as f:
                    csv.writer(f).writerow(header)
        log(f"{net.name}: {net.params:,} parameters; {len(train_ds):,} training and "
            f"{len(val_ds) if val_ds is not None else 0:,} validation samples; batch {batch}"
            f"{f' ({per_rank} on each of {world.size} processes)' if world.size > 1 else ''}, {epochs} epochs, "
            f"{recipe.optimizer} lr {recipe.hyper['lr']:g}, {recipe.schedule} schedule"
            f"{', resumed at epoch %d step %d' % (epoch + 1, step) if cfg.resume else ''}")
        unstated = [what for what, given in (("batch (64 used)", cfg.batch or recipe.batch),
                                             ("length (1 epoch used)", cfg.epochs or recipe.epochs or recipe.iterations))
                    if not given]
        if unstated:
            log(f"the recipe states no {' and no '.join(unstated)}: give --batch / --epochs")
    losses: list[float] = []
    progress = _Progress(cfg.progress and world.main, epochs * steps_per_epoch, step)
    result: dict[str, Any] = {}
    stopped = False
    with progress:
        while epoch < epochs and not stopped:
            sampler.set_epoch(epoch)
            loader = DataLoader(train_ds, batch_size=per_rank, sampler=_From(sampler, seen), num_workers=cfg.workers)
            ddp.train()
            total, count = partial if seen else (0.0, 0.0)  # a resumed epoch's sums so far
            started = time.perf_counter()
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with autocast():
                    loss = training.loss(ddp(x), y)
                training.optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(training.optimizer)
                scaler.update()
                training.step_scheduler(end_of_epoch=False)
                (value,) = _mean(world, loss.item())
                value /= world.size
                losses.append(value)
                step += 1
                seen += len(y)  # of this process's share of the epoch
                total += value * len(y)
                count += len(y)
                lr = training.optimizer.param_groups[0]["lr"]
                if world.main:
                    with open(out / "steps.csv", "a", newline="") as f:
                        csv.writer(f).writerow([step, epoch + 1, f"{value:.9g}", f"{lr:.9g}"])
                    rate = count * world.size / max(time.perf_counter() - started, 1e-9)
                    progress.update(epoch + 1, epochs, step, value, rate)
                if last_step is not None and step >= last_step:
                    stopped = True
                    break
            seconds = time.perf_counter() - started
            epoch_done = not stopped or seen >= len(sampler)
            val_loss, val_acc = _evaluate(ddp, val_ds, world, device, per_rank, autocast)
            if epoch_done:
                training.step_scheduler(end_of_epoch=True, metric=1 - val_acc if not math.isnan(val_acc)
                                        else total / max(count, 1))
                epoch, seen = epoch + 1, 0
            train_loss = _mean(world, total, count)
            train_loss = train_loss[0] / max(train_loss[1], 1)
            rate = count * world.size / max(seconds, 1e-9)
            result = {"epoch": epoch if epoch_done else epoch + 1, "step": step, "train_loss": train_loss,
                      "val_loss": val_loss, "val_accuracy": val_acc, "lr": training.optimizer.param_groups[0]["lr"],
                      "images_per_second": rate, "seconds": seconds}
            rngs = _gather_rng(world)
            if world.main:
                with open(out / "metrics.csv", "a", newline="") as f:
                    csv.writer(f).writerow([f"{result[k]:.6g}" if isinstance(result[k], float) else result[k]
                                            for k in METRICS])
                progress.print(f"epoch {result['epoch']:>3}/{epochs}: train loss {train_loss:.4f}  val loss "
                               f"{val_loss:.4f}  val accuracy {100 * val_acc:.2f}%  lr {result['lr']:.3g}  "
                               f"{rate:,.0f} samples/s")
                _checkpoint(ckpt, {
                    "model": model.state_dict(), "optimizer": training.optimizer.state_dict(),
                    "scheduler": training.scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "epoch": epoch, "step": step, "seen": seen, "partial": (total, count), "rng": rngs[0],
                    "cuda_rng": rngs[1], "network": net.name, "file": net.file, "config": vars(cfg) | {"out": str(out)},
                })
    result["agree"] = _ranks_agree(model, world)
    result.update(model=model, losses=losses, world=world.size)
    return result


def _gather_rng(world: World) -> tuple[list, list]:
    """Every process's torch generator states (CPU, CUDA), for rank 0's checkpoint."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    if world.size == 1:
        return [cpu], [cuda] if cuda is not None else []
    states: list = [None] * world.size
    dist.all_gather_object(states, (cpu, cuda))
    return [s[0] for s in states], [s[1] for s in states if s[1] is not None]


def _ranks_agree(model: torch.nn.Module, world: World) -> bool:
    """Whether every process holds rank 0's weights exactly (DDP's promise, checked)."""
    if world.size == 1:
        return True
    flat = torch.cat([p.detach().flatten().float().cpu() for p in model.parameters()])
    ref = flat.clone()
    if dist.get_backend() == "nccl":
        ref = ref.cuda()
        dist.broadcast(ref, 0)
        ref = ref.cpu()
    else:
        dist.broadcast(ref, 0)
    bad = torch.tensor([0.0 if torch.equal(flat, ref) else 1.0])
    if dist.get_backend() == "nccl":
        bad = bad.cuda()
    dist.all_reduce(bad)
    return bad.item() == 0


class _Progress:
    """A rich progress bar (epoch, step, loss, throughput) on rank 0; silent elsewhere."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled, self.total, self.done = enabled, total, done
        self.bar = None

    def __enter__(self):
        from rich.console import Console

        self.console = Console(soft_wrap=True)
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=self.console,
                                transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("training", total=self.total, completed=self.done, status="")
        return self

    def update(self, epoch: int, epochs: int, step: int, loss: float, rate: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, description=f"epoch {epoch}/{epochs}",
                            status=f"step {step}  loss {loss:.4f}  {rate:,.0f} samples/s")

    def print(self, text: str) -> None:
        (self.bar.console if self.bar is not None else self.console).print(text, highlight=False)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
