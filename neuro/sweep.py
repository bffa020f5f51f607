"""``neuro sweep``: one experiment file run at every point of a grid of key values, the points spread over Dask.

A sweep file names a base experiment and the axes to vary (docs/sweeps.md)::

    base = "mnist.toml"                     # relative to the sweep file
    shards = 1                              # > 1: each point's images split over that many Dask tasks
    [set]                                   # keys set at every point (not columns of the table)
    "baselines.platforms" = []
    [axes]
    "emulation.timesteps" = [8, 16, 32]     # any experiment key, "section.key" (top-level keys bare: seed)
    seed = [0, 1, 2]

Every point (the product of the axes, first axis slowest) is checked as a whole experiment before anything is
written or submitted. The output folder holds ``sweep.json`` (the points and their axis values),
``points/<id>/<id>.toml`` (the point's experiment, its paths made absolute) and, from the worker that ran it,
``points/<id>/<id>.h5`` (``neuro run``'s results file, written part by part, atomically) or ``error.json`` (why
the point failed; the others go on). ``--resume`` runs again only the points whose results file is missing or
incomplete. The merged table (``neuro.sweep_report``) is written at the end.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from neuro import experiment, lock, results
from neuro.atomic import atomic_path
from neuro.errors import NeuroError

FORMAT = "neuro-sweep"
MANIFEST = "sweep.json"
POINTS = "points"
ERROR = "error.json"
LOCK_WAIT_S = 600.0   # a point task waits this long for a folder still held by an orphaned task of a killed sweep


@dataclass
class Point:
    id: str
    values: dict          # axis -> value
    text: str             # the point's experiment file (TOML)


@dataclass
class Sweep:
    path: Path
    text: str
    base: Path
    axes: dict            # axis -> list of values
    shards: int
    fixed: dict           # key -> value set at every point
    points: list[Point]

    def manifest(self) -> dict:
        return {"format": FORMAT, "version": 1, "sweep_file": str(self.path), "sweep": self.text,
                "base": str(self.base), "set": self.fixed, "axes": self.axes, "shards": self.shards,
                "points": [{"id": p.id, "values": p.values} for p in self.points]}


# --- the sweep file ---------------------------------------------------------------------------------------

def load_sweep(path) -> Sweep:
    """Read a sweep file and build and check every point; a mistake is a one-line NeuroError naming the point."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise NeuroError(f"cannot read sweep file {path}: {e.strerror}") from None
    raw = experiment.parse_toml(text, path)
    for key in raw.keys() - {"base", "shards", "set", "axes"}:
        raise NeuroError(f"{path}: unknown key {key!r}: a sweep file has base, shards, a [set] and an [axes] table")
    fixed = raw.get("set", {})
    if not isinstance(fixed, dict) or any(isinstance(v, dict) for v in fixed.values()):
        raise NeuroError(f"{path}: [set] must hold \"section.key\" = value pairs (quote the dotted keys)")
    if not isinstance(raw.get("base"), str):
        raise NeuroError(f"{path}: key 'base' must name the experiment file to vary, e.g. base = \"mnist.toml\"")
    shards = raw.get("shards", 1)
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise NeuroError(f"{path}: key 'shards' must be a whole number, 1 or more, got {shards!r}")
    axes = raw.get("axes", {})
    if not isinstance(axes, dict) or not axes:
        raise NeuroError(f"{path}: no [axes] table: add one, e.g. [axes] \"emulation.timesteps\" = [8, 16]")
    for axis in fixed.keys() & axes.keys():
        raise NeuroError(f"{path}: {axis!r} is both in [set] and in [axes]: keep one")
    for axis, values in axes.items():
        if isinstance(values, dict):
            raise NeuroError(f"{path}: axis [axes.{axis}] is a table: quote dotted keys, \"{axis}.KEY\" = [...]")
        if not isinstance(values, list) or not values:
            raise NeuroError(f"{path}: axis {axis!r} must be a non-empty list of values, got {values!r}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise NeuroError(f"{path}: axis {axis!r} lists a value twice: list each value once")
    base = (path.parent / raw["base"]).resolve()
    try:
        base_text = base.read_text()
    except OSError as e:
        raise NeuroError(f"{path}: base {raw['base']!r} cannot be read ({e.strerror}; it is relative to the sweep "
                         "file): fix the path") from None
    base_raw = experiment.parse_toml(base_text, base)
    combos = list(itertools.product(*axes.values()))
    width = max(3, len(str(len(combos) - 1)))
    points = []
    for i, combo in enumerate(combos):
        values = dict(zip(axes, combo))
        pid = f"p{i:0{width}d}"
        label = f"{path} point {pid} ({', '.join(f'{k} = {json.dumps(v)}' for k, v in values.items())})"
        points.append(Point(pid, values, _point_text(base, base_raw, {**fixed, **values}, label)))
    _check_points(points, path)
    return Sweep(path, text, base, axes, shards, fixed, points)


def _point_text(base: Path, base_raw: dict, values: dict, label: str) -> str:
    """The base experiment with the point's values set and its paths made absolute, as TOML text."""
    raw = json.loads(json.dumps(base_raw))  # a deep copy
    for axis, value in values.items():
        *tables, key = axis.split(".")
        node = raw
        for t in tables:
            node = node.setdefault(t, {})
            if not isinstance(node, dict):
                raise NeuroError(f"{label}: axis {axis!r}: {t!r} is a key, not a table, in {base}: fix the axis name")
        node[key] = value
    where = base.parent
    if isinstance(raw.get("model", {}).get("path"), str):
        raw["model"]["path"] = str((where / raw["model"]["path"]).resolve())
    b = raw.get("baselines", {})
    if isinstance(b.get("recorded"), list):
        b["recorded"] = [str((where / r).resolve()) if isinstance(r, str) else r for r in b["recorded"]]
    d = raw.get("data", {})
    prefix = experiment.datasets.IMAGEFOLDER
    if isinstance(d.get("dataset"), str) and d["dataset"].startswith(prefix):
        d["dataset"] = prefix + str((where / d["dataset"][len(prefix):]).resolve())
    header = f"# point of the sweep: {label}\n# base: {base}\n"
    return header + to_toml(raw)


def _check_points(points: list[Point], sweep_path: Path) -> None:
    """Each point through ``experiment.load_config`` (the schema, paths, chips), before anything is written."""
    with tempfile.TemporaryDirectory(prefix="neuro-sweep-check-") as tmp:
        for p in points:
            file = Path(tmp) / f"{p.id}.toml"
            file.write_text(p.text)
            try:
                experiment.load_config(file)
            except NeuroError as e:
                label = p.text.splitlines()[0].removeprefix("# point of the sweep: ")
                raise NeuroError(str(e).replace(str(file), label)) from None


def to_toml(raw: dict) -> str:
    """A TOML document of plain values (bool, int, float, str, lists, tables) that ``tomllib`` reads back equal."""
    lines = [f"{_bare(k)} = {_value(v)}" for k, v in raw.items() if not isinstance(v, dict)]

    def tables(prefix: list[str], node: dict):
        for k, v in node.items():
            if isinstance(v, dict):
                name = prefix + [_bare(k)]
                scalars = [f"{_bare(kk)} = {_value(vv)}" for kk, vv in v.items() if not isinstance(vv, dict)]
                lines.extend(["", f"[{'.'.join(name)}]", *scalars])
                tables(name, v)

    tables([], raw)
    return "\n".join(lines) + "\n"


def _bare(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) else json.dumps(key)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        return json.dumps(v)  # JSON string escapes are TOML basic-string escapes
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_bare(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise NeuroError(f"cannot write {v!r} ({type(v).__name__}) into an experiment file")


# --- the output folder ------------------------------------------------------------------------------------

def point_folder(out: Path, pid: str) -> Path:
    return out / POINTS / pid


def point_state(out: Path, point: Point) -> str:
    """"done" (every part of the results file there), "failed" (an error recorded), "partial" or "missing"."""
    folder = point_folder(out, point.id)
    h5 = folder / f"{point.id}.h5"
    if h5.exists():
        try:
            config = experiment.parse_toml(point.text, h5)
            chips = config.get("emulation", {}).get("chips", [experiment.FLOAT])
            if results.parts(h5) >= {"meta", "conversion", "baselines", *(f"chips/{c}" for c in chips)}:
                return "done"
        except NeuroError:
            pass
    if (folder / ERROR).exists():
        return "failed"
    return "partial" if h5.exists() else "missing"


def _prepare(out: Path, sweep: Sweep, resume: bool) -> None:
    """Write the manifest and the points' experiment files, or (``resume``) check they are this sweep's."""
    manifest = out / MANIFEST
    if manifest.exists():
        if not resume:
            raise NeuroError(f"{out} already holds a sweep: finish it with --resume, or write into another folder")
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            raise NeuroError(f"cannot read {manifest} ({e}): write the sweep into another folder") from None
        new = sweep.manifest()
        if any(old.get(k) != new[k] for k in ("points", "shards", "set")):
            raise NeuroError(f"{sweep.path} is not the sweep in {out} (its points, [set] or shards differ): resume with "
                             "the original sweep file, or write into another folder")
    elif (out / POINTS).exists():
        raise NeuroError(f"{out / POINTS} exists but {manifest} does not: write the sweep into another folder")
    for p in sweep.points:
        file = point_folder(out, p.id) / f"{p.id}.toml"
        if file.exists() and file.read_text() != p.text:
            raise NeuroError(f"{file} differs from point {p.id} of {sweep.path} (the base experiment changed?): "
                             "resume with the original files, or write into another folder")
        if not file.exists():
            with atomic_path(file) as tmp:
                tmp.write_text(p.text)
    if not manifest.exists():
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(sweep.manifest(), indent=1))


def read_manifest(out) -> dict:
    file = Path(out) / MANIFEST
    try:
        return json.loads(file.read_text())
    except OSError:
        raise NeuroError(f"{file} does not exist: {out} is not a sweep folder (write one with `neuro sweep`)") from None
    except ValueError as e:
        raise NeuroError(f"{file} is damaged ({e}): run the sweep again into a new folder") from None


def _record_failure(folder: Path, message: str, trace: str = "") -> None:
    with atomic_path(folder / ERROR) as tmp:
        tmp.write_text(json.dumps({"error": message, "host": socket.gethostname(), "pid": os.getpid(),
                                   "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "traceback": trace}, indent=1))


# --- one point, on a worker -------------------------------------------------------------------------------

def run_point(config: str, shards: int = 1, data_root: str | None = None) -> dict:
    """Run one point's experiment into its folder (resuming what a killed worker left); a failure is recorded in
    ``error.json`` and returned, never raised, so the other points go on."""
    config = Path(config)
    folder = config.parent
    start = time.time()
    where = f"worker {socket.gethostname()} (pid {os.getpid()})"
    os.environ.setdefault("NEURO_THREADS", "1")  # unless the worker's owner chose: one engine thread per task
    try:
        if data_root:
            if not Path(data_root).is_dir():
                raise NeuroError(f"{where} cannot see the data folder {data_root} (NEURO_DATA on the machine that "
                                 "started the sweep): data travel by path; mount it at the same path on every worker")
            os.environ["NEURO_DATA"] = data_root
        if not config.is_file():
            raise NeuroError(f"{where} cannot see {config}: the sweep folder travels by path; put it on a file "
                             "system every worker mounts at the same path")
        _wait_free(folder)
        from neuro import shard
        experiment.run_experiment(config, folder, resume=True, progress=False,
                                  simulate=shard.sharded(shards) if shards > 1 else None)
        (folder / ERROR).unlink(missing_ok=True)
        return {"id": folder.name, "status": "done", "seconds": time.time() - start, "worker": where}
    except Exception as e:  # noqa: BLE001: any failure of one point is recorded and the sweep goes on
        message = str(e) if isinstance(e, NeuroError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        if isinstance(e, NeuroError) and "cannot see" not in message and "does not exist" in message:
            message += f" (on {where})"
        with contextlib.suppress(OSError):
            _record_failure(folder, message, traceback.format_exc())
        return {"id": folder.name, "status": "failed", "error": message, "seconds": time.time() - start,
                "worker": where}


def _wait_free(folder: Path, timeout: float = LOCK_WAIT_S) -> None:
    """Wait while another process (a task orphaned by a killed sweep) holds the point's folder."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return lock.check_free(folder)
        except NeuroError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


# --- the client -------------------------------------------------------------------------------------------

def local_environment(workers: int, cores: int) -> dict:
    """Environment of each local worker process: engine (NEURO_THREADS) and numba threads share the cores between
    the workers; BLAS and OpenMP single-threaded (the engine runs BLAS single-threaded anyway)."""
    threads = str(max(1, cores // workers))
    return {"NEURO_THREADS": threads, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None):
    """A client of the Dask scheduler at ``scheduler``, or of a local cluster of ``workers`` processes (default:
    one per usable core) with one task thread each, listening on 127.0.0.1 only."""
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise NeuroError(f"cannot reach the Dask scheduler at {scheduler} ({' '.join(str(e).split())}): start "
                             "it (`dask scheduler`) or fix --scheduler") from None
        with client:
            yield client
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = workers or cores
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      env=local_environment(n, cores)) as cluster, Client(cluster) as client:
        yield client


def run_sweep(sweep_path, out_dir, scheduler: str | None = None, resume: bool = False, workers: int | None = None,
              progress: bool = True) -> dict:
    """Run every point not yet done; returns {"done": [...], "failed": {id: error}, "skipped": [...]}."""
    from neuro import sweep_report

    sweep = load_sweep(sweep_path)
    out = Path(out_dir)
    experiment._check_folder(out)
    say = (lambda msg: print(f"[sweep] {msg}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    with lock.hold(out):
        _prepare(out, sweep, resume)
        states = {p.id: point_state(out, p) for p in sweep.points}
        todo = [p for p in sweep.points if states[p.id] != "done"]
        skipped = [p.id for p in sweep.points if states[p.id] == "done"]
        say(f"{len(sweep.points)} points: {len(skipped)} already done, {len(todo)} to run")
        summary = {"done": [], "failed": {}, "skipped": skipped}
        if todo:
            with dask_client(scheduler, workers) as client:
                _submit(client, out, sweep, todo, summary, progress)
        table = sweep_report.write_table(out)
        say(f"wrote {', '.join(str(t) for t in table)}")
    return summary


def _submit(client, out: Path, sweep: Sweep, todo: list[Point], summary: dict, progress: bool) -> None:
    from distributed import as_completed
    from tqdm.auto import tqdm

    data_root = os.environ.get("NEURO_DATA")
    data_root = str(Path(data_root).resolve()) if data_root else None
    futures = {client.submit(run_point, str((point_folder(out, p.id) / f"{p.id}.toml").resolve()), sweep.shards,
                             data_root, key=f"neuro-point-{p.id}-{os.urandom(4).hex()}", pure=False): p.id
               for p in todo}
    threads = max(1, sum(client.nthreads().values()))
    with tqdm(total=len(todo), unit="point", disable=not progress, desc="sweep") as bar:
        bar.set_postfix(failed=0, running=min(threads, len(todo)))
        for future in as_completed(futures):
            pid = futures[future]
            try:
                r = future.result()
            except Exception as e:  # noqa: BLE001: e.g. KilledWorker: the point's task killed its workers
                r = {"id": pid, "status": "failed", "error": f"{type(e).__name__}: {' '.join(str(e).split())}"}
                with contextlib.suppress(OSError):
                    _record_failure(point_folder(out, pid), r["error"])
            if r["status"] == "done":
                summary["done"].append(pid)
            else:
                summary["failed"][pid] = r["error"]
            bar.update(1)
            left = len(todo) - bar.n
            bar.set_postfix(failed=len(summary["failed"]), running=min(threads, left))


# --- command line -----------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    """The ``neuro sweep`` and ``neuro sweep-report`` subcommands."""
    p = subparsers.add_parser("sweep", help="run an experiment at every point of a grid of key values, on Dask",
                              description="Run a sweep file (a base experiment and the axes to vary): one results "
                                          "file per point, spread over a local or existing Dask cluster, then one "
                                          "table of all points.")
    p.add_argument("sweep", help="sweep file, e.g. experiments/mnist_sweep.toml")
    p.add_argument("-o", "--output", required=True, help="folder for the points and the merged table")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a local "
                                       "cluster on this machine's cores)")
    p.add_argument("--workers", type=int, help="local cluster only: worker processes (default: one per core)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted sweep: run only the points not done")
    p.add_argument("--no-progress", action="store_true", help="no progress messages or bar")
    r = subparsers.add_parser("sweep-report", help="figures and markdown of a sweep: accuracy and energy by axis, "
                                                   "Pareto fronts", description="Write the report of a sweep folder.")
    r.add_argument("sweep_dir", help="folder written by `neuro sweep`")
    r.add_argument("-o", "--output", required=True, help="folder for sweep.md and the figures")


def cmd_sweep(args) -> None:
    if args.workers is not None and args.workers < 1:
        raise NeuroError(f"--workers must be at least 1, got {args.workers}")
    if args.workers and args.scheduler:
        raise NeuroError("--workers sizes a local cluster: leave it out with --scheduler (the cluster has its workers)")
    s = run_sweep(args.sweep, args.output, args.scheduler, args.resume, args.workers, not args.no_progress)
    print(f"{len(s['done'])} points done, {len(s['skipped'])} done before, {len(s['failed'])} failed; "
          f"table {Path(args.output) / 'sweep.csv'}")
    if s["failed"]:
        first, error = min(s["failed"].items())   # the first by point id, not by which failed first
        raise NeuroError(f"{len(s['failed'])} point(s) failed, e.g. {first}: {error} -- fix, then run again with "
                         "--resume")


def cmd_sweep_report(args) -> None:
    from neuro import sweep_report

    print(f"wrote {sweep_report.write_report(args.sweep_dir, args.output)}")
