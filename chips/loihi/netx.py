"""Export a compiled Loihi program as a lava-dl netx HDF5 file, and read such files back.

Layout (lava-dl 0.6: slayer ``export_hdf5`` writes it, ``lava.lib.dl.netx.hdf5.Network`` reads it;
docs/references.md, "lava-dl netx layout"). Every entry is a dataset, as slayer writes them:

    /layer/0/               type b"input", shape (C, H, W) or (n,)   (no neuron/: netx takes only the input shape)
    /layer/{i}/  conv:      type b"conv", shape (C, H, W) of the output, inChannels, outChannels, kernelSize (kH, kW),
                            stride, padding, dilation (y, x pairs; dilation is always (1, 1) here), groups,
                            weight float32 (out, in / groups, kH, kW) cross-correlation (PyTorch) order, bias (per channel)
    /layer/{i}/  flatten:   type b"flatten", shape (C*H*W, 1, 1)   (before a dense layer fed by a conv; (C, H, W) order)
    /layer/{i}/  dense:     type b"dense", shape (out,), inFeatures, outFeatures, weight float32 (out, in), bias (per neuron)
    /layer/{i}/neuron/      type "CUBA", iDecay = du + 1, vDecay = dv, vThMant = vth, refDelay = 1, gradedSpike = False

``type`` is a (1,) "S10" array; netx reverses ``shape`` and the conv pairs into its (x, y, channel) order. The weights
are the integer mantissas the chip holds (after Lava's clipping and truncation to ``num_weight_bits``), stored in
float32 as slayer does: mixed-sign ones are even, in [-256, 254], the range netx's ``optimize_weight_bits`` keeps
unclipped; excitatory ones in [0, 255], which it also keeps; inhibitory ones in [-255, 0], which it keeps unless odd
values sit beside zeros (it then takes the matrix as mixed-sign: a gap). Pooling has no netx block: ``compile_snn`` has already folded it into the next synapses.

What netx cannot express. Its reader derives each dense layer's weight exponent from the weights themselves
(``optimize_weight_bits``: the effective weights are the stored integers, exponent 0; a conv gets exponent 0) and
builds every LIF with ``bias_exp = 6`` and v starting at 0. Our layers have a weight exponent in [-8, 7] (applied to
the summed input, so a negative one truncates the sum and cannot be folded into integer weights), a bias mantissa and
exponent per neuron (per channel for a conv) and an initial v. So each layer also carries the exact values under
its own namespace, ``/layer/{i}/neuro/``: weightExp, numWeightBits, biasMant, biasExp, vInit; netx ignores that
group. The standard ``bias`` holds the nearest netx bias, round(bias / 2^6) (exact when the bias is a multiple of
64). ``netx_gaps`` lists, per layer, where lava-dl's reader would build a different network from ours; the root
attribute ``neuro.netx_gaps`` records them (JSON list) and ``write_netx(..., exact=True)`` refuses such a program.
``read_netx`` returns everything, extras included, so the exact network can be rebuilt from the file.

Not written: synaptic delays (Loihi layers here have none beyond the one-step dense latency netx also has), the
``simulation`` group (NxSDK settings netx does not read).
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from chips.loihi.compile import LoihiProgram
from chips.loihi.neuron import LoihiLayer
from neuro import graph
from neuro.atomic import atomic_path
from neuro.errors import NeuroError
from neuro.snn import Synapses

NETX_BIAS_EXP = 6      # netx builds every LIF with bias_exp = 6 (lava-dl netx/hdf5.py get_neuron_params)
REF_DELAY = 1          # slayer's CUBA default; Lava's LIF has no refractory period (netx does not read it)
EXTRAS = "neuro"       # our namespace inside each layer group


# --- what netx cannot express ------------------------------------------------------------------------------------

def layer_gaps(layer: LoihiLayer) -> list[str]:
    """Where lava-dl's netx reader would build this layer differently from the emulator."""
    gaps = []
    if layer.weight_exp != 0:
        gaps.append(f"{layer.name}: weight_exp = {layer.weight_exp}, but netx derives the exponent from the stored "
                    "weights (effective weights = the stored integers)")
    w = layer.weights
    if w.max(initial=0) == 0 and np.any(w % 2):
        gaps.append(f"{layer.name}: odd inhibitory weights beside zeros: netx takes such a matrix as mixed-sign, "
                    "whose 8-bit weights are even")
    if np.any(layer.bias() % (1 << NETX_BIAS_EXP)):
        gaps.append(f"{layer.name}: a bias is not a multiple of 2^{NETX_BIAS_EXP}, netx's fixed bias exponent")
    v = layer.v_init
    if np.any(v):
        shown = v[0] if np.all(v == v[0]) else f"{v.min()}..{v.max()} (per channel)"
        gaps.append(f"{layer.name}: v starts at {shown}, netx starts it at 0")
    return gaps


def netx_gaps(program: LoihiProgram) -> list[str]:
    """Every difference between the program and the network lava-dl's netx reader would build from its export."""
    return [gap for layer in program.layers for gap in layer_gaps(layer)]


