"""Keras importer: a legacy HDF5 (.h5) file of Keras 2 or 3 -> ``neuro.graph.Network``, with h5py only.

The file holds the model config as JSON in the root attribute ``model_config`` and each layer's
weights in ``model_weights/<layer>/``, listed in order by that group's ``weight_names`` attribute
(Keras 2 names them ``<layer>/kernel:0``, Keras 3 ``<model>/<layer>/kernel``). Keras is channels-last:
conv kernels (kh, kw, in, out) become (out, in, kh, kw), dense kernels (in, out) become (out, in), and
a Dense after a Flatten of an (H, W, C) tensor has its input columns reordered to the IR's C, H, W
flatten order, so outputs are identical.
"""

from __future__ import annotations

import json
import os

import numpy as np

from neuro.errors import NeuroError
from neuro.graph import (AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, MaxPool2d, Network,
                         ReLU, Softmax)

SUPPORTED_LAYERS = ("InputLayer", "Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "Flatten",
                    "Dropout", "BatchNormalization", "Activation", "ReLU", "Softmax")


def from_keras(path) -> Network:
    """Import a Sequential or chain-shaped Functional Keras model saved as ``model.save('m.h5')``."""
    path = str(path)
    if not os.path.isfile(path):
        raise NeuroError(f"Keras file not found: {path}")
    import h5py   # here, not at import: `neuro --help` imports this module

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise NeuroError(f"cannot read Keras HDF5 file {path}: {e}; check that it is a complete .h5 file") from None
    with f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise NeuroError(f"{path} holds no whole Keras model (a weights-only file?): "
                             "save the model with model.save('model.h5')")
        config = json.loads(f.attrs["model_config"])
        layer_configs = _chain(config, path)
        input_shape = _input_shape(layer_configs, path)
        layers, flat_from = [], None
        for lc in layer_configs:
            cls, cfg = lc["class_name"], lc["config"]
            what = f"Keras layer {cls} '{cfg.get('name')}' in {path}"
            group = f["model_weights"].get(cfg.get("name"))
            weights = {} if group is None else {
                n.split("/")[-1].split(":")[0]: np.asarray(group[n]) for n in _names(group.attrs["weight_names"])}
            shape = Network(input_shape, layers).output_shape
            try:
                new = _convert(cls, cfg, weights, what)
            except KeyError as e:
                raise NeuroError(f"{what}: {e} is missing from its weights or config; the file is damaged "
                                 "or was written by an unsupported Keras version") from None
            first = new[0] if new else None
            if isinstance(first, Dense) and flat_from is not None:
                new[0] = Dense(_chw_columns(first.weight, flat_from), first.bias)
            if isinstance(first, Flatten):
                flat_from = shape if len(shape) == 3 else None
            elif not isinstance(first, (Dropout, ReLU, Softmax, type(None))):  # element-wise layers keep it
                flat_from = None
            layers += new
    name = config["config"].get("name") if isinstance(config["config"], dict) else None
    return Network(input_shape, layers, name=name or "keras")


def _names(arr):
    return [n.decode() if isinstance(n, bytes) else str(n) for n in arr]


def _chain(config, path):
    """The layer configs in order; a Functional model must be a single chain."""
    cls, body = config.get("class_name"), config.get("config")
    layers = body["layers"] if isinstance(body, dict) else body  # very old Keras 2: a bare list
    if cls == "Sequential":
        return layers
    if cls not in ("Functional", "Model"):
        raise NeuroError(f"{path}: Keras model class {cls} is not supported; use a Sequential or Functional model")
    prev = None
    for lc in layers:
        inbound = _inbound(lc.get("inbound_nodes", []))
        expected = [] if prev is None else [prev]
        if inbound != expected:
            raise NeuroError(f"{path}: the Keras model is not a simple chain: layer '{lc.get('name')}' "
                             f"takes {inbound or 'no input'} instead of {expected}; only sequential models are supported")
        prev = lc.get("name", lc["config"].get("name"))
    return layers


