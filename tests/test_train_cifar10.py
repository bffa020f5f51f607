"""The CIFAR-10 training script's model side: folding at export, the ONNX file the converter reads, QCFS.

Tiny random networks, no training: BatchNorm statistics are randomised so that folding them is tested.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

from neuro import datasets  # noqa: E402
from neuro.ann import load_model  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "train_cifar10.py"
STATS = {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("train_cifar10", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model(train, qcfs=None, seed=0):
    """A 3-block network of the script's shape, 4-8-8 channels, with random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = train.build_model(STATS["mean"], STATS["std"], widths=(4, 8, 8), qcfs=qcfs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def test_exported_onnx_loads_and_matches_torch(train, tmp_path):
    model = tiny_model(train)
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    folded = train.export_model(model)
    path = tmp_path / "tiny.onnx"
    train.export_onnx(folded, path)
    net = load_model(str(path))
    assert net.input_shape == (3, 32, 32)
    assert {type(layer).__name__ for layer in net.layers} == {"Conv2d", "ReLU", "AvgPool2d", "Flatten", "Dense"}
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(net.forward(x.numpy()), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(train.onnx_logits(path, x.numpy()), expected, rtol=1e-4, atol=1e-4)


def test_folded_normalisation_equals_normalising_the_input(train):
    """Conv(W/s, pad(x)) + b' equals Conv(W, normalise(pad(x))) + b: the folded first conv on [0, 1] images
    computes what the trained one computes on the normalised (zero-padded, then normalised) image."""
    model = tiny_model(train)
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    conv, bn = model[1], model[2]
    normalised = torch.from_numpy(datasets.normalise(torch.nn.functional.pad(x, (1,) * 4).numpy(), STATS))
    with torch.no_grad():
        expected = bn(conv(normalised))
        got = train.export_model(model)[0](x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # and the whole network
        np.testing.assert_allclose(train.export_model(model)(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_qcfs_quantises_clips_and_passes_gradients(train):
    act = train.QCFS(4, init=2.0)
    x = torch.tensor([-1.0, 0.1, 0.3, 0.7, 1.2, 1.9, 2.6, 5.0], requires_grad=True)
    y = act(x)
    # lambda * clip(floor(x L / lambda + 1/2) / L, 0, 1) with L = 4, lambda = 2: steps of 0.5, clipped at 2
    np.testing.assert_allclose(y.detach().numpy(), [0.0, 0.0, 0.5, 0.5, 1.0, 2.0, 2.0, 2.0])
    y.sum().backward()
    assert x.grad is not None and act.threshold.grad is not None  # the straight-through floor lets both train


def test_qcfs_model_exports_qcfs_that_imports_and_runs_as_trained(train, tmp_path):
    """The export writes each QCFS as standard ONNX ops; neuro.ann imports them as graph.QCFS with the trained
    thresholds, and onnxruntime, neuro.ann and the trained (BatchNorm, QCFS) network compute the same."""
    from neuro import graph

    model = tiny_model(train, qcfs=3)
    with torch.no_grad():  # thresholds of the size of the activations, so every level is used
        for k, m in enumerate(m for m in model.modules() if isinstance(m, train.QCFS)):
            m.threshold.fill_(1.0 + 0.25 * k)
    thresholds = train.qcfs_thresholds(model)
    folded = train.export_model(model)
    assert not any(isinstance(m, (train.QCFS, torch.nn.ReLU)) for m in folded.modules())
    path = tmp_path / "q.onnx"
    train.export_onnx(folded, path)
    net = load_model(str(path))
    found = [layer for layer in net.layers if isinstance(layer, graph.QCFS)]
    assert [q.levels for q in found] == [3] * 6
    np.testing.assert_allclose([q.threshold for q in found], thresholds, rtol=1e-6)
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(net.forward(x.numpy()), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(train.onnx_logits(path, x.numpy()), expected, rtol=1e-4, atol=1e-4)


def test_augment_shifts_and_flips_whole_images(train):
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    out = train.augment(x, 0, torch.Generator().manual_seed(4))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and same.any() and flipped.any()
    shifted = train.augment(x, 4, torch.Generator().manual_seed(5))
    assert shifted.shape == x.shape


def test_outputs_written_after_each_epoch_and_kept_when_a_check_fails(train, tmp_path, monkeypatch):
    """write_outputs (called after every epoch) leaves a complete model + metadata; a failed check replaces nothing."""
    import argparse
    import json

    model = tiny_model(train, qcfs=4)
    x = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    y = torch.arange(12) % 10
    args = argparse.Namespace(out=tmp_path, name="m", threads=1, qcfs=4, seed=0, epochs=3)
    history = [{"epoch": 1}]
    assert train.write_outputs(model, args, ["--qcfs", "4"], x, y, STATS, history, 1.0, 0.0, model(x).detach()) == 0
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["epochs"] == 3 and meta["epochs_completed"] == 1 and meta["neuro_ann_test_accuracy"] is None
    assert meta["qcfs_thresholds"] == [train.QCFS_INIT] * 6 and meta["threads"] == 1
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"m.onnx", "m.json"}
    monkeypatch.setattr(train, "onnx_logits", lambda path, x, threads: -train.predict_logits(
        train.export_model(model), torch.from_numpy(x)).numpy())  # onnxruntime "disagrees" with torch
    history.append({"epoch": 2})
    assert train.write_outputs(model, args, [], x, y, STATS, history, 2.0, 0.0, model(x).detach()) == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_training_epoch_is_seeded_and_learns(train):
    """neuro.ann.train.train_epoch (both training scripts' loop): the same seed gives the same weights; two
    epochs on a small learnable problem lower the loss."""
    from neuro.ann.train import train_epoch

    def run(seed):
        torch.manual_seed(0)
        model = train.build_model(STATS["mean"], STATS["std"], widths=(4, 8, 8))
        x = torch.rand(96, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        y = (x[:, 0].mean((1, 2)) > x[:, 2].mean((1, 2))).long()   # which of two channels is brighter
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1000)
        gen = torch.Generator().manual_seed(seed)
        losses = [train_epoch(model, x, y, opt, sched, torch.nn.CrossEntropyLoss(), 32,
                              lambda xb: train.augment(xb, 2, gen), gen, "test")[0] for _ in range(4)]
        return losses, [p.detach().clone() for p in model.parameters()]

    (losses_a, weights_a), (losses_b, weights_b) = run(1), run(1)
    assert losses_a == losses_b and all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))
    assert losses_a[-1] < losses_a[0]
    _, weights_c = run(2)   # another seed, another order of batches
    assert not all(torch.equal(a, c) for a, c in zip(weights_a, weights_c))
