"""The results file of one experiment run: one HDF5 file, one group per finished part.

Layout (every group appears only once its part is complete):

* ``/meta``: the config as TOML text, the seed, library versions, the machine, the start date and the
  identity of the inputs (model file sha256, data checksum, versions that change numbers) that
  ``--resume`` compares;
* ``/conversion``: the converted SNN (ops + its ANN), conversion info, the ANN's accuracy on the
  emulated images;
* ``/chips/<name>``: accuracy after every step, per-layer activity counts, emulator wall time and
  the cost with its coefficient set (``float`` is the float SNN: no chip, no coefficients);
* ``/baselines``: the CPU/GPU baselines (``neuro.baselines``) measured in this run, plus recorded ones.

``add_part`` rewrites the file copy-on-write (copy to a temp file beside it, add the group,
``os.replace``), so an interrupted run leaves the previous complete file and ``--resume`` goes on
from the parts present. Every part carries a sha256 of its content (``neuro.checksum``) that reading
checks: a corrupt part is an error naming it, and ``--resume`` redoes it. Numbers carry provenance as in
``neuro.baselines.results``, plus ``modeled`` (computed from emulated activity) and ``published``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuro import checksum, graph
from neuro.atomic import atomic_path
from neuro.baselines.results import Baselines, Value
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS, LayerCounts, SimResult
from neuro.snn import _SNN_TYPES, SNN, _read_list, _write_list

if TYPE_CHECKING:
    import h5py

FORMAT = "neuro-results"
FORMAT_VERSION = 1
MODELED = "modeled"
NOT_MODELED = "not modeled"
PUBLISHED = "published"


@dataclass
class ChipRun:
    """One emulation: the float SNN or a chip model, with its activity and cost."""

    name: str
    n_images: int
    timesteps: int
    accuracy_by_step: np.ndarray
    layers: list[LayerCounts]
    seconds: float                 # emulator wall time on this machine: not a chip speed
    coefficients: dict             # the chip's cost coefficients (empty for the float SNN)
    cost: dict[str, Value]         # e.g. synops_per_image, energy_per_image
    deviations: list[str] = field(default_factory=list)   # how the chip's program differs from the converted SNN
    counts_by_step: np.ndarray | None = None   # (T, layers, LAYER_COUNT_FIELDS) each step's counts, all images


@dataclass
class BaselineRun:
    """Baselines measured in this run (``source`` "measured") or read from a recording ("recorded")."""

    source: str
    file: str
    results: Baselines


@dataclass
class Results:
    """Everything one results file holds, as plain data."""

    path: Path
    name: str
    config: str
    seed: int
    date: str
    system: dict
    conversion: dict = field(default_factory=dict)  # info, ann_accuracy, n_images
    chips: dict[str, ChipRun] = field(default_factory=dict)
    baselines: list[BaselineRun] = field(default_factory=list)


# --- writing ----------------------------------------------------------------------------------------------

def add_part(path, part: str, write) -> None:
    """Add group ``part`` (replacing it if present) filled by ``write(group)``; atomic for the whole file."""
    path = Path(path)
    if path.exists():
        _check_readable(path)
    try:
        with atomic_path(path) as tmp:
            if path.exists():
                shutil.copyfile(path, tmp)
            import h5py

            with h5py.File(tmp, "a") as f:
                f.attrs.update(format=FORMAT, version=FORMAT_VERSION)
                if part in f:
                    del f[part]
                g = f.create_group(part)
                write(g)
                checksum.sign(g)
    except OSError as e:
        if e.errno != errno.ENOSPC and "No space left" not in str(e):  # h5py names it only in its message
            raise
        size = path.stat().st_size / 1e6 if path.exists() else 0.0
        raise NeuroError(f"no space left on the disk of {path.parent} writing part {part!r} (it needs a copy of "
                         f"the {size:.1f} MB results file plus the new part): free some space, then run again "
                         "with --resume") from None


def write_meta(g: h5py.Group, name: str, config_text: str, seed: int, system: dict, date: str,
               identity: dict) -> None:
    g.attrs.update(name=name, seed=seed, date=date)
    _text(g, "config", config_text)
    _text(g, "system", json.dumps(system))
    _text(g, "identity", json.dumps(identity))


def write_conversion(g: h5py.Group, snn: SNN, ann_accuracy: float, n_images: int) -> None:
    g.attrs.update(ann_accuracy=ann_accuracy, n_images=n_images, info=json.dumps(snn.info))
    s = g.create_group("snn")
    s.attrs.update(readout=snn.readout, input_shape=list(snn.input_shape))
    _write_list(s.create_group("ops"), snn.ops)
    ann = s.create_group("ann")
    ann.attrs.update(input_shape=list(snn.ann.input_shape), name=snn.ann.name)
    _write_list(ann.create_group("layers"), snn.ann.layers)


def chip_run(name: str, result: SimResult, seconds: float, coefficients: dict, cost: dict[str, Value],
             deviations: list[str]) -> ChipRun:
    return ChipRun(name, result.n_images, result.timesteps, np.asarray(result.accuracy_by_step, np.float64),
                   result.layers, seconds, coefficients, cost, list(deviations), result.counts_by_step)


def write_chip(g: h5py.Group, run: ChipRun) -> None:
    g.attrs.update(n_images=run.n_images, timesteps=run.timesteps, seconds=run.seconds,
                   coefficients=json.dumps(run.coefficients),
                   cost=json.dumps({k: asdict(v) for k, v in run.cost.items()}), deviations=json.dumps(run.deviations))
    g.create_dataset("accuracy_by_step", data=run.accuracy_by_step)
    if run.counts_by_step is not None:
        g.create_dataset("counts_by_step", data=run.counts_by_step)
    layers = g.create_group("layers")
    layers.create_dataset("name", data=[c.name for c in run.layers], dtype=_string_dtype())
    for f in ("neurons", *LAYER_COUNT_FIELDS):
        layers.create_dataset(f, data=np.array([getattr(c, f) for c in run.layers], np.float64))


def write_baselines(g: h5py.Group, runs: list[BaselineRun]) -> None:
    _text(g, "json", json.dumps([{"source": r.source, "file": r.file, "results": r.results.to_dict()} for r in runs]))


def _text(g: h5py.Group, name: str, text: str) -> None:
    g.create_dataset(name, data=text, dtype=_string_dtype())


def _string_dtype():
    import h5py   # here, not at import: `neuro --help` imports this module

    return h5py.string_dtype()


# --- reading ----------------------------------------------------------------------------------------------

def parts(path) -> set[str]:
    """Names of the finished, intact parts in the results file at ``path`` (e.g. "meta", "chips/float").

    A corrupt part counts as missing, so ``--resume`` redoes it; so do the chip parts when the conversion
    is corrupt, since they ran its SNN. A corrupt meta part (the record a resume checks) is an error.
    """
    with _open(path) as f:
        done = _part_names(f)
        bad = {p for p in done if not checksum.intact(f[p])}
        if "meta" in bad:
            raise _corrupt(path, "meta")
        if "conversion" in bad:
            bad |= {p for p in done if p.startswith("chips/")}
        return done - bad


def read_config(path) -> str:
    with _open(path) as f:
        return _str(_part(f, "meta")["config"])


def read_identity(path) -> dict | None:
    """The identity of the inputs stored in the meta part (None in files written before it was stored)."""
    with _open(path) as f:
        m = _part(f, "meta")
        return json.loads(_str(m["identity"])) if "identity" in m else None


def read_snn(path) -> SNN:
    """The converted SNN stored in the conversion part."""
    with _open(path) as f:
        s = _part(f, "conversion")["snn"]
        ann = graph.Network(tuple(s["ann"].attrs["input_shape"]), _read_list(s["ann/layers"], graph.LAYER_TYPES),
                            str(s["ann"].attrs["name"]))
        return SNN(tuple(s.attrs["input_shape"]), _read_list(s["ops"], {**_SNN_TYPES, **graph.LAYER_TYPES}),
                   str(s.attrs["readout"]), ann, json.loads(f["conversion"].attrs["info"]))


def read_conversion(path) -> dict:
    """The conversion part's info, ANN accuracy and image count (without reading the other parts)."""
    with _open(path) as f:
        return _conversion(f)