def _inbound(nodes):
    """Names of the layers feeding a Functional layer (Keras 2 lists or Keras 3 ``keras_history``)."""
    names = []

    def walk(x):
        if isinstance(x, dict):
            if "keras_history" in x:
                names.append(x["keras_history"][0])
            else:
                for v in x.values():
                    walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):
                names.append(x[0])
            else:
                for v in x:
                    walk(v)

    walk(nodes)
    return names


def _input_shape(layer_configs, path):
    for lc in layer_configs:
        shape = lc["config"].get("batch_shape") or lc["config"].get("batch_input_shape")
        if shape:
            shape = tuple(shape[1:])
            return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
    raise NeuroError(f"{path}: the Keras config gives no input shape; build the model with keras.Input(shape)")


def _convert(cls, cfg, w, what):
    """The IR layers for one Keras layer (its fused activation included)."""
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise NeuroError(f"{what}: only data_format='channels_last' is supported")
    if cls == "InputLayer":
        return []
    if cls == "Conv2D":
        if any(d != 1 for d in np.atleast_1d(cfg.get("dilation_rate", 1))):
            raise NeuroError(f"{what}: dilated convolutions are not supported")
        kh, kw = cfg["kernel_size"]
        strides = tuple(cfg.get("strides", (1, 1)))
        if cfg["padding"] == "valid":
            pad = (0, 0)
        elif cfg["padding"] == "same" and kh % 2 and kw % 2 and strides == (1, 1):
            pad = (kh // 2, kw // 2)
        else:
            raise NeuroError(f"{what}: padding='{cfg['padding']}' with kernel {kh}x{kw} and strides {strides} "
                             "is not supported; use 'valid', or 'same' with an odd kernel and stride 1")
        conv = Conv2d(w["kernel"].transpose(3, 2, 0, 1), w.get("bias"), strides, pad, cfg.get("groups", 1))
        return [conv] + _activation(cfg.get("activation", "linear"), what)
    if cls == "Dense":
        return [Dense(w["kernel"].T, w.get("bias"))] + _activation(cfg.get("activation", "linear"), what)
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        if cfg.get("padding", "valid") != "valid":
            raise NeuroError(f"{what}: only padding='valid' is supported for pooling")
        pool = MaxPool2d if cls == "MaxPooling2D" else AvgPool2d
        return [pool(cfg["pool_size"], cfg.get("strides") or cfg["pool_size"])]
    if cls == "Flatten":
        return [Flatten()]
    if cls == "Dropout":
        return [Dropout()]
    if cls == "BatchNormalization":
        if cfg.get("axis", -1) not in (-1, 3, [-1], [3]):
            raise NeuroError(f"{what}: only normalisation over the channel axis (-1) is supported")
        ones = np.ones_like(w["moving_mean"])
        return [BatchNorm(w.get("gamma", ones), w.get("beta", 0 * ones), w["moving_mean"],
                          w["moving_variance"], cfg.get("epsilon", 1e-3))]
    if cls == "Activation":
        return _activation(cfg["activation"], what)
    if cls == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            raise NeuroError(f"{what}: only a plain ReLU is supported (no max_value, negative_slope, threshold)")
        return [ReLU()]
    if cls == "Softmax":
        return [Softmax()]
    raise NeuroError(f"unsupported {what}; supported layers: {', '.join(SUPPORTED_LAYERS)}: "
                     "rebuild the model without it or export it to ONNX")


def _activation(name, what):
    if isinstance(name, dict):  # Keras 3 may serialise it as an object
        name = name.get("config", {}).get("name", name.get("class_name"))
    if name not in ("relu", "linear", "softmax"):
        raise NeuroError(f"{what}: activation '{name}' is not supported; use relu, softmax or linear")
    return {"relu": [ReLU()], "softmax": [Softmax()], "linear": []}[name]


def _chw_columns(weight, hwc):
    """Reorder Dense input columns from Keras' H, W, C flatten order to the IR's C, H, W order."""
    c, h, w = hwc
    return weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
