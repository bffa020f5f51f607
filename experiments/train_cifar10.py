"""Train the reference CIFAR-10 CNN and export it to ONNX with a metadata JSON.

A VGG-style network built for ANN-to-SNN conversion: 3x3 convolutions with BatchNorm while training,
ReLU (or QCFS, ``--qcfs L``), average pooling, no max pooling, one dense layer:

    [normalise] Conv(3, 32, p1) Conv(32, 32, p1) AvgPool(2)           32x32 -> 16x16
    Conv(32, 64, p0) Conv(64, 64, p1) AvgPool(2)                      -> 14x14 -> 7x7
    Conv(64, 128, p0) Conv(128, 128, p1) Flatten Linear(3200, 10)     -> 5x5

(every Conv 3x3 followed by BatchNorm and the activation). The conv after each pooling is unpadded:
the Loihi and TrueNorth compilers fold an average pool into the next layer only when that conv has no
padding (else they need spiking neurons after the pool, ``pool_neurons``, which TrueNorth's mapper
cannot place). At export the BatchNorms are
folded into their convolutions and the per-channel input normalisation (the training split's mean/std,
``neuro.datasets.channel_stats``) into the first convolution, so the ONNX model is plain
Conv/Relu/AveragePool/Flatten/Gemm (QCFS: see below) and takes images in [0, 1] directly, as the converter wants.
The folding is exact because the network zero-pads the *raw* image before normalising it
(``PadNormalise``): conv(W, (pad(x) - m) / s) = conv(W / s, pad(x)) + b - sum W m / s.

``--qcfs L``: train with the quantisation-clip-floor-shift activation of Bu et al. 2022 ("Optimal
ANN-SNN conversion for high-accuracy and ultra-low-latency spiking neural networks", ICLR) with L
levels and a trainable threshold per layer. ONNX has no QCFS op: the export writes each as the standard ops
Mul(L / threshold), Add(0.5), Floor, Clip(0, L), Mul(threshold / L) (``neuro.baselines.torch_net.qcfs_module``,
the float32 constants of ``neuro.graph.QCFS``), which ``neuro.ann`` imports back as one QCFS layer, so the file
computes the trained QCFS network (BatchNorm folded). The thresholds also go into the metadata
(``qcfs_thresholds``, one per QCFS layer, in order); ``neuro convert`` takes each QCFS layer's scale from the
file (``--scales model`` from the metadata, which must agree), which makes the SNN's rate the QCFS activation
(``neuro.convert``).

``--threads N``: torch and onnxruntime threads (default 2). After every epoch the model as it is then is
folded, exported, checked and written (``<name>.onnx`` then ``<name>.json``, each atomically;
``epochs_completed`` in the metadata), so a run cut short leaves the last completed epoch's model: with
the one-cycle schedule that is not the model a full run gives. ``neuro.ann``'s own accuracy (minutes on
10,000 images) is measured for the last epoch's model only.

Input: (N, 3, 32, 32) float32 in [0, 1] (pixel / 255). Output: logits (no softmax).

Usage (from the repository root):

    NEURO_DATA=../shared/datasets python experiments/train_cifar10.py [--seed 0] [--epochs 12]
        [--qcfs L] [--threads 2] [--out experiments/models] [--name cifar10_cnn]

Writes <out>/<name>.onnx and <out>/<name>.json (after every epoch). The script checks that the folded
model computes what the trained one does, that onnxruntime on the exported file predicts exactly what the folded torch model
predicts on all 10,000 test images (QCFS: all but ``neuro.ann.train.allowed_disagreements``, floor ties), and reports
the accuracy ``neuro.ann.load_model`` gets from the file.
"""

from __future__ import annotations

import argparse
import functools
import datetime
import hashlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from neuro import datasets, graph
from neuro.ann.train import ONNX_OPSET, allowed_disagreements, export_onnx, onnx_logits, predict_logits, train_epoch
from neuro.atomic import atomic_path
from neuro.baselines.torch_net import qcfs_module

NUM_THREADS = 2
BATCH_SIZE = 128
MAX_LR = 0.1  # peak learning rate of the one-cycle schedule (SGD, Nesterov momentum 0.9)
WEIGHT_DECAY = 5e-4
MAX_SHIFT = 4  # augmentation: random crop of the image zero-padded by 4 px (= random shifts of up to +-4 px)
WIDTHS = (32, 64, 128)  # channels of the three conv blocks (two convs each)
QCFS_INIT = 8.0  # initial QCFS threshold (Bu et al. 2022's code starts every layer at 8)
ONNX_SIZE_LIMIT = 2 * 1024 * 1024