def _conversion(f: h5py.File) -> dict:
    c = _part(f, "conversion").attrs
    return dict(info=json.loads(c["info"]), ann_accuracy=float(c["ann_accuracy"]), n_images=int(c["n_images"]))


def read(path) -> Results:
    """The whole results file as plain data; a damaged or foreign file is a clear error."""
    path = Path(path)
    with _open(path) as f:
        try:
            if "meta" not in f:
                raise NeuroError(f"{path} has no meta part: the run stopped before writing anything; run it again")
            for part in sorted(_part_names(f)):
                _part(f, part)
            m = f["meta"]
            out = Results(path, str(m.attrs["name"]), _str(m["config"]), int(m.attrs["seed"]), str(m.attrs["date"]),
                          json.loads(_str(m["system"])))
            if "conversion" in f:
                out.conversion = _conversion(f)
            for name, g in f.get("chips", {}).items():
                out.chips[name] = _read_chip(name, g)
            if "baselines" in f:
                out.baselines = [BaselineRun(d["source"], d["file"], Baselines.from_dict(d["results"]))
                                 for d in json.loads(_str(f["baselines/json"]))]
        except (KeyError, ValueError, TypeError) as e:
            raise NeuroError(f"{path} is damaged or from another version ({type(e).__name__}: {e}): "
                             "run the experiment again into a new folder") from None
    return out


