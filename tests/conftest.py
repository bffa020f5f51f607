"""Shared fixtures: real MNIST from $NEURO_DATA (skip with a reason when absent), lava tests only where lava is."""

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_ONNX = REPO / "experiments" / "models" / "mnist_cnn.onnx"


#: Set by .ci/run in the Lava venv: a Lava test that cannot run fails instead of skipping, so CI never passes
#: with the bit-exactness checks silently left out.
REQUIRE_LAVA = os.environ.get("NEURO_REQUIRE_LAVA") == "1"


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("lava") is None:
        skip = pytest.mark.skip(reason="lava-nc is not installed here (it needs Python 3.10: see .ci/run)")
        for item in items:
            if "lava" in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With NEURO_REQUIRE_LAVA=1, a skipped test marked ``lava`` is reported as failed."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_LAVA and report.skipped and "lava" in item.keywords:
        report.outcome = "failed"
        report.longrepr = f"NEURO_REQUIRE_LAVA=1 but this Lava test was skipped ({report.longrepr[-1]})"


@pytest.fixture(scope="session")
def mnist_test():
    """The MNIST test split from $NEURO_DATA; skips when the files are not there."""
    root = os.environ.get("NEURO_DATA")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("MNIST not available: set NEURO_DATA to a folder holding mnist/ (CI: ../shared/datasets)")
    from neuro.datasets import load
    return load("mnist", split="test", root=root)


def small_converted_cnn(seed: int = 8):
    """(SNN, images): a small CNN (conv, avg-pool, conv, avg-pool, dense, dense) converted with reset to zero and
    a spiking readout, as the Loihi compiler takes it; shared by the Lava and netx tests."""
    import numpy as np

    from neuro import graph
    from neuro.convert import convert

    rng = np.random.default_rng(seed)
    net = graph.Network((1, 10, 10), [
        graph.Conv2d(rng.normal(0, 0.5, (4, 1, 3, 3)), rng.normal(0, 0.1, 4)), graph.ReLU(), graph.AvgPool2d(2),
        graph.Conv2d(rng.normal(0, 0.3, (6, 4, 3, 3)), rng.normal(0, 0.1, 6)), graph.ReLU(), graph.AvgPool2d(2),
        graph.Flatten(), graph.Dense(rng.normal(0, 0.3, (8, 6)), rng.normal(0, 0.1, 8)), graph.ReLU(),
        graph.Dense(rng.normal(0, 0.3, (3, 8)))])
    images = rng.random((20, 1, 10, 10)).astype(np.float32)
    return convert(net, images, reset="zero", readout="spikes"), images