class PadNormalise(nn.Module):
    """Zero-pad the raw image, then ``(x - mean) / std`` per channel (so the normalisation folds exactly)."""

    def __init__(self, mean, std, pad: int):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.pad = pad

    def forward(self, x):
        return (nn.functional.pad(x, (self.pad,) * 4) - self.mean) / self.std


class _FloorSTE(torch.autograd.Function):
    """floor in the forward pass, identity gradient (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class QCFS(nn.Module):
    """lambda * clip(floor(x L / lambda + 1/2) / L, 0, 1), lambda trainable (Bu et al. 2022, eq. 19)."""

    def __init__(self, levels: int, init: float = QCFS_INIT):
        super().__init__()
        self.levels = int(levels)
        self.threshold = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x):
        y = _FloorSTE.apply(x / self.threshold * self.levels + 0.5) / self.levels
        return torch.clamp(y, 0, 1) * self.threshold

    def extra_repr(self):
        return f"levels={self.levels}"


def build_model(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), widths=WIDTHS, qcfs: int | None = None) -> nn.Sequential:
    """The training network (BatchNorm, input normalisation as a layer); ``export_model`` folds both away."""
    def act():
        return QCFS(qcfs) if qcfs else nn.ReLU()

    layers: list[nn.Module] = [PadNormalise(mean, std, 1)]
    cin, side = len(mean), 32
    for b, width in enumerate(widths):
        if b:  # an unpadded conv after each pooling (foldable on the chips), then a padded one
            layers.append(nn.AvgPool2d(2))
            side //= 2
        for k in range(2):
            # the first conv's padding is done by PadNormalise (so that the normalisation folds exactly)
            pad = 1 if k else 0
            layers += [nn.Conv2d(cin, width, 3, padding=pad, bias=False), nn.BatchNorm2d(width), act()]
            side -= 2 * (1 - pad) if b else 0
            cin = width
    layers += [nn.Flatten(), nn.Linear(cin * side * side, 10)]
    return nn.Sequential(*layers)


@torch.no_grad()
def export_model(model: nn.Sequential) -> nn.Sequential:
    """The same map as plain Conv(bias)/ReLU/AvgPool/Flatten/Linear: BatchNorm folded into each conv, the
    input normalisation into the first conv (its padding restored to 1), QCFS by a module with fixed
    constants that exports to the standard ONNX ops ``neuro.ann`` imports as ``graph.QCFS``."""
    mods = list(model)
    if not isinstance(mods[0], PadNormalise):
        raise ValueError("the model must start with PadNormalise")
    norm, out, i = mods[0], [], 1
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            w = m.weight * scale[:, None, None, None]
            b = bn.bias - bn.running_mean * scale + (m.bias * scale if m.bias is not None else 0)
            padding = m.padding
            if not out:  # the first conv: fold (x - mean) / std; PadNormalise's zero padding moves back into it
                b = b - (w * (norm.mean / norm.std)).sum(dim=(1, 2, 3))
                w = w / norm.std
                padding = (norm.pad, norm.pad)
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, padding, bias=True)
            conv.weight.copy_(w)
            conv.bias.copy_(b)
            out.append(conv)
            i += 2
            continue
        out.append(qcfs_module(graph.QCFS(float(m.threshold), m.levels)) if isinstance(m, QCFS) else m)
        i += 1
    return nn.Sequential(*out).eval()


def qcfs_thresholds(model: nn.Module) -> list[float]:
    return [float(m.threshold.detach()) for m in model.modules() if isinstance(m, QCFS)]


def augment(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded image (a random shift of up to +-max_shift px) and random horizontal flip."""
    n, c, h, w = x.shape
    xp = nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(0), cols)  # (n, w)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + cols)[:, None, None, :]  # (n, 1, 1, w)
    return xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


export_onnx = functools.partial(export_onnx, input_shape=(3, 32, 32))
onnx_logits = functools.partial(onnx_logits, threads=NUM_THREADS)