# --- writing -----------------------------------------------------------------------------------------------------

def _put_type(group: h5py.Group, name: str) -> None:
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _put_neuron(group: h5py.Group, layer: LoihiLayer) -> None:
    """The CUBA neuron as slayer's ``device_params`` write it."""
    for key, value in (("type", "CUBA"), ("iDecay", layer.du + 1), ("vDecay", layer.dv), ("vThMant", layer.vth),
                       ("refDelay", REF_DELAY), ("gradedSpike", False)):
        group.create_dataset(f"neuron/{key}", data=value)


def _put_extras(group: h5py.Group, layer: LoihiLayer) -> None:
    """The exact chip parameters netx has no field for, under our namespace."""
    for key, value in (("weightExp", layer.weight_exp), ("numWeightBits", layer.num_weight_bits),
                       ("biasMant", layer.bias_mant), ("biasExp", layer.bias_exp), ("vInit", layer.v_init),
                       ("name", layer.name)):
        group.create_dataset(f"{EXTRAS}/{key}", data=value)


def _put_layer(group: h5py.Group, layer: LoihiLayer, in_shape, out_shape) -> None:
    op = layer.synapse
    if isinstance(op, graph.Conv2d):
        _put_type(group, "conv")
        for key, value in (("inChannels", in_shape[0]), ("outChannels", out_shape[0]),
                           ("kernelSize", op.weight.shape[2:]), ("stride", op.stride), ("padding", op.padding),
                           ("dilation", (1, 1)), ("groups", op.groups)):
            group.create_dataset(key, data=np.asarray(value, np.int64))
    else:
        _put_type(group, "dense")
        group.create_dataset("inFeatures", data=in_shape[0])
        group.create_dataset("outFeatures", data=out_shape[0])
    group.create_dataset("shape", data=np.asarray(out_shape, np.int64))
    group.create_dataset("weight", data=layer.weights.astype(np.float32))
    bias = layer.bias()   # added to v per step, per neuron (per channel for a conv)
    if bias.any():
        group.create_dataset("bias", data=np.round(bias / (1 << NETX_BIAS_EXP)).astype(np.float32))
    _put_neuron(group, layer)
    _put_extras(group, layer)


def _check_input_shape(program: LoihiProgram, input_shape) -> tuple:
    own = tuple(program.snn.input_shape)
    if input_shape is not None and tuple(int(s) for s in input_shape) != own:
        raise NeuroError(f"input_shape {tuple(input_shape)} differs from the program's {own}: give {own} or omit it")
    return own


def write_netx(program: LoihiProgram, path, input_shape=None, exact: bool = False) -> list[str]:
    """Write ``program`` as a netx HDF5 file at ``path`` (atomically); return ``netx_gaps(program)``.

    ``input_shape`` defaults to the program's own and must equal it. With ``exact=True`` a program that netx's
    reader would run differently (see ``netx_gaps``) is refused with a NeuroError and nothing is written.
    """
    in_shape = _check_input_shape(program, input_shape)
    gaps = netx_gaps(program)
    if exact and gaps:
        raise NeuroError(f"netx cannot express this program exactly ({len(gaps)} differences), first: {gaps[0]}; "
                         "write it with exact=False to keep the exact values under each layer's neuro/ group")
    layers, shapes = iter(program.layers), program.snn.shapes()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["neuro.netx_gaps"] = json.dumps(gaps)
        root = f.create_group("layer")
        _put_type(root.create_group("0"), "input")
        root["0"].create_dataset("shape", data=np.asarray(in_shape, np.int64))
        for i, op in enumerate(program.snn.ops):
            if isinstance(op, graph.Flatten):
                group = root.create_group(str(len(root)))
                _put_type(group, "flatten")
                group.create_dataset("shape", data=np.asarray([int(np.prod(shapes[i])), 1, 1], np.int64))
            elif isinstance(op, Synapses):
                _put_layer(root.create_group(str(len(root))), next(layers), shapes[i], shapes[i + 1])
    return gaps


# --- reading -----------------------------------------------------------------------------------------------------

def _value(dataset: h5py.Dataset):
    """A dataset as Python: bytes decoded, scalars as Python numbers, ``type`` as its single string."""
    value = dataset[()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        return value.decode("ascii")
    return value.item() if isinstance(value, np.generic) else value


def _group(group: h5py.Group) -> dict:
    return {key: _group(item) if isinstance(item, h5py.Group) else _value(item) for key, item in group.items()}


def read_netx(path) -> list[dict]:
    """The layers of a netx HDF5 file in order: dicts of their datasets (``neuron`` and ``neuro`` as sub-dicts)."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise NeuroError(f"cannot read {path} as HDF5 ({err}): give a netx file written by write_netx or lava-dl")
    with f:
        if "layer" not in f or not isinstance(f["layer"], h5py.Group):
            raise NeuroError(f"{path} has no /layer group: it is not a netx file")
        root = f["layer"]
        return [_group(root[key]) for key in sorted(root, key=int)]

