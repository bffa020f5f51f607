"""One baseline run: the ONNX model on every requested platform, with the system and settings recorded."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from pathlib import Path

import numpy as np

from neuro import ann
from neuro.baselines import platforms, system
from neuro.baselines.platforms import Settings
from neuro.baselines.results import Baselines
from neuro.errors import NeuroError

PLATFORMS = ("cpu-onnxruntime", "cpu-torch", "gpu-torch-cuda")


def measure(model_path, images: np.ndarray, settings: Settings | None = None, which=PLATFORMS,
            inputs: str = "") -> Baselines:
    """Measure the ONNX model at ``model_path`` on the platforms ``which`` with batches cut from ``images``.

    ``inputs`` describes the images for the record (e.g. "MNIST test, first 10000"). torch and
    nvidia-ml-py are used when installed; a platform that cannot run says why in its status.
    """
    settings = settings or Settings()
    model_path = Path(model_path)
    if model_path.suffix.lower() != ".onnx":
        raise NeuroError(f"baselines measure an ONNX model; {model_path} is not a .onnx file")
    if unknown := set(which) - set(PLATFORMS):
        raise NeuroError(f"unknown platforms {sorted(unknown)}: use some of {', '.join(PLATFORMS)}")
    net = ann.load_model(model_path)
    net.check_input(images)
    if len(images) == 0:
        raise NeuroError("no images to measure with")
    torch = _optional("torch") if {"cpu-torch", "gpu-torch-cuda"} & set(which) else None
    results = []
    for name in which:
        if name == "cpu-onnxruntime":
            results.append(platforms.onnxruntime_cpu(model_path, net, images, settings))
        elif name == "cpu-torch":
            results.append(platforms.torch_cpu(torch, net, images, settings))
        else:
            nvml = _optional("pynvml") if torch is not None and torch.cuda.is_available() else None
            results.append(platforms.torch_cuda(torch, nvml, net, images, settings))
    return Baselines(model_path.name, _sha256(model_path), system.utc_now(), system.describe(),
                     {**dataclasses.asdict(settings), "inputs": inputs}, results)


def _optional(module: str):
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