def write_outputs(model: nn.Sequential, args, argv, x_test, y_test, stats, history, train_seconds, t_start,
                  trained_logits: torch.Tensor) -> int:
    """Fold and export the model as it is now, check the export, and write <name>.onnx and <name>.json
    atomically. Called after every epoch, so a run cut short leaves the last completed epoch's model
    (``epochs_completed`` in the metadata; ``neuro_ann_test_accuracy`` only after the last). Returns the
    exit status (1: a check failed, nothing written)."""
    from neuro import ann  # the project's own importer, as the converter reads the file

    trained_logits = trained_logits.numpy()
    folded = export_model(model)
    torch_logits = predict_logits(folded, x_test).numpy()
    torch_pred = torch_logits.argmax(1)
    torch_acc = float((torch_pred == y_test.numpy()).mean())
    trained_acc = float((trained_logits.argmax(1) == y_test.numpy()).mean())
    fold_diff = float(np.abs(torch_logits - trained_logits).max())
    fold_disagree = int((torch_pred != trained_logits.argmax(1)).sum())

    onnx_path, meta_path = args.out / f"{args.name}.onnx", args.out / f"{args.name}.json"
    with tempfile.TemporaryDirectory() as tmp:  # checked before it replaces the previous epoch's files
        tmp_onnx = Path(tmp) / onnx_path.name
        export_onnx(folded, tmp_onnx)
        onnx_bytes = tmp_onnx.read_bytes()
        ort_logits = onnx_logits(tmp_onnx, x_test.numpy(), threads=args.threads)
        # neuro.ann's numpy forward pass takes minutes on 10,000 images: only for the last epoch's model
        final = len(history) == args.epochs
        neuro_acc = ann.load_model(str(tmp_onnx)).accuracy(x_test.numpy(), y_test.numpy()) if final else None
    ort_pred = ort_logits.argmax(1)
    ort_acc = float((ort_pred == y_test.numpy()).mean())
    n_disagree = int((ort_pred != torch_pred).sum())
    max_abs_diff = float(np.abs(ort_logits - torch_logits).max())
    size = len(onnx_bytes)
    neuro_text = "-" if neuro_acc is None else f"{100 * neuro_acc:.2f} %"
    print(f"epoch {len(history)}: trained (BatchNorm) test acc {100 * trained_acc:.2f} %, folded torch "
          f"{100 * torch_acc:.2f} % (max |logit diff| {fold_diff:.2e}, {fold_disagree} predictions differ), "
          f"onnxruntime {100 * ort_acc:.2f} %, neuro.ann {neuro_text}, onnx/torch disagreements {n_disagree}, "
          f"max |logit diff| {max_abs_diff:.2e}, onnx size {size} bytes")
    if args.qcfs:
        print(f"QCFS thresholds (exported as QCFS node sequences): {qcfs_thresholds(model)}")
    allowed = allowed_disagreements(len(ort_pred), quantised=bool(args.qcfs))
    if n_disagree > allowed:
        print(f"error: onnxruntime and torch disagree on {n_disagree} of {len(ort_pred)} test images (allowed: "
              f"{allowed})", file=sys.stderr)
        return 1
    if size >= ONNX_SIZE_LIMIT:
        print(f"error: {onnx_path} is {size} bytes, over the {ONNX_SIZE_LIMIT} byte limit", file=sys.stderr)
        return 1

    meta = {
        "model": args.name,
        "file": onnx_path.name,
        "file_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "file_bytes": size,
        "dataset": "cifar10: the shared JPEG copy (cifar10-jpeg.tar.xz; pixels are JPEG re-encodings, not the "
                   "canonical CIFAR-10 ones, see docs/datasets.md)",
        "test_accuracy": ort_acc,
        "test_accuracy_source": "onnxruntime on the exported ONNX, all 10000 test images of the JPEG copy",
        "torch_test_accuracy": torch_acc,
        "trained_model_test_accuracy": trained_acc,
        "neuro_ann_test_accuracy": neuro_acc,  # None before the last epoch
        "fold_max_abs_logit_diff": fold_diff,
        "fold_prediction_changes": fold_disagree,
        "onnx_torch_prediction_disagreements": n_disagree,
        "onnx_torch_max_abs_logit_diff": max_abs_diff,
        "test_images": int(len(y_test)),
        "seed": args.seed,
        "epochs": args.epochs,
        "epochs_completed": len(history),
        "training_time_s": round(train_seconds, 1),
        "total_time_s": round(time.perf_counter() - t_start, 1),
        "threads": args.threads,
        datasets.NORMALISATION_KEY: stats,
        "normalisation_folded_into_first_conv": True,
        "training": {
            "optimizer": "SGD, Nesterov momentum 0.9",
            "lr_schedule": f"OneCycleLR(max_lr={MAX_LR}, pct_start=0.25), stepped per batch",
            "weight_decay": WEIGHT_DECAY,
            "batch_size": BATCH_SIZE,
            "loss": "CrossEntropyLoss",
            "augmentation": f"random crop of the image zero-padded by {MAX_SHIFT} px, random horizontal flip",
            "activation": f"QCFS, L = {args.qcfs} (Bu et al. 2022)" if args.qcfs else "ReLU",
            "history": history,
        },
        "qcfs_levels": args.qcfs or None,
        "qcfs_thresholds": qcfs_thresholds(model) or None,
        "trained_architecture": [str(m) for m in model],
        "architecture": [str(m) for m in folded],
        "parameters": int(sum(p.numel() for p in folded.parameters())),
        "input_name": "input",
        "output_name": "logits",
        "input_shape": ["N", 3, 32, 32],
        "input_dtype": "float32",
        "input_scaling": "pixel / 255, range [0, 1]: the per-channel normalisation (under 'normalisation') is "
                         "folded into the first convolution; do not apply it again",
        "output": "logits for the 10 CIFAR-10 classes (no softmax)",
        "onnx_opset": ONNX_OPSET,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        "command": "python experiments/train_cifar10.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    with atomic_path(onnx_path) as tmp:
        tmp.write_bytes(onnx_bytes)
    with atomic_path(meta_path) as tmp:  # after the model: the metadata never describes a file not yet there
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {onnx_path} and {meta_path} (epoch {len(history)} of {args.epochs})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12, the shipped model)")
    parser.add_argument("--qcfs", type=int, default=0, metavar="L",
                        help="train with QCFS activations of L levels (Bu et al. 2022); 0 = ReLU (default)")
    parser.add_argument("--threads", type=int, default=NUM_THREADS,
                        help=f"torch and onnxruntime CPU threads (default {NUM_THREADS})")
    parser.add_argument("--out", type=Path, default=Path("experiments/models"), help="output directory")
    parser.add_argument("--name", default="cifar10_cnn", help="file stem of the outputs (default cifar10_cnn)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.qcfs < 0:
        parser.error("--qcfs must be 0 (ReLU) or a number of levels >= 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)  # shuffling and augmentation

    x_train, y_train = datasets.load("cifar10", split="train")
    x_test, y_test = datasets.load("cifar10", split="test")
    stats = datasets.channel_stats(x_train)
    # torch.tensor copies: the loader hands out read-only (cached) arrays.
    x_train, y_train = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.int64)
    x_test, y_test = torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test, dtype=torch.int64)
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, seed {args.seed}, epochs {args.epochs}, "
          f"qcfs {args.qcfs or 'off'}, normalisation {stats}")

    model = build_model(stats["mean"], stats["std"], qcfs=args.qcfs or None)
    optimizer = torch.optim.SGD(model.parameters(), lr=MAX_LR, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = (len(x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=MAX_LR, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.25
    )
    loss_fn = nn.CrossEntropyLoss()

    history = []
    train_seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(model, x_train, y_train, optimizer, scheduler, loss_fn, BATCH_SIZE,
                                            lambda xb: augment(xb, MAX_SHIFT, gen), gen, f"epoch {epoch}/{args.epochs}")
        dt = time.perf_counter() - t0
        train_seconds += dt
        logits_test = predict_logits(model, x_test)
        acc = (logits_test.argmax(1) == y_test).float().mean().item()
        history.append({"epoch": epoch, "train_loss": round(train_loss, 5),
                        "train_accuracy": round(train_acc, 4), "test_accuracy": round(acc, 4),
                        "seconds": round(dt, 1)})
        print(f"epoch {epoch:2d}/{args.epochs}  loss {train_loss:.4f}  train acc {100 * train_acc:.2f} %  "
              f"test acc {100 * acc:.2f} %  ({dt:.1f} s)", flush=True)

        status = write_outputs(model, args, argv, x_test, y_test, stats, history, train_seconds, t_start,
                               trained_logits=logits_test)
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
