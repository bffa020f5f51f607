"""Shared fixtures: real MNIST from $NEURO_DATA (skip with a reason when absent), lava tests only where lava is."""

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_ONNX = REPO / "experiments" / "models" / "mnist_cnn.onnx"


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("lava") is None:
        skip = pytest.mark.skip(reason="lava-nc is not installed here (it needs Python 3.10: see .ci/run)")
        for item in items:
            if "lava" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_test():
    """The MNIST test split from $NEURO_DATA; skips when the files are not there."""
    root = os.environ.get("NEURO_DATA")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("MNIST not available: set NEURO_DATA to a folder holding mnist/ (CI: ../shared/datasets)")
    from neuro.datasets import load
    return load("mnist", split="test", root=root)
