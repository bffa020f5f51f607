"""The converted spiking network: a list of ops the engine runs once per time step.

An SNN is a chain of

* ``Synapses``: a linear map (Conv2d, Dense or AvgPool2d of ``neuro.graph``) from the previous op's
  output to an input current; a Conv2d/Dense bias is a constant current injected every step;
* ``Neurons``: integrate-and-fire (``leak`` 0) or leaky neurons that integrate the current, fire
  when V >= threshold and reset by subtraction or to zero; the output population may be
  non-spiking (``spiking=False``) when the readout is the membrane potential;
* ``MaxPoolGate``: max pooling of spikes by gating, each window passing the spikes of the input
  with the highest accumulated spike count so far (Rueckauer et al. 2017);
* ``graph.Flatten``: (C, H, W) -> (C*H*W,).

The SNN keeps the ANN it came from, so a run can report the ANN's accuracy on the same images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuro import checksum, graph
from neuro.atomic import atomic_path
from neuro.errors import NeuroError

if TYPE_CHECKING:
    import h5py

FORMAT = "neuro-snn"
FORMAT_VERSION = 1
READOUTS = ("potential", "spikes")
RESETS = ("subtract", "zero")


@dataclass
class Synapses:
    """Input current = op(previous output); op is a graph.Conv2d, graph.Dense or graph.AvgPool2d."""

    op: object

    def output_shape(self, shape):
        return self.op.output_shape(shape)


@dataclass
class Neurons:
    """V <- (1 - leak) V + I; spike when V >= threshold (if spiking); reset by subtraction or to zero.

    ``v_init`` is the membrane potential at t = 0 as a fraction of the threshold.
    """

    threshold: float = 1.0
    leak: float = 0.0
    reset: str = "subtract"
    v_init: float = 0.0
    spiking: bool = True

    def __post_init__(self):
        if self.reset not in RESETS:
            raise NeuroError(f"reset mode {self.reset!r} is unknown: use one of {RESETS}")
        if not 0.0 <= self.leak < 1.0:
            raise NeuroError(f"leak {self.leak} is out of range: use 0 <= leak < 1 (0 = integrate-and-fire)")
        if not self.threshold > 0:
            raise NeuroError(f"threshold {self.threshold} must be positive")

    def output_shape(self, shape):
        return tuple(shape)


@dataclass
class MaxPoolGate:
    """Each window outputs the current spike of its input with the highest spike count so far."""

    kernel: tuple[int, int]
    stride: tuple[int, int]

    def output_shape(self, shape):
        return graph.MaxPool2d(self.kernel, self.stride).output_shape(shape)


@dataclass
class SNN:
    """A converted spiking network: ops, readout, the ANN it came from and how it was made."""

    input_shape: tuple[int, ...]
    ops: list
    readout: str = "potential"
    ann: graph.Network | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if self.readout not in READOUTS:
            raise NeuroError(f"readout {self.readout!r} is unknown: use one of {READOUTS}")
        if not self.ops or not isinstance(self.ops[-1], Neurons):
            raise NeuroError("an SNN must end with a Neurons op (the output population)")
        self.shapes()

    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every op (index 0 is the input)."""
        return graph.chain_shapes(self.input_shape, self.ops)

    @property
    def n_classes(self) -> int:
        return int(np.prod(self.shapes()[-1]))

    def check_input(self, x: np.ndarray) -> None:
        graph.check_images(x, self.input_shape)


# --- HDF5 files -----------------------------------------------------------------------------------

_SNN_TYPES = {cls.__name__: cls for cls in (Synapses, Neurons, MaxPoolGate)}


def _write_obj(group: h5py.Group, obj) -> None:
    """Store a layer/op dataclass: arrays as datasets, everything else as JSON attrs, nested ops as groups."""
    group.attrs["type"] = type(obj).__name__
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            group.create_dataset(f.name, data=value)
        elif dataclasses.is_dataclass(value):
            _write_obj(group.create_group(f.name), value)
        else:
            group.attrs[f.name] = json.dumps(value)


def _read_obj(group: h5py.Group, types: dict):
    import h5py

    cls = types.get(group.attrs["type"])
    if cls is None:
        raise NeuroError(f"unknown layer type {group.attrs['type']!r} in {group.file.filename}: "
                         "the file was written by a newer version")
    kwargs = {k: json.loads(v) for k, v in group.attrs.items() if k != "type"}
    for name, item in group.items():
        kwargs[name] = item[()] if isinstance(item, h5py.Dataset) else _read_obj(item, types)
    return cls(**kwargs)


def _write_list(group: h5py.Group, items) -> None:
    for i, item in enumerate(items):
        _write_obj(group.create_group(str(i)), item)


def _read_list(group: h5py.Group, types: dict) -> list:
    return [_read_obj(group[str(i)], types) for i in range(len(group))]


@contextlib.contextmanager
def atomic_h5(path):
    """Open a new HDF5 file that appears at ``path`` only once it is completely written."""
    import h5py   # here, not at import: `neuro chips` imports this module and stays fast

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        yield f


def save(snn: SNN, path) -> None:
    """Write the SNN (and its ANN) to an HDF5 file, atomically, with a sha256 of its content that ``load`` checks."""
    with atomic_h5(path) as f:
        f.attrs.update(format=FORMAT, version=FORMAT_VERSION, readout=snn.readout,
                       input_shape=list(snn.input_shape), info=json.dumps(snn.info))
        _write_list(f.create_group("ops"), snn.ops)
        if snn.ann is not None:
            ann = f.create_group("ann")
            ann.attrs.update(input_shape=list(snn.ann.input_shape), name=snn.ann.name)
            _write_list(ann.create_group("layers"), snn.ann.layers)
        checksum.sign(f)


def load(path) -> SNN:
    """Read an SNN file written by ``save``; a missing or foreign file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise NeuroError(f"SNN file {path} does not exist: create it with `neuro convert MODEL -o {path}`")
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise NeuroError(f"{path} is not an SNN file written by `neuro convert`")
            if not checksum.intact(f):
                raise NeuroError(f"SNN file {path} is corrupt (its sha256 checksum does not match its content): "
                                 "convert the model again")
            ann = None
            if "ann" in f:
                g = f["ann"]
                ann = graph.Network(tuple(g.attrs["input_shape"]), _read_list(g["layers"], graph.LAYER_TYPES),
                                    str(g.attrs["name"]))
            return SNN(tuple(f.attrs["input_shape"]), _read_list(f["ops"], {**_SNN_TYPES, **graph.LAYER_TYPES}),
                       str(f.attrs["readout"]), ann, json.loads(f.attrs["info"]))
    except OSError as e:
        raise NeuroError(f"cannot read SNN file {path} ({e}): it is damaged; convert the model again") from None
