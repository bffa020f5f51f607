"""Importers of trained ANNs into the IR (``neuro.graph.Network``): ONNX, Keras .h5 and PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from neuro.ann.keras import from_keras
from neuro.ann.onnx import from_onnx
from neuro.ann.torch import from_torch, load_torch
from neuro.errors import NeuroError
from neuro.graph import Network

SUFFIXES = {".onnx": "ONNX", ".h5": "Keras", ".hdf5": "Keras", ".pt": "PyTorch", ".pth": "PyTorch"}


def load_model(path, torch_class: str | None = None, torch_input_shape=None) -> Network:
    """Import a model file, chosen by its suffix (see ``SUFFIXES``).

    ``torch_class`` and ``torch_input_shape`` apply to PyTorch checkpoints only; see ``load_torch``.
    """
    path = Path(path)
    if not os.path.isfile(path):
        raise NeuroError(f"model file not found: {path}")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise NeuroError(f"unknown model file type '{path.suffix}' of {path}: use one of "
                         f"{', '.join(SUFFIXES)} (save Keras models with model.save('model.h5'))")
    if kind == "ONNX":
        return from_onnx(path)
    if kind == "Keras":
        return from_keras(path)
    return load_torch(path, torch_class, torch_input_shape)


def metadata_path(path) -> Path:
    """Where a model file's metadata lives: the JSON of the same stem next to it, as the training scripts in
    ``experiments/`` write it (``cifar10_cnn.onnx`` -> ``cifar10_cnn.json``)."""
    return Path(path).with_suffix(".json")


def load_metadata(path) -> dict | None:
    """The metadata JSON of a model file (``metadata_path``), or None when the model has none."""
    meta = metadata_path(path)
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NeuroError(f"cannot read the model metadata {meta}: {e}; fix or remove the file") from None
    if not isinstance(data, dict):
        raise NeuroError(f"the model metadata {meta} is not a JSON object: fix or remove the file")
    return data


__all__ = ["load_model", "load_metadata", "metadata_path", "from_onnx",
           "from_keras", "from_torch", "load_torch", "SUFFIXES"]
