"""Train the reference MNIST CNN and export it to ONNX with a metadata JSON.

The architecture is fixed because later stages convert it into a spiking network: ReLU only,
average pooling, no BatchNorm, biases allowed.

    Conv2d(1, 16, 5) -> ReLU -> AvgPool2d(2) -> Conv2d(16, 32, 5) -> ReLU -> AvgPool2d(2)
    -> Flatten -> Linear(512, 128) -> ReLU -> Linear(128, 10)

Input: (N, 1, 28, 28) float32 in [0, 1] (pixel / 255, no mean/std normalisation). Output: logits
(no softmax).

Usage (from the repository root):

    NEURO_DATA=../shared/datasets python experiments/train_mnist.py [--seed 0] [--epochs 20]
        [--out experiments/models]

Writes <out>/mnist_cnn.onnx and <out>/mnist_cnn.json. The script checks that onnxruntime on the
exported file predicts exactly what the torch model predicts on all 10,000 test images.
"""

from __future__ import annotations

import argparse
import functools
import datetime
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from neuro.ann.train import ONNX_OPSET, export_onnx, onnx_logits, predict_logits, train_epoch
from neuro.datasets import load

NUM_THREADS = 2
BATCH_SIZE = 128
MAX_LR = 2e-3  # peak learning rate of the one-cycle schedule (Adam)
WEIGHT_DECAY = 0.0
MAX_SHIFT = 2  # augmentation: random integer shifts of up to +-2 px in x and y
ONNX_SIZE_LIMIT = 2 * 1024 * 1024


def build_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5),  # 1x28x28 -> 16x24x24
        nn.ReLU(),
        nn.AvgPool2d(2),  # -> 16x12x12
        nn.Conv2d(16, 32, 5),  # -> 32x8x8
        nn.ReLU(),
        nn.AvgPool2d(2),  # -> 32x4x4
        nn.Flatten(),  # -> 512
        nn.Linear(512, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random integer offset in [-max_shift, max_shift] (zero fill)."""
    if max_shift == 0:
        return x
    n, c, h, w = x.shape
    xp = nn.functional.pad(x, (max_shift, max_shift, max_shift, max_shift))
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (n, 1, 1, w)
    return xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


export_onnx = functools.partial(export_onnx, input_shape=(1, 28, 28))
onnx_logits = functools.partial(onnx_logits, threads=NUM_THREADS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--out", type=Path, default=Path("experiments/models"), help="output directory")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    t_start = time.perf_counter()
    torch.set_num_threads(NUM_THREADS)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)  # shuffling and augmentation

    x_train, y_train = load("mnist", split="train")
    x_test, y_test = load("mnist", split="test")
    # torch.tensor copies: the loader may hand out read-only (cached) arrays.
    x_train, y_train = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.int64)
    x_test, y_test = torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test, dtype=torch.int64)
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, seed {args.seed}, epochs {args.epochs}")

    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = (len(x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=MAX_LR, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss()

    history = []
    train_seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss, _ = train_epoch(model, x_train, y_train, optimizer, scheduler, loss_fn, BATCH_SIZE,
                                    lambda xb: random_shift(xb, MAX_SHIFT, gen), gen, f"epoch {epoch}/{args.epochs}")
        dt = time.perf_counter() - t0
        train_seconds += dt
        acc = (predict_logits(model, x_test).argmax(1) == y_test).float().mean().item()
        history.append({"epoch": epoch, "train_loss": round(train_loss, 5), "test_accuracy": round(acc, 4),
                        "seconds": round(dt, 1)})
        print(f"epoch {epoch:2d}/{args.epochs}  loss {train_loss:.4f}  test acc {100 * acc:.2f} %  ({dt:.1f} s)")

    # Final evaluation and export.
    torch_logits = predict_logits(model, x_test).numpy()
    torch_pred = torch_logits.argmax(1)
    torch_acc = float((torch_pred == y_test.numpy()).mean())

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "mnist_cnn.onnx"
    export_onnx(model, onnx_path)
    ort_logits = onnx_logits(onnx_path, x_test.numpy())
    ort_pred = ort_logits.argmax(1)
    ort_acc = float((ort_pred == y_test.numpy()).mean())
    n_disagree = int((ort_pred != torch_pred).sum())
    max_abs_diff = float(np.abs(ort_logits - torch_logits).max())
    size = onnx_path.stat().st_size
    print(f"torch test acc {100 * torch_acc:.2f} %, onnxruntime test acc {100 * ort_acc:.2f} %, "
          f"disagreements {n_disagree}, max |logit diff| {max_abs_diff:.2e}, onnx size {size} bytes")
    if n_disagree:
        print(f"error: onnxruntime and torch disagree on {n_disagree} of {len(ort_pred)} test images", file=sys.stderr)
        return 1
    if size >= ONNX_SIZE_LIMIT:
        print(f"error: {onnx_path} is {size} bytes, over the {ONNX_SIZE_LIMIT} byte limit", file=sys.stderr)
        return 1

    meta = {
        "model": "mnist_cnn",
        "file": onnx_path.name,
        "file_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "file_bytes": size,
        "test_accuracy": ort_acc,
        "test_accuracy_source": "onnxruntime on the exported ONNX, all 10000 MNIST test images",
        "torch_test_accuracy": torch_acc,
        "onnx_torch_prediction_disagreements": n_disagree,
        "onnx_torch_max_abs_logit_diff": max_abs_diff,
        "test_images": int(len(y_test)),
        "seed": args.seed,
        "epochs": args.epochs,
        "training_time_s": round(train_seconds, 1),
        "total_time_s": round(time.perf_counter() - t_start, 1),
        "threads": NUM_THREADS,
        "training": {
            "optimizer": "Adam",
            "lr_schedule": f"OneCycleLR(max_lr={MAX_LR}, pct_start=0.15), stepped per batch",
            "weight_decay": WEIGHT_DECAY,
            "batch_size": BATCH_SIZE,
            "loss": "CrossEntropyLoss",
            "augmentation": f"random integer shifts of up to +-{MAX_SHIFT} px in x and y, zero fill",
            "history": history,
        },
        "architecture": [str(m) for m in build_model()],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input_name": "input",
        "output_name": "logits",
        "input_shape": ["N", 1, 28, 28],
        "input_dtype": "float32",
        "input_scaling": "pixel / 255, range [0, 1], no mean/std normalisation",
        "output": "logits for the 10 digit classes (no softmax)",
        "onnx_opset": ONNX_OPSET,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        "command": "python experiments/train_mnist.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
    }
    meta_path = args.out / "mnist_cnn.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {onnx_path} and {meta_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
