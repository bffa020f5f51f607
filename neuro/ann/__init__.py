"""Importers of trained ANNs into the IR (``neuro.graph.Network``): ONNX, Keras .h5 and PyTorch."""

from __future__ import annotations

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


__all__ = ["load_model", "from_onnx", "from_keras", "from_torch", "load_torch", "SUFFIXES"]
