"""One experiment from a TOML file: conversion, emulation on each chip, the CPU/GPU baselines, one results file.

``run_experiment(config, out_dir)`` writes ``out_dir/<config stem>.h5`` part by part (see
``neuro.results``); with ``resume=True`` the parts already in that file are skipped. The TOML keys,
their defaults and checks are in ``SCHEMA``; ``experiments/mnist.toml`` is the default experiment.
Paths in the file (model, recorded baselines, an ``imagefolder:PATH`` data set) are relative to the file.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

import chips
from neuro import calibrate, datasets, encode, lock, results
from neuro.atomic import stale_temps
from neuro.baselines import PLATFORMS, Settings, measure, read_json, system
from neuro.baselines.results import Value
from neuro.errors import NeuroError
from neuro.sim import Engine, default_threads
from neuro.tomlfile import parse_toml

FLOAT = "float"  # the float SNN itself, no chip model
NUMERIC_PACKAGES = ("neuro", "numpy", "numba")  # their versions change the numbers: a resume needs the same ones
REQUIRED = object()


def _positive(v):
    return None if v >= 1 else "must be at least 1"


def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(map(repr, choices))}"


def _each(check):
    return lambda vs: next((f"{v!r} {err}" for v in vs if (err := check(v))), None)


#: section -> key -> (type, default, check returning an error text or None); "" is the top level. Besides these,
#: a [chips.<name>] table per chip run: ``coefficients`` (a set's name or a .toml file relative to the experiment
#: file) and the chip's options (``neuro chips`` lists them), checked against what the chip declares.
SCHEMA = {
    "": {"seed": (int, 0, lambda v: None if 0 <= v < 2 ** 63 else "must be in [0, 2^63)")},
    "data": {"dataset": (str, "mnist", datasets.spec_error), "images": (int, 1000, _positive),
             "select": (str, "first", _one_of("first", "spread"))},
    "model": {"path": (str, REQUIRED, None)},
    "conversion": {
        "calibration": (int, 1000, _positive),
        "percentile": (float, 99.9, lambda v: None if 0 < v <= 100 else "must be in (0, 100]"),
        "scales": (str, "percentile", _one_of("percentile", "model")),  # "model": the model's QCFS thresholds
        "reset": (str, "subtract", _one_of("subtract", "zero")),
        "leak": (float, 0.0, lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
        "v_init": (float, 0.5, None),
        "readout": (str, "potential", _one_of("potential", "spikes")),
        "pool_neurons": (bool, False, None),
        # > 0: biases calibrated for this many steps (neuro.calibrate), fed as [emulation] encoding feeds the chips,
        # and again on each chip's float proxy where it declares one (Loihi: reset to zero; TrueNorth: weight codes)
        "calibrate_steps": (int, 0, lambda v: None if v >= 0 else "must be 0 (no calibration) or more steps"),
    },
    "emulation": {
        "chips": (list[str], [FLOAT], None),
        "timesteps": (int, 32, _positive),
        "encoding": (str, "current", _one_of(*encode.ENCODINGS)),
        "batch_size": (int, 256, _positive),
        "coefficients": (str, "", None),       # every chip's set unless [chips.<name>] names one; "": each default
    },
    "baselines": {
        "platforms": (list[str], list(PLATFORMS), _each(_one_of(*PLATFORMS))),
        "batches": (list[int], list(Settings.batches), _each(_positive)),
        "window_s": (float, Settings.window_s, lambda v: None if v > 0 else "must be positive"),
        "warmup_s": (float, Settings.warmup_s, lambda v: None if v >= 0 else "must not be negative"),
        "idle_s": (float, Settings.idle_s, lambda v: None if v > 0 else "must be positive"),
        "threads": (int, 0, lambda v: None if v >= 0 else "must be 0 (every usable CPU) or more"),
        "recorded": (list[str], [], None),
    },
    "report": {
        # "equal accuracy": within this many percentage points of the ANN on the same images
        "tolerance": (float, 0.5, lambda v: None if 0 <= v <= 100 else "must be in [0, 100] (percentage points)"),
    },
}


@dataclass
class Config:
    """A validated experiment: ``values[section][key]`` with defaults filled in, and the file's text."""

    path: Path
    text: str
    values: dict

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def seed(self) -> int:
        return self.values[""]["seed"]

    def __getitem__(self, section: str) -> dict:
        return self.values[section]

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()

    def chip(self, name: str) -> tuple[dict, object]:
        """Chip ``name``'s compile options and coefficient set ([chips.<name>], else [emulation] coefficients, else
        the chip's default); the float SNN has neither."""
        if name == FLOAT:
            return {}, None
        table = dict(self.values["chips"].get(name, {}))
        key = f"chips.{name}.coefficients" if "coefficients" in table else "emulation.coefficients"
        spec = table.pop("coefficients", self.values["emulation"]["coefficients"])
        chip = chips.get(name)
        try:
            coefficients = chip.coefficient_set(spec, self.path.parent)
        except NeuroError as e:
            raise NeuroError(f"{self.path}: key {key!r}: {e}") from None
        return chip.check_options(table, name), coefficients


