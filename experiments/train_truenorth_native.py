"""Train TrueNorth-native MNIST or CIFAR-10 networks (the ESS15/ESS16 approach); export integer codes and thresholds.

Every neuron respects a TrueNorth core from the start (docs/references.md section 1; ESS16's constraints):
trinary weights {-1, 0, +1} (a +/- axon pair per input, so at most 128 distinct inputs per neuron),
binary spiking activations, filter groups so that each neuron's inputs fit one core.

Architecture "a" (the default, shipped):

    input   28 x 28, 2 thermometer channels (pixel > 0.25, pixel > 0.75)   -> 2 x 28 x 28 bits
    conv1   2 -> 128 channels, 8 x 8, stride 4, pad 4                  -> 128 x 8 x 8     fan-in 128
    conv2   128 -> 512, 2 x 2, stride 2, 4 groups                      -> 512 x 4 x 4     fan-in 128
    conv3   512 -> 1024, 2 x 2, stride 2, 16 groups                    -> 1024 x 2 x 2    fan-in 128
    out     1024 -> 32 groups x 10 x P, 2 x 2, stride 2, 32 groups     -> 320 P x 1 x 1   fan-in 128

Architecture "b" (tried: 96.5 % against a's 97.4 % after 2 epochs, seed 0) starts with a 5 x 5 stride-2 conv
and needs a fourth 2 x 2 layer before the output to see the whole image.

Architecture "c" (CIFAR-10's default; sized to train in under an hour on one thread, far below one chip):

    input   3 x 32 x 32, 4 thermometer levels per colour (> 0.2, 0.4, 0.6, 0.8)   -> 12 x 32 x 32 bits
    conv1   12 -> 128, 3 x 3, stride 2, pad 1                          -> 128 x 16 x 16   fan-in 108
    conv2   128 -> 256, 2 x 2, stride 2, 4 groups                      -> 256 x 8 x 8     fan-in 128
    conv3   256 -> 256, 3 x 3, stride 1, pad 1, 32 groups              -> 256 x 8 x 8     fan-in 72
    conv4   256 -> 512, 2 x 2, stride 2, 8 groups                      -> 512 x 4 x 4     fan-in 128
    conv5   512 -> 1024, 2 x 2, stride 2, 16 groups                    -> 1024 x 2 x 2    fan-in 128
    out     1024 -> 32 groups x 10 x P, 2 x 2, stride 2, 32 groups     -> 320 P x 1 x 1   fan-in 128

CIFAR-10 training adds random horizontal flips to the shifts.

Each layer: a conv with trinary codes, batch norm, Heaviside spike (the output layer too). Output channel c
of a group votes for class (c mod 10 P) // P; a class's score is its number of output spikes (population code).

Training: latent float weights, ternarised per output channel in the forward pass (Li, Zhang & Liu 2016,
"Ternary weight networks", arXiv:1605.04711: keep |w| > 0.7 mean |w|) with a straight-through gradient; spikes
are Heaviside forward with a triangular surrogate gradient max(0, 1 - |x|); cross-entropy on the class scores
times a learned temperature. Adam with a one-cycle schedule, random +-2 px shifts; after each epoch the batch
norms' eval statistics are recomputed over 10,000 training images.

Export: batch norm folds into an integer threshold per neuron: the neuron fires iff a s + b >= 0 with
s = sum_i c_i x_i, i.e. s >= ceil(-b / a) for a > 0; for a < 0 the codes are negated (-s >= ceil(b / a));
thresholds are clipped to [-fan_in, fan_in + 1], which keeps every decision. The test accuracy recorded is
that of the exported integers (``chips.truenorth.native.forward``, numpy only).

Usage (from the repository root):

    NEURO_DATA=../shared/datasets python experiments/train_truenorth_native.py --seeds 0 1 2 [--epochs 6]
        [--dataset mnist] [--arch a] [--pop 4] [--jobs 2] [--out experiments/models] [--time-limit MINUTES]

Writes <out>/truenorth_native.npz (MNIST; truenorth_native_cifar10.npz for CIFAR-10: one set of arrays per
member) and the .json beside it; ``--add`` appends the new members to the model already there (its members
are kept as they are). After every epoch each member is also written alone to <stem>.seed<S>.npz / .json
(removed at the end), so a run cut short leaves a usable model. ``--time-limit``: a member starts no epoch
that would end after this many minutes of its training (the first always runs; its longest epoch so far,
evaluation included, as the estimate); the learning-rate schedule is then cut short too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from chips.truenorth.native import DATASET_LEVELS, Layer, Member, encode, forward, load_members, save_members
from neuro.ann.train import train_epoch
from neuro.atomic import atomic_path
from neuro.datasets import load

NUM_THREADS = 1
BATCH_SIZE = 100
MAX_LR = 1e-2           # one-cycle peak (Adam); 1e-3 and 3e-3 learned slower in 200-step trials
RECAL_IMAGES = 10000    # training images whose batch statistics become the batch norms' eval statistics
MAX_SHIFT = 2           # augmentation: random integer shifts up to +-2 px
TWN_DELTA = 0.7         # ternary threshold = 0.7 mean |w| per output channel (Li, Zhang & Liu 2016)
BN_EPS = 1e-4
# (in, out, kernel, stride, pad, groups) of the hidden layers, then (in, groups) of the output layer (2 x 2, stride 2)
ARCHS = {
    "a": (((2, 128, 8, 4, 4, 1), (128, 512, 2, 2, 0, 4), (512, 1024, 2, 2, 0, 16)), (1024, 32)),
    "b": (((2, 32, 5, 2, 4, 1), (32, 128, 2, 2, 0, 1), (128, 512, 2, 2, 0, 4), (512, 512, 2, 2, 0, 16)), (512, 16)),
    "c": (((12, 128, 3, 2, 1, 1), (128, 256, 2, 2, 0, 4), (256, 256, 3, 1, 1, 32), (256, 512, 2, 2, 0, 8),
           (512, 1024, 2, 2, 0, 16)), (1024, 32)),
}
# per dataset: default architecture, model file stem, random horizontal flips, name in the records
DATASETS = {"mnist": ("a", "truenorth_native", False, "MNIST"),
            "cifar10": ("c", "truenorth_native_cifar10", True, "CIFAR-10 (JPEG copy: pixels are JPEG re-encodings)")}
CLASSES = 10


class _Spike(torch.autograd.Function):
    """Heaviside forward (x >= 0), triangular surrogate max(0, 1 - |x|) backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - x.abs()).clamp(min=0)