def _read_chip(name: str, g: h5py.Group) -> ChipRun:
    lg = g["layers"]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in lg["name"][()]]
    layers = []
    for i, n in enumerate(names):
        c = LayerCounts(n, neurons=int(lg["neurons"][i]))
        for f in LAYER_COUNT_FIELDS:
            if f in lg:                       # files from before a field existed keep its default
                setattr(c, f, type(getattr(c, f))(lg[f][i]))
        layers.append(c)
    cost = {k: Value(**v) for k, v in json.loads(g.attrs["cost"]).items()}
    return ChipRun(name, int(g.attrs["n_images"]), int(g.attrs["timesteps"]), g["accuracy_by_step"][()], layers,
                   float(g.attrs["seconds"]), json.loads(g.attrs["coefficients"]), cost,
                   json.loads(g.attrs.get("deviations", "[]")),
                   g["counts_by_step"][()] if "counts_by_step" in g else None)


def _part_names(f: h5py.File) -> set[str]:
    return {k for k in f if k != "chips"} | {f"chips/{k}" for k in f.get("chips", {})}


def _part(f: h5py.File, name: str) -> h5py.Group:
    """Part ``name`` of an open results file, once its checksum is verified."""
    if not checksum.intact(f[name]):
        raise _corrupt(f.filename, name)
    return f[name]


def _corrupt(path, name: str) -> NeuroError:
    fix = ("the record of the config and inputs a resume checks is lost: run the experiment into a new folder"
           if name == "meta" else "run again with --resume, which redoes it")
    return NeuroError(f"{path}: part {name!r} is corrupt (its sha256 checksum does not match its content): {fix}")


def _str(dataset) -> str:
    v = dataset[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_readable(path: Path) -> None:
    with _open(path):
        pass


@contextlib.contextmanager
def _open(path):
    """``h5py.File(path, "r")`` of a results file; a missing, damaged or foreign file is a NeuroError."""
    path = Path(path)
    if not path.is_file():
        raise NeuroError(f"results file {path} does not exist: write it with `neuro run CONFIG.toml -o DIR`")
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise NeuroError(f"cannot read results file {path} ({_one_line(e)}): it is damaged; delete it "
                         "or run the experiment into a new folder (other files are left as they are)") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise NeuroError(f"{path} is not a results file written by `neuro run`")
        yield f


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