def load_config(path) -> Config:
    """Read and check an experiment file; every mistake is a one-line NeuroError naming the key and the fix."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise NeuroError(f"cannot read experiment file {path}: {e.strerror}") from None
    config = Config(path, text, _validate(path, parse_toml(text, path)))
    given = [("model.path", config["model"]["path"])]
    given += [("baselines.recorded", r) for r in config["baselines"]["recorded"]]
    for key, rel in given:
        if not config.resolve(rel).is_file():
            raise NeuroError(f"{path}: {key} names {rel!r}, which does not exist (paths are relative to the TOML "
                             "file): fix the path")
    for name in config["emulation"]["chips"]:
        if name != FLOAT and name not in chips.available():
            raise NeuroError(f"{path}: key 'emulation.chips' names {name!r}, neither {FLOAT!r} nor a chip model: "
                             f"use {FLOAT!r} or one of: {', '.join(chips.available()) or 'none registered yet'}; to "
                             f"add one, {chips.HOW_TO_ADD}")
        config.chip(name)   # its coefficient set loads
    return config


def _validate(path: Path, raw: dict) -> dict:
    values = {}
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    for section in tables.keys() - SCHEMA.keys() - {"chips"}:
        raise NeuroError(f"{path}: unknown table [{section}]: use {', '.join(f'[{s}]' for s in SCHEMA if s)} or "
                         "[chips.<name>]")
    for section, keys in SCHEMA.items():
        given = top if section == "" else tables.get(section, {})
        for key in given.keys() - keys.keys():
            where = f"[{section}]" if section else "the top level"
            raise NeuroError(f"{path}: unknown key {_key(section, key)!r}: keys allowed in {where} are "
                             f"{', '.join(keys)}")
        values[section] = {}
        for key, (kind, default, check) in keys.items():
            if key not in given:
                if default is REQUIRED:
                    raise NeuroError(f"{path}: missing key {_key(section, key)!r}: add it under [{section}]")
                values[section][key] = default
                continue
            value = given[key]
            if not _is(value, kind):
                raise NeuroError(f"{path}: key {_key(section, key)!r} must be {_describe(kind)}, got {value!r}")
            if kind is float and not math.isfinite(value):
                raise NeuroError(f"{path}: key {_key(section, key)!r} must be a finite number, got {value!r}")
            if check is not None and (err := check(value)):
                raise NeuroError(f"{path}: key {_key(section, key)!r} {err}, got {value!r}")
            values[section][key] = float(value) if kind is float else value
    values["chips"] = _chip_tables(path, tables.get("chips", {}), values["emulation"]["chips"])
    return values


def _chip_tables(path: Path, given: dict, run: list) -> dict:
    """The [chips.<name>] tables, each for a chip the experiment runs: ``coefficients`` a string, the chip's
    options checked against what it declares (defaults filled in)."""
    out = {}
    for name, table in given.items():
        if not isinstance(table, dict) or name == FLOAT or name not in run:
            raise NeuroError(f"{path}: [chips.{name}] must be a table for a chip in emulation.chips: add {name!r} "
                             "to emulation.chips or remove it")
        options = {k: v for k, v in table.items() if k != "coefficients"}
        out[name] = chips.get(name).check_options(options, f"{path}: [chips.{name}]")
        if "coefficients" in table:
            if not isinstance(table["coefficients"], str):
                raise NeuroError(f"{path}: key 'chips.{name}.coefficients' must be a string (a set's name or a "
                                 f".toml file), got {table['coefficients']!r}")
            out[name]["coefficients"] = table["coefficients"]
    return out


def _key(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _is(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in (str, bool):
        return isinstance(value, kind)
    item = kind.__args__[0]
    return isinstance(value, list) and all(_is(v, item) for v in value)


def _describe(kind) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names[kind] if kind in names else f"a list of {names[kind.__args__[0]].split(' ', 1)[1]}s"


# --- the run --------------------------------------------------------------------------------------------

def run_experiment(config_path, out_dir, resume: bool = False, progress: bool = True, simulate=None) -> Path:
    """Run the experiment in ``config_path``; returns the results file ``out_dir/<name>.h5``.

    Everything is checked before the first byte is written: the config, the output folder, the data, the
    model (converted, or read back on resume) and every chip still to run (compiled, then run and costed for
    one image and one step; on resume, a chip whose part is written is not calibrated or compiled again). The
    folder is locked for the whole run (``neuro.lock``). ``resume`` goes on only from parts made by the same
    config, model file, data and versions of the libraries that shape the numbers.
    ``simulate(chip, snn, images, labels, emulation, seed)``, if given, replaces the in-process engine run of
    each chip and returns its ``SimResult`` (``neuro.shard``: the images split over a Dask cluster).
    """
    config = load_config(config_path)
    out = Path(out_dir) / f"{config.name}.h5"
    _check_folder(out.parent)
    say = (lambda msg: print(f"[{config.name}] {msg}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    images, labels = _data(config)
    identity = _identity(config, images, labels)
    done = _resumable(out, config, identity, resume)
    lock.check_free(out.parent)
    if "conversion" in done:
        snn, ann_accuracy = results.read_snn(out), results.read_conversion(out)["ann_accuracy"]
    else:
        say("converting the ANN")
        snn = convert_for(config)
        ann_accuracy = snn.ann.accuracy(images, labels)
    emulation = config["emulation"]
    pending = [chip for chip in emulation["chips"] if f"chips/{chip}" not in done]   # on resume, chips not yet run
    systems = {chip: calibrated_for(config, chip, snn, say=say) for chip in pending}
    programs = {chip: _compile(chip, systems[chip], images, labels, config) for chip in pending}
    with lock.hold(out.parent):
        for tmp in stale_temps(out):
            tmp.unlink()
            say(f"removed {tmp.name}, left by a killed run")
        if _resumable(out, config, identity, resume) != done:
            raise NeuroError(f"another run wrote {out} while this one prepared: run again (with --resume)")
        if "meta" not in done:
            results.add_part(out, "meta", lambda g: results.write_meta(g, config.name, config.text, config.seed,
                                                                      _system(), system.utc_now(), identity))
        if "conversion" not in done:
            results.add_part(out, "conversion",
                             lambda g: results.write_conversion(g, snn, ann_accuracy, len(images)))
        target = EqualAccuracy(ann_accuracy, config["report"]["tolerance"])
        for chip, program in programs.items():
            say(f"emulating on {chip}")
            run = _emulate(chip, program, systems[chip], images, labels, emulation, config.seed, progress, target,
                           config.chip(chip), simulate)
            results.add_part(out, f"chips/{chip}", lambda g: results.write_chip(g, run))
        if "baselines" not in done:
            say("measuring the baselines")
            runs = _baselines(config, images, f"{config['data']['dataset']} test split, {len(images)} images ({config['data']['select']})")
            results.add_part(out, "baselines", lambda g: results.write_baselines(g, runs))
    say(f"wrote {out}")
    return out


def _check_folder(folder: Path) -> None:
    """``folder`` is a folder, or can be made one, that this process may write into."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NeuroError(f"cannot write results into {folder}: {existing} is a file, not a folder: "
                         "give a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NeuroError(f"cannot write results into {folder}: {existing} is read-only or not yours: "
                         "give a folder you can write to")