def ternary(w: torch.Tensor) -> torch.Tensor:
    """Codes sign(w) [|w| > 0.7 mean |w|] per output channel, straight-through to w."""
    flat = w.flatten(1)
    delta = TWN_DELTA * flat.abs().mean(1)
    codes = torch.sign(flat) * (flat.abs() > delta[:, None])
    return (w + (codes.view_as(w) - w).detach())


class TernaryConv(nn.Module):
    """Grouped conv with ternary codes, batch norm and a spike."""

    def __init__(self, cin, cout, k, stride, pad, groups):
        super().__init__()
        self.cin, self.cout, self.k, self.stride, self.pad, self.groups = cin, cout, k, stride, pad, groups
        self.weight = nn.Parameter(torch.randn(cout, cin // groups, k, k) * (cin // groups * k * k) ** -0.5)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def pre(self, x):
        return self.bn(F.conv2d(x, ternary(self.weight), stride=self.stride, padding=self.pad, groups=self.groups))

    def forward(self, x):
        return _Spike.apply(self.pre(x))

    def export(self) -> Layer:
        """Integer codes and thresholds: fires iff sum(codes x) >= theta, as the trained layer in eval mode."""
        w = self.weight.detach().double()
        flat = w.flatten(1)
        codes = (torch.sign(flat) * (flat.abs() > TWN_DELTA * flat.abs().mean(1)[:, None])).view_as(w)
        bn = self.bn
        a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        b = bn.bias.detach().double() - a * bn.running_mean.double()
        fan_in = codes[0].numel()
        flip = a < 0
        codes[flip] = -codes[flip]
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = a.numpy(), b.numpy()
            theta = np.where(a != 0, np.ceil(-b / np.abs(a)), np.where(b >= 0, -np.inf, np.inf))
        theta = np.clip(theta, -fan_in, fan_in + 1).astype(np.int32)
        return Layer(codes=codes.numpy().astype(np.int8), theta=theta, stride=self.stride, pad=self.pad,
                     groups=self.groups)


class NativeNet(nn.Module):
    def __init__(self, arch: str, pop: int):
        super().__init__()
        self.pop = pop
        hidden, (cin, out_groups) = ARCHS[arch]
        layers = [TernaryConv(*h) for h in hidden]
        layers.append(TernaryConv(cin, out_groups * CLASSES * pop, 2, 2, 0, out_groups))
        self.layers = nn.ModuleList(layers)
        self.log_temp = nn.Parameter(torch.tensor(0.0))
        n_out = layers[-1].cout
        self.register_buffer("vote", F.one_hot((torch.arange(n_out) % (CLASSES * pop)) // pop, CLASSES).float())

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        scores = x.sum((2, 3)) @ self.vote                        # spikes per class
        return scores * torch.exp(self.log_temp) / self.vote.sum(0).max().sqrt()

    def export(self) -> Member:
        classes = ((np.arange(self.layers[-1].cout) % (CLASSES * self.pop)) // self.pop).astype(np.int32)
        return Member(layers=[layer.export() for layer in self.layers], classes=classes)


@torch.no_grad()
def recalibrate(model: NativeNet, x: torch.Tensor, levels: tuple) -> None:
    """Batch norm eval statistics = the mean over ``x`` of train-mode batch statistics (the running averages
    lag the fast-changing binary network: 27 % vs 75 % test accuracy after 300 steps in a trial)."""
    bns = [layer.bn for layer in model.layers]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None                                        # cumulative average
    model.train()
    for start in range(0, len(x), 500):
        model(torch.from_numpy(encode(x[start:start + 500].numpy(), levels)).float())
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random integer offset in [-max_shift, max_shift] (zero fill)."""
    n, c, h, w = x.shape
    xp = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def write_model(npz: Path, members: list, meta: dict) -> None:
    """Write the members' integers and their record, each file atomically."""
    with atomic_path(npz) as tmp:
        save_members(tmp, members)
    meta = {"model": meta.get("model"), "file": npz.name, "file_bytes": npz.stat().st_size} | meta
    with atomic_path(npz.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def train_member(seed: int, epochs: int, arch: str, pop: int, dataset: str = "mnist", checkpoint: Path | None = None,
                 time_limit_s: float = float("inf")) -> tuple[Member, dict]:
    """Train one member on one thread; return its exported integers and its record (history, accuracy, time).
    ``checkpoint``: write the member alone there after every epoch; ``time_limit_s``: start no epoch that
    would end later (module docstring)."""
    torch.set_num_threads(NUM_THREADS)
    levels, flips = DATASET_LEVELS[dataset], DATASETS[dataset][2]
    x_train, y_train = load(dataset, split="train")
    x_test, y_test = load(dataset, split="test")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = NativeNet(arch, pop)
    opt = torch.optim.Adam(model.parameters(), lr=MAX_LR)
    steps = (len(x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, epochs=epochs, steps_per_epoch=steps,
                                                pct_start=0.15)
    xt = torch.tensor(x_train, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.int64)
    test_bits = encode(x_test, levels)

    def augment(xb):  # shifts (and flips), then the thermometer code the chip's input axons carry
        xb = random_shift(xb, MAX_SHIFT, gen)
        return torch.from_numpy(encode((random_flip(xb, gen) if flips else xb).numpy(), levels)).float()

    history, t_train, t_start, longest = [], 0.0, time.perf_counter(), 0.0
    for epoch in range(1, epochs + 1):
        if history and time.perf_counter() - t_start + longest > time_limit_s:
            print(f"seed {seed}: time limit: stopping after epoch {epoch - 1}/{epochs}", flush=True)
            break
        t0 = time.perf_counter()
        loss, train_acc = train_epoch(model, xt, yt, opt, sched, F.cross_entropy, BATCH_SIZE, augment, gen,
                                      f"seed {seed} epoch {epoch}/{epochs}")
        dt = time.perf_counter() - t0
        t_train += dt
        recalibrate(model, xt[:RECAL_IMAGES], levels)
        member = model.export()
        acc = float((forward(member, test_bits)[1].argmax(1) == y_test).mean())
        longest = max(longest, time.perf_counter() - t0)
        history.append({"epoch": epoch, "train_loss": round(loss, 5),
                        "train_accuracy": round(train_acc, 4), "test_accuracy": round(acc, 4),
                        "seconds": round(dt, 1)})
        print(f"seed {seed} epoch {epoch}/{epochs}  loss {loss:.4f}  train {100 * train_acc:.2f} %"
              f"  test (integer export) {100 * acc:.2f} %  ({dt:.0f} s)", flush=True)
        record = {"seed": seed, "test_accuracy": acc, "training_time_s": round(t_train, 1), "history": history}
        if checkpoint is not None:
            write_model(checkpoint, [member], {"model": checkpoint.stem,
                                               "checkpoint_of": f"seed {seed}, epoch {epoch}/{epochs}", **record})
    if len(history) < epochs:
        record["stopped_early"] = f"time limit {time_limit_s / 60:.0f} min: {len(history)} of {epochs} epochs"
    return member, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one ensemble member per seed")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per member (default 6)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="data set (default mnist)")
    parser.add_argument("--arch", choices=sorted(ARCHS), help="architecture (module docstring; default a for "
                        "MNIST, c for CIFAR-10)")
    parser.add_argument("--pop", type=int, default=4, help="output neurons per class and output group (default 4)")
    parser.add_argument("--jobs", type=int, default=1, help="members trained at once, one process and thread each")
    parser.add_argument("--out", type=Path, default=Path("experiments/models"), help="output directory")
    parser.add_argument("--add", action="store_true", help="append the new members to the model already in --out")
    parser.add_argument("--time-limit", type=float, default=float("inf"),
                        help="minutes of training per member after which no epoch starts (module docstring)")
    args = parser.parse_args(argv)
    arch, stem, _, data_name = DATASETS[args.dataset]
    args.arch = args.arch or arch
    npz, json_path = args.out / f"{stem}.npz", args.out / f"{stem}.json"
    command = "python experiments/train_truenorth_native.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.add and not (npz.exists() and json_path.exists()):
        parser.error(f"--add: no model to add to in {args.out}: train one without --add first")
    old_members, old = (load_members(npz), json.loads(json_path.read_text())) if args.add else ([], {})
    checkpoints = [args.out / f"{stem}.seed{seed}.npz" for seed in args.seeds]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        n = len(args.seeds)
        done = list(pool.map(train_member, args.seeds, [args.epochs] * n, [args.arch] * n, [args.pop] * n,
                             [args.dataset] * n, checkpoints, [60 * args.time_limit] * n))
    members = old_members + [d[0] for d in done]
    records = old.get("members", []) + [d[1] for d in done]
    x_test, y_test = load(args.dataset, split="test")
    test_bits = encode(x_test, DATASET_LEVELS[args.dataset])
    scores = sum(forward(m, test_bits)[1] for m in members)
    ensemble_acc = float((scores.argmax(1) == y_test).mean())
    print(f"ensemble of {len(members)}: {100 * ensemble_acc:.2f} %")
    shape = x_test.shape[1:]
    in_shape = " x ".join(str(d) for d in (shape[1:] if shape[0] == 1 else shape))
    meta = {
        "model": stem,
        "members": records,
        "ensemble_test_accuracy": ensemble_acc,
        "test_accuracy_source": f"numpy integer forward of the exported codes and thresholds, {len(y_test)} "
                                f"{data_name} test images",
        "epochs": args.epochs,
        "threads": f"{NUM_THREADS} per member, {args.jobs} members at once",
        "architecture": {"input": f"{in_shape}, thermometer channels pixel > {list(DATASET_LEVELS[args.dataset])}",
                         "name": args.arch,
                         "hidden (in, out, kernel, stride, pad, groups)": [list(h) for h in ARCHS[args.arch][0]],
                         "output": f"{ARCHS[args.arch][1][0]} -> {ARCHS[args.arch][1][1]} groups x {CLASSES} x "
                                   f"{args.pop}, 2 x 2, stride 2; class of channel c = (c mod {CLASSES * args.pop}) "
                                   f"// {args.pop}"},
        "training": {"optimizer": "Adam", "lr_schedule": f"OneCycleLR(max_lr={MAX_LR}, pct_start=0.15) per batch",
                     "batch_size": BATCH_SIZE, "loss": "cross-entropy on spike counts per class x learned temperature",
                     "weights": f"ternary codes per output channel, |w| > {TWN_DELTA} mean |w| (TWN), straight-through",
                     "spikes": "Heaviside forward, max(0, 1 - |x|) surrogate backward",
                     "augmentation": f"random integer shifts up to +-{MAX_SHIFT} px, zero fill"
                                     + (", random horizontal flips" if DATASETS[args.dataset][2] else "")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "command": command,
    }
    if args.add:
        meta["previous"] = {k: v for k, v in old.items() if k != "members"}   # how the first members were made
    write_model(npz, members, meta)
    for path in checkpoints:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
    print(f"wrote {npz} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
