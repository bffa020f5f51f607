"""Rewrite a QCFS-trained model's ReLU export as the QCFS network it was trained as, without retraining.

``train_cifar10.py --qcfs L`` used to export ReLU where each QCFS activation was (ONNX has no QCFS op) and
kept the trained thresholds in the metadata (``qcfs_levels``, ``qcfs_thresholds``). The folded weights in
that file and those thresholds are the whole QCFS network: this script puts ``graph.QCFS(threshold, L)``
in place of each ReLU and exports it the way the training script now does (``neuro.baselines.to_torch``,
whose QCFS module writes Mul, Add, Floor, Clip, Mul; ``neuro.ann.train.export_onnx``). Checked before
anything is replaced: the new file's Conv/Gemm weights equal the old file's, ``neuro.ann`` imports the
thresholds back, and onnxruntime predicts what the torch network predicts on the test images (all but
``neuro.ann.train.allowed_disagreements``: floor ties). The file is
replaced and its metadata updated in place (atomically): size, sha256, the accuracies measured here
(onnxruntime, torch, ``neuro.ann``, all test images) and ``qcfs_rewrite`` saying what was done; the
``fold_*`` fields (trained against folded network) go to null, as the trained weights are not kept.

    NEURO_DATA=../shared/datasets python experiments/qcfs_onnx.py experiments/models/cifar10_qcfs.onnx \
        --data cifar10 [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from neuro import ann, datasets, graph
from neuro.ann.train import allowed_disagreements, export_onnx, onnx_logits, predict_logits
from neuro.atomic import atomic_path
from neuro.baselines import to_torch
from neuro.errors import NeuroError


def qcfs_network(net: graph.Network, thresholds: list[float], levels: int) -> graph.Network:
    """``net`` with its k-th ReLU replaced by ``graph.QCFS(thresholds[k], levels)``."""
    relus = [i for i, layer in enumerate(net.layers) if isinstance(layer, graph.ReLU)]
    if any(isinstance(layer, graph.QCFS) for layer in net.layers):
        raise NeuroError(f"{net.name!r} already has QCFS layers: nothing to rewrite")
    if len(relus) != len(thresholds):
        raise NeuroError(f"{len(thresholds)} thresholds for the {len(relus)} ReLU layers of {net.name!r}: "
                         "the metadata belongs to another file")
    layers = list(net.layers)
    for i, t in zip(relus, thresholds):
        layers[i] = graph.QCFS(t, levels)
    return graph.Network(net.input_shape, layers, net.name)


def _linear_weights(net: graph.Network) -> list[np.ndarray]:
    return [a for layer in net.layers if isinstance(layer, (graph.Conv2d, graph.Dense))
            for a in (layer.weight, layer.bias)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the ReLU export of a QCFS-trained model (its JSON beside it)")
    parser.add_argument("--data", default="cifar10", help="dataset whose test split is measured (default cifar10)")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    meta_path = ann.metadata_path(args.model)
    meta = ann.load_metadata(args.model)
    if not meta or not meta.get("qcfs_levels") or not meta.get("qcfs_thresholds"):
        raise NeuroError(f"{meta_path} has no qcfs_levels/qcfs_thresholds: only a QCFS-trained model can be rewritten")
    old_bytes = args.model.read_bytes()
    if hashlib.sha256(old_bytes).hexdigest() != meta.get("file_sha256"):
        raise NeuroError(f"{args.model} does not match the sha256 in {meta_path}: the metadata is another file's")
    relu_net = ann.load_model(args.model)
    net = qcfs_network(relu_net, meta["qcfs_thresholds"], meta["qcfs_levels"])
    module = to_torch(net)
    x_test, y_test = datasets.load(args.data, split="test")
    x_test = np.array(x_test, np.float32)  # a writable copy (the loader hands out read-only arrays)

    with tempfile.TemporaryDirectory() as tmp:
        new_path = Path(tmp) / args.model.name
        export_onnx(module, new_path, input_shape=net.input_shape)
        new_bytes = new_path.read_bytes()
        back = ann.load_model(new_path)
        ort_logits = onnx_logits(new_path, x_test, threads=args.threads)
    torch_logits = predict_logits(module, torch.from_numpy(x_test)).numpy()
    new_w, old_w = _linear_weights(back), _linear_weights(relu_net)
    same_weights = len(new_w) == len(old_w) and all(np.array_equal(a, b) for a, b in zip(new_w, old_w))
    found = [layer for layer in back.layers if isinstance(layer, graph.QCFS)]
    thresholds_back = len(found) == len(meta["qcfs_thresholds"]) and np.allclose(
        [q.threshold for q in found], meta["qcfs_thresholds"], rtol=1e-6, atol=0)
    disagree = int((ort_logits.argmax(1) != torch_logits.argmax(1)).sum())
    allowed = allowed_disagreements(len(y_test), quantised=True)
    if not (same_weights and thresholds_back) or disagree > allowed:
        print(f"error: check failed (weights equal {same_weights}, thresholds read back {thresholds_back}, "
              f"onnxruntime/torch prediction disagreements {disagree}, allowed {allowed}); nothing replaced",
              file=sys.stderr)
        return 1
    acc = {name: float((logits.argmax(1) == y_test).mean()) for name, logits in
           (("onnxruntime", ort_logits), ("torch", torch_logits))}
    neuro_acc = back.accuracy(x_test, y_test)
    differing = int((np.abs(ort_logits - torch_logits).max(1) > 1e-4).sum())
    print(f"onnxruntime against torch: {disagree} predictions and {differing} images' logits (by over 1e-4) differ")
    print(f"measured on all {len(y_test)} {args.data} test images: onnxruntime {100 * acc['onnxruntime']:.2f} %, "
          f"torch {100 * acc['torch']:.2f} %, neuro.ann {100 * neuro_acc:.2f} % (trained QCFS network, from the "
          f"metadata: {100 * meta['trained_model_test_accuracy']:.2f} %; ReLU export: {100 * meta['test_accuracy']:.2f} %)")

    relu_export = {"relu_export_sha256": meta["file_sha256"], "relu_export_test_accuracy": meta["test_accuracy"]}
    meta.update({
        "file_sha256": hashlib.sha256(new_bytes).hexdigest(),
        "file_bytes": len(new_bytes),
        "test_accuracy": acc["onnxruntime"],
        "test_accuracy_source": f"onnxruntime on the ONNX file (QCFS node sequences), all {len(y_test)} test images "
                                "of the JPEG copy",
        "torch_test_accuracy": acc["torch"],
        "neuro_ann_test_accuracy": neuro_acc,
        "fold_max_abs_logit_diff": None,
        "fold_prediction_changes": None,
        "onnx_torch_prediction_disagreements": disagree,
        "onnx_torch_max_abs_logit_diff": float(np.abs(ort_logits - torch_logits).max()),
        "onnx_torch_images_logits_differ_over_1e-4": differing,
        "architecture": [str(m) for m in module],
        "qcfs_rewrite": {
            "what": "the training run's ReLU export with each ReLU replaced by its QCFS activation (qcfs_levels, "
                    "qcfs_thresholds) as ONNX Mul, Add, Floor, Clip, Mul; Conv/Gemm weights unchanged; torch is the "
                    "IR through neuro.baselines.to_torch; fold_* are null: the trained weights are not kept",
            **relu_export,
            "command": "python experiments/qcfs_onnx.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    })
    with atomic_path(args.model) as tmp:
        tmp.write_bytes(new_bytes)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.model} and {meta_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NeuroError as e:  # bad input: one line, no traceback
        sys.exit(f"error: {e}")
