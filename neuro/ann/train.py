"""What the training scripts in ``experiments/`` share: the seeded epoch, evaluation and the checked ONNX export
(torch; imported only by them)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm


def train_epoch(model, x, y, optimizer, scheduler, loss_fn, batch_size: int, augment, gen: torch.Generator,
                desc: str) -> tuple[float, float]:
    """One pass over ``(x, y)`` in an order drawn from ``gen``, each batch through ``augment(batch)`` (which may
    draw from ``gen`` too), the scheduler stepped per batch: the mean loss and the training accuracy.

    The draws from ``gen`` come in a fixed order (the permutation, then each batch's augmentation), so a seed
    gives the same model on any machine with the same versions."""
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    steps = (len(x) + batch_size - 1) // batch_size
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=1.0,
               disable=None)  # disable=None: no bar when stdout is not a terminal
    for step in bar:
        idx = perm[step * batch_size : (step + 1) * batch_size]
        logits = model(augment(x[idx]))
        loss = loss_fn(logits, y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(1) == y[idx]).sum())
        seen += len(idx)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    bar.close()
    return total_loss / seen, correct / seen


EVAL_BATCH_SIZE = 1000   # images per forward pass when evaluating (memory, not results)
ONNX_OPSET = 17          # the opset every shipped model file is written with
# QCFS networks: floor() is discontinuous, so a pre-activation within float32 rounding of a level boundary goes to
# different levels in onnxruntime and torch (different convolution summation orders) and can change a prediction.
# Measured on experiments/models/cifar10_qcfs.onnx: 123 of 10,000 test images had logits differing by over 1e-4
# between the two, 3 predictions differed. A ReLU network must agree on every prediction.
QCFS_DISAGREEMENT_LIMIT = 0.001  # the fraction of predictions a QCFS network's export may change (our choice)


def allowed_disagreements(n_images: int, quantised: bool) -> int:
    """How many of ``n_images`` predictions onnxruntime may change against torch: 0 for a ReLU network,
    ``QCFS_DISAGREEMENT_LIMIT`` of them for a quantised (QCFS) one (floor ties)."""
    return int(QCFS_DISAGREEMENT_LIMIT * n_images) if quantised else 0


@torch.no_grad()
def predict_logits(model, x: torch.Tensor) -> torch.Tensor:
    """The model's logits on ``x`` in eval mode, a batch of EVAL_BATCH_SIZE at a time."""
    model.eval()
    return torch.cat([model(x[i : i + EVAL_BATCH_SIZE]) for i in range(0, len(x), EVAL_BATCH_SIZE)])


def export_onnx(model, path: Path, input_shape: tuple[int, ...]) -> None:
    """``model`` as an ONNX file taking (batch, *input_shape) "input" and giving "logits", checked by onnx."""
    import onnx

    model.eval()
    dummy = torch.zeros(1, *input_shape, dtype=torch.float32)
    # dynamo=False: the TorchScript exporter needs no extra packages (the dynamo one needs onnxscript).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(path)))


def onnx_logits(path: Path, x: np.ndarray, threads: int) -> np.ndarray:
    """onnxruntime's logits for ``x`` from the file at ``path`` (CPU, ``threads`` intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    outs = [sess.run(["logits"], {"input": x[i : i + EVAL_BATCH_SIZE]})[0] for i in range(0, len(x), EVAL_BATCH_SIZE)]
    return np.concatenate(outs)