def _data(config: Config):
    """The first ``data.images`` test images and labels; more than the split holds is an error, not a clamp."""
    data = config["data"]
    images, labels = datasets.load(_dataset(config), split="test")
    if data["images"] > len(images):
        raise NeuroError(f"{config.path}: key 'data.images' is {data['images']} but the {data['dataset']} test "
                         f"split has {len(images)} images: use at most {len(images)}")
    return select_images(images, labels, data["images"], data["select"])


def _identity(config: Config, images, labels) -> dict:
    """What the numbers are made from, stored in the meta part and compared on resume."""
    data = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    data.update(np.ascontiguousarray(labels).tobytes())
    versions = _system()["versions"]
    model = config.resolve(config["model"]["path"])
    identity = {"model_sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    if config["conversion"]["scales"] == "model":   # the scales come from the metadata JSON: it is an input too
        from neuro.ann import metadata_path

        meta = metadata_path(model)   # missing: the conversion names it
        identity["model_metadata_sha256"] = hashlib.sha256(meta.read_bytes()).hexdigest() if meta.is_file() else None
    return {**identity,
            "data": {"dataset": config["data"]["dataset"], "split": "test", "images": len(images),
                     "sha256": data.hexdigest()},
            "versions": {pkg: versions[pkg] for pkg in NUMERIC_PACKAGES}}


def _resumable(out: Path, config: Config, identity: dict, resume: bool) -> set[str]:
    """The parts already in ``out`` (none if there is no such file), once they are known to come from this
    config, model file, data and versions."""
    if not out.exists():
        return set()
    if not resume:
        raise NeuroError(f"{out} already exists: resume it (--resume) or write into another folder")
    done = results.parts(out)
    if "meta" not in done:
        return done
    if _validate(out, parse_toml(results.read_config(out), out)) != config.values:
        raise NeuroError(f"{config.path} differs from the config stored in {out}: write into another folder, "
                         "or resume with the original config")
    stored = results.read_identity(out)
    if stored is None:
        raise NeuroError(f"{out} has no record of the model and data it was made from (an older version wrote "
                         "it): run the experiment into another folder")
    if changed := list(_changes(stored, identity)):
        raise NeuroError(f"cannot resume {out}: {'; '.join(changed)}: resume with the original inputs, or write "
                         "into another folder")
    return done


def _changes(old: dict, new: dict):
    """What differs between two identities, in words."""
    if old["model_sha256"] != new["model_sha256"]:
        yield f"the model file changed (sha256 {old['model_sha256'][:12]}, now {new['model_sha256'][:12]})"
    if old.get("model_metadata_sha256") != new.get("model_metadata_sha256"):
        yield "the model's metadata JSON (its QCFS thresholds, the scales) changed"
    if old["data"] != new["data"]:
        yield f"the data changed ({_data_words(old['data'])}, now {_data_words(new['data'])})"
    for pkg in sorted(old["versions"].keys() | new["versions"].keys()):
        if old["versions"].get(pkg) != new["versions"].get(pkg):
            yield f"{pkg} {old['versions'].get(pkg)} is now {new['versions'].get(pkg)}"


def _data_words(d: dict) -> str:
    return f"{d['dataset']} {d['split']}, {d['images']} images, sha256 {d['sha256'][:12]}"


def select_images(images, labels, n: int, how: str = "first"):
    """The first ``n`` images, or (``how="spread"``) ``n`` spread evenly over the split, every (len / n)-th one:
    class-balanced on a split stored class by class, as the CIFAR-10 JPEG copy's (docs/datasets.md)."""
    idx = slice(0, n) if how == "first" else datasets.spread(len(images), n)
    return images[idx], labels[idx]


def _system() -> dict:
    """The machine (CPU model, CPU counts, the engine's threads) and the versions of every library that shapes
    the numbers."""
    info = system.describe()
    info["engine_threads"] = default_threads()
    for pkg in ("numba", "h5py", "matplotlib"):
        info["versions"][pkg] = metadata.version(pkg)
    return info


def _dataset(config: Config) -> str:
    """The data spec, an ``imagefolder:PATH`` taken relative to the TOML file like every path in it."""
    spec = config["data"]["dataset"]
    if spec.startswith(datasets.IMAGEFOLDER):
        return datasets.IMAGEFOLDER + str(config.resolve(spec[len(datasets.IMAGEFOLDER):]))
    return spec


def calibration_indices(config: Config, n_train: int) -> np.ndarray:
    """Sorted indices of the training images that calibrate the conversion (seeded by the experiment)."""
    rng = np.random.default_rng(config.seed)
    return np.sort(rng.choice(n_train, config["conversion"]["calibration"], replace=False))


def convert_for(config: Config):
    """The experiment's SNN: its model converted (and bias-calibrated) as its [conversion] section says."""
    from neuro import ann
    from neuro.convert import convert, model_thresholds

    c = config["conversion"]
    path = config.resolve(config["model"]["path"])
    net = ann.load_model(path)
    thresholds = model_thresholds(ann.load_metadata(path), ann.metadata_path(path)) if c["scales"] == "model" else None
    calib = _calibration_images(config)
    snn = convert(net, calib, percentile=c["percentile"], thresholds=thresholds, reset=c["reset"], leak=c["leak"],
                  v_init=c["v_init"], readout=c["readout"], pool_neurons=c["pool_neurons"])
    if c["calibrate_steps"]:
        snn = _calibrate(config, snn, calib)
    snn.info["model_file"] = config["model"]["path"]
    return snn


def calibrated_for(config: Config, chip: str, snn, options: dict | None = None, say=lambda message: None):
    """The SNN ``chip`` compiles: with [conversion] calibrate_steps and a chip that declares a float proxy
    (``chips.api.Chip``), the experiment's SNN with its biases calibrated again on that proxy with the chip's
    options (``options``, else the config's), so that they also correct the chip's own error (Loihi's reset to
    zero, TrueNorth's weight codes); otherwise the experiment's SNN itself."""
    model = None if chip == FLOAT else chips.get(chip)
    if not config["conversion"]["calibrate_steps"] or model is None or model.float_proxy is None:
        return snn
    options = config.chip(chip)[0] if options is None else options
    say(f"calibrating the biases on {model.title}'s float proxy")
    return _calibrate(config, snn, _calibration_images(config),
                      (model.title, lambda s: model.float_proxy(s, options)))


def _calibration_note(snn) -> list[str]:
    """The line a chip run's deviations get when its SNN's biases were calibrated against the chip's dynamics."""
    record = snn.info.get(calibrate.INFO_KEY, {})
    return [f"biases calibrated again for {record['timesteps']} steps on {record['images']} calibration images "
            f"against {record['dynamics']}'s float proxy (the chip's neuron dynamics in float; neuro.calibrate)"] \
        if "dynamics" in record else []


def _calibrate(config: Config, snn, calib, dynamics=None):
    return calibrate.calibrate_biases(snn, calib, config["conversion"]["calibrate_steps"], dynamics=dynamics,
                                      encoding=config["emulation"]["encoding"], seed=config.seed,
                                      batch_size=config["emulation"]["batch_size"])


def _calibration_images(config: Config) -> np.ndarray:
    """The training images that set the conversion's scales and calibrate its biases."""
    c = config["conversion"]
    train, _ = datasets.load(_dataset(config), split="train")
    if c["calibration"] > len(train):
        raise NeuroError(f"{config.path}: key 'conversion.calibration' is {c['calibration']} but the "
                         f"{config['data']['dataset']} train split has {len(train)} images: use at most {len(train)}")
    return train[calibration_indices(config, len(train))]


@dataclass(frozen=True)
class EqualAccuracy:
    """The ANN's accuracy on the emulated images and the tolerance (percentage points) that counts as equal."""

    ann_accuracy: float
    tolerance_points: float

    def first_step(self, accuracy_by_step) -> int | None:
        """First step (1-based) whose accuracy is within the tolerance of the ANN's, or None if none is."""
        slack = 1e-9  # accuracies are multiples of 1 / images: do not let rounding decide
        hit = np.nonzero(np.asarray(accuracy_by_step) >= self.ann_accuracy - self.tolerance_points / 100 - slack)[0]
        return int(hit[0]) + 1 if hit.size else None


def _compile(chip: str, snn, images, labels, config: Config):
    """The SNN compiled by the chip model registered as ``chip`` with its options (a ``chips.api.Program``;
    None for the float SNN), run and costed for one image and one step so that whatever this chip cannot do
    fails before anything is written."""
    emulation = config["emulation"]
    options, coefficients = config.chip(chip)
    try:
        program = None if chip == FLOAT else chips.compile_for(chip, snn, emulation["encoding"], options)
        sim = _engine(program, snn, threads=1).run(images[:1], labels[:1], 1, encoding=emulation["encoding"],
                                                    seed=config.seed, batch_size=1, progress=False)
        if program is not None:
            program.cost(sim, 1, coefficients)
    except NeuroError as e:
        raise NeuroError(f"{config.path}: {chip!r} in 'emulation.chips' cannot run this experiment: {e}") from None
    return program


def _engine(program, snn, threads: int | None = None) -> Engine:
    return Engine(program.snn, program.backend(), threads=threads) if program else Engine(snn, threads=threads)


def _emulate(chip: str, program, snn, images, labels, emulation: dict, seed: int, progress: bool,
             target: EqualAccuracy, setup: tuple = ({}, None), simulate=None) -> results.ChipRun:
    """The float SNN (``program`` None) or the chip's program (``_compile``) on the images, ``setup`` = (its
    options, its coefficient set), run by the engine or by ``simulate(chip, snn, images, labels, emulation,
    seed, options)`` (e.g. sharded over workers, ``neuro.shard``); cost: the modeled activity, and energy, frames/s and
    latency from the chip's cost model, at the configured T and at the first step of equal accuracy (with the
    activity up to that step)."""
    options, coefficients = setup
    start = time.perf_counter()
    if simulate is None:
        sim = _engine(program, snn).run(images, labels, emulation["timesteps"], encoding=emulation["encoding"],
                                        seed=seed, batch_size=emulation["batch_size"], progress=progress)
    else:
        sim = simulate(chip, snn, images, labels, emulation, seed, options)
    seconds = time.perf_counter() - start
    step = target.first_step(sim.accuracy_by_step)
    best = float(np.max(sim.accuracy_by_step))
    within = f"within {target.tolerance_points:g} points of the ANN's {100 * target.ann_accuracy:.2f} %"
    cost = {"equal_accuracy_step": Value(step, "steps", results.MODELED,
                                         f"first step {within}" if step else
                                         f"does not reach the ANN's accuracy within {sim.timesteps} steps "
                                         f"({within}); best {100 * best:.2f} %")}
    cost.update(_activity(sim, f"counted by the emulator over {sim.timesteps} steps"))
    if step:
        cost.update(_activity(sim.until(step), f"counted by the emulator over the first {step} steps",
                              "_at_equal_accuracy"))
    if program is None:
        cost["energy_per_image"] = Value(None, "J/image", results.NOT_MODELED,
                                         "float SNN: no chip, so no energy coefficients")
        return results.chip_run(chip, sim, seconds, {}, cost, [])
    c = program.cost(sim, sim.timesteps, coefficients)
    model = f"{type(program).__module__} cost model, {c.coefficients} coefficients" + \
        (f" ({coefficients.path})" if coefficients.path and coefficients not in chips.get(chip).coefficients.values()
         else "") + "".join(f", {k} = {v!r}" for k, v in options.items())
    cost.update(_chip_cost(c, f"{model}, {sim.timesteps} steps per inference (the configured T)"))
    if step:
        cost.update(_chip_cost(program.cost(sim.until(step), step, coefficients),
                               f"{model}, {step} steps per inference (equal accuracy)", "_at_equal_accuracy"))
    info = {"name": c.coefficients, "cores": c.cores, "chips": c.chips,
            "assumptions": list(getattr(c, "assumptions", [])), "calibration": getattr(c, "calibration", "")}
    return results.chip_run(chip, sim, seconds, info, cost, program.deviations + _calibration_note(snn))


def _activity(sim, how: str, suffix: str = "") -> dict[str, Value]:
    return {f"synops_per_image{suffix}": Value(sim.per_image("synops"), "synaptic events/image", results.MODELED, how),
            f"spikes_per_image{suffix}": Value(sim.per_image("spikes"), "spikes/image", results.MODELED, how)}


def _chip_cost(c, how: str, suffix: str = "") -> dict[str, Value]:
    """A chip cost result as Values with their low-high ranges (``c.ranges``, where the chip gives them), and the
    same cost under the chip's alternative assumptions (``c.variants``: label -> energy, frames/s, latency) as
    ``key@label``."""
    ranges = getattr(c, "ranges", {})
    if getattr(c, "calibration", ""):
        how += f"; {c.calibration}"

    def value(attr: str, unit: str) -> Value:
        low, high = ranges.get(attr, (None, None))
        return Value(float(getattr(c, attr)), unit, results.MODELED, how, low, high)

    out = {f"energy_per_image{suffix}": value("energy_per_inference_j", "J/image"),
           f"frames_per_second{suffix}": value("frames_per_second", "frames/s"),
           f"latency{suffix}": value("latency_s", "s")}
    for label, v in getattr(c, "variants", {}).items():  # the same cost under another assumption, as a point
        note = f"{how}; under another assumption: {label}"
        out.update({f"energy_per_image{suffix}@{label}": Value(v["energy_per_inference_j"], "J/image",
                                                               results.MODELED, note),
                    f"frames_per_second{suffix}@{label}": Value(v["frames_per_second"], "frames/s",
                                                                results.MODELED, note),
                    f"latency{suffix}@{label}": Value(v["latency_s"], "s", results.MODELED, note)})
    return out


def _baselines(config: Config, images, inputs: str) -> list[results.BaselineRun]:
    b = config["baselines"]
    runs = []
    if b["platforms"]:
        settings = Settings(tuple(b["batches"]), b["window_s"], b["warmup_s"], b["idle_s"], b["threads"] or None)
        measured = measure(config.resolve(config["model"]["path"]), images, settings, tuple(b["platforms"]), inputs)
        runs.append(results.BaselineRun("measured", "", measured))
    for rel in b["recorded"]:
        runs.append(results.BaselineRun("recorded", rel, read_json(config.resolve(rel))))
    return runs


# --- command line ---------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    """The ``neuro run`` subcommand."""
    p = subparsers.add_parser("run", help="run an experiment (TOML): conversion, emulation, baselines -> HDF5",
                              description="Run an experiment file and write one HDF5 results file into a folder.")
    p.add_argument("config", help="experiment file, e.g. experiments/mnist.toml")
    p.add_argument("-o", "--output", required=True, help="folder for the results file <config name>.h5")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run: skip the parts already written")
    p.add_argument("--no-progress", action="store_true", help="no progress messages or bars")


def cmd_run(args) -> None:
    path = run_experiment(args.config, args.output, resume=args.resume, progress=not args.no_progress)
    print(f"wrote {path}")
