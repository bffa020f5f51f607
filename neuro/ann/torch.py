"""PyTorch importer: an ``nn.Module`` (or a checkpoint file) -> ``neuro.graph.Network``.

The module is traced by PyTorch's TorchScript ONNX exporter (``dynamo=False``: it needs no extra
packages and folds eval-mode BatchNorm) and the result goes through ``from_onnx``, so any module
whose forward is a plain chain of supported operations works, ``nn.Sequential`` or not.
torch is an optional extra and imported only here, when needed.
"""

from __future__ import annotations

import importlib
import io
import warnings

from neuro.ann.onnx import from_onnx
from neuro.errors import NeuroError
from neuro.graph import Network

SUPPORTED_MODULES = ("Conv2d", "Linear", "ReLU", "AvgPool2d", "MaxPool2d", "Flatten", "BatchNorm1d",
                     "BatchNorm2d", "Dropout", "Softmax", "Identity")


def _torch():
    try:
        import torch
    except ImportError:
        raise NeuroError("importing PyTorch models needs torch: install the torch extra: "
                         "pip install -e '.[torch]'") from None
    return torch


def from_torch(module, input_shape) -> Network:
    """Import a torch module taking a batch of ``input_shape`` (no batch axis), evaluated in eval mode."""
    torch = _torch()
    for path, sub in module.named_modules():
        kind = type(sub).__name__
        if (not list(sub.children()) and type(sub).__module__.startswith("torch.nn")
                and kind not in SUPPORTED_MODULES):
            raise NeuroError(f"unsupported torch module {kind} at '{path or type(module).__name__}'; "
                             f"supported: {', '.join(SUPPORTED_MODULES)}")
    was_training, buf = module.training, io.BytesIO()
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (torch.zeros(1, *input_shape),), buf, dynamo=False)
    except Exception as e:
        raise NeuroError(f"cannot trace torch module {type(module).__name__} with input shape "
                         f"{tuple(input_shape)}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        module.train(was_training)
    net = from_onnx(buf.getvalue())
    net.name = type(module).__name__
    return net


def load_torch(path, torch_class: str | None = None, input_shape=None) -> Network:
    """Import a checkpoint saved with ``torch.save``.

    With ``torch_class="package.module:ClassName"`` the class is built with no arguments and the file
    must hold its state_dict (bare, or under a ``state_dict``/``model_state_dict`` key); it is read
    with ``weights_only=True``. Without it the file must hold a whole pickled module and is read with
    ``weights_only=False``, which runs arbitrary pickled code: load only files you trust.
    The input shape (C, H, W) is ``input_shape`` or else the model's ``input_shape`` attribute.
    """
    torch = _torch()
    if torch_class is None:
        model = _load(torch, path, weights_only=False)
        if not isinstance(model, torch.nn.Module):
            raise NeuroError(f"{path} holds a {type(model).__name__}, not a whole module: "
                             "pass torch_class='package.module:ClassName' to load a state_dict")
    else:
        model = _build(torch_class)
        state = _load(torch, path, weights_only=True)
        if isinstance(state, dict):
            state = state.get("state_dict", state.get("model_state_dict", state))
        try:
            model.load_state_dict(state)
        except Exception as e:
            raise NeuroError(f"the weights in {path} do not fit {torch_class}: "
                             f"{str(e).splitlines()[0]}; check the class and the file") from None
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise NeuroError(f"the input shape of {path} is unknown: pass torch_input_shape=(C, H, W) "
                         "or give the model class an attribute input_shape")
    return from_torch(model, tuple(shape))


def _load(torch, path, weights_only):
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:
        hint = "a whole-module file needs torch_class=None" if weights_only else "is it a torch.save file?"
        raise NeuroError(f"cannot read torch checkpoint {path}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''} ({hint})") from None


def _build(torch_class: str):
    """Import ``package.module:ClassName`` and instantiate it without arguments."""
    module_name, _, class_name = torch_class.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls()
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise NeuroError(f"cannot build torch_class {torch_class!r} (expected 'package.module:ClassName' "
                         f"constructible without arguments): {type(e).__name__}: {e}") from None

