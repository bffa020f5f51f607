"""neuro sweep: the sweep file, exact shard merging, and acceptance runs on a real Dask cluster on 127.0.0.1
(a scheduler and worker processes started here with the ``dask`` command line; every wait is bounded)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REFERENCE_ONNX, REPO, small_converted_cnn
from neuro import experiment, results, shard, sweep, sweep_report
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS

#: what the network did; event_steps and dense_steps count the engine's own steps per slice (they depend on how the
#: images are sliced, in one process too: batch size, threads), so they are left out of the comparisons
ACTIVITY = [i for i, f in enumerate(LAYER_COUNT_FIELDS) if f not in ("event_steps", "dense_steps")]


def activity(layers):
    return [(c.name, c.neurons, *(getattr(c, LAYER_COUNT_FIELDS[i]) for i in ACTIVITY)) for c in layers]

DASK = Path(sys.executable).parent / "dask"
BASE = f"""
seed = 1
[data]
images = 16
[model]
path = "{REFERENCE_ONNX}"
[conversion]
calibration = 32
[emulation]
chips = ["float"]
timesteps = 4
encoding = "rate"
batch_size = 16
[baselines]
platforms = []
"""


def write_sweep(folder: Path, axes: str, base: str = BASE, extra: str = "") -> Path:
    (folder / "base.toml").write_text(base)
    path = folder / "sweep.toml"
    path.write_text(f'base = "base.toml"\n{extra}\n[axes]\n{axes}\n')
    return path


# --- the sweep file (no cluster) --------------------------------------------------------------------------

def test_points_are_the_product_of_the_axes(tmp_path):
    s = sweep.load_sweep(write_sweep(tmp_path, '"emulation.timesteps" = [2, 4, 8]\nseed = [0, 1]'))
    assert [p.id for p in s.points] == [f"p{i:03d}" for i in range(6)]
    assert s.points[3].values == {"emulation.timesteps": 4, "seed": 1}
    config = experiment.parse_toml(s.points[3].text, "p003")
    assert config["emulation"]["timesteps"] == 4 and config["seed"] == 1
    assert config["model"]["path"] == str(REFERENCE_ONNX)  # absolute: the point's file lies elsewhere


def test_set_applies_to_every_point_and_may_not_also_be_an_axis(tmp_path):
    s = sweep.load_sweep(write_sweep(tmp_path, "seed = [0, 1]", extra='[set]\n"data.images" = 8'))
    assert all(experiment.parse_toml(p.text, p.id)["data"]["images"] == 8 for p in s.points)
    assert s.points[0].values == {"seed": 0}
    with pytest.raises(NeuroError, match="'seed' is both in \\[set\\] and in \\[axes\\]"):
        sweep.load_sweep(write_sweep(tmp_path, "seed = [0, 1]", extra="[set]\nseed = 3"))


def test_the_example_sweep_is_valid():
    s = sweep.load_sweep(REPO / "experiments" / "mnist_sweep.toml")
    assert len(s.points) == 5 * 4 * 3 and s.shards == 1


def test_to_toml_reads_back_equal():
    raw = {"seed": 3, "name": 'a "quoted"\\ string', "data": {"x": 1.5e-7, "flag": True, "list": ["a", "b"]},
           "chips": {"loihi": {"cores": [1, 2], "deep": {"k": 0.1}}}}
    assert experiment.parse_toml(sweep.to_toml(raw), "t") == raw


@pytest.mark.parametrize("axes, message", [
    ('"emulation.timestep" = [2]', r"point p000 \(emulation.timestep = 2\): unknown key 'emulation.timestep'"),
    ('"conversion.percentile" = [99.0, 101]', r"point p001 .*'conversion.percentile' must be in \(0, 100\], got 101"),
    ('seed = []', "axis 'seed' must be a non-empty list"),
    ('seed = [1, 1]', "axis 'seed' lists a value twice"),
    ('"emulation.chips" = [["float"], ["nochip"]]', "point p001 .*names 'nochip'"),
])
def test_a_bad_sweep_fails_before_anything_is_written(tmp_path, axes, message):
    with pytest.raises(NeuroError, match=message):
        sweep.run_sweep(write_sweep(tmp_path, axes), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_sweep_keys(tmp_path):
    with pytest.raises(NeuroError, match="unknown key 'bogus'"):
        sweep.load_sweep(write_sweep(tmp_path, "seed = [0]", extra="bogus = 1"))
    with pytest.raises(NeuroError, match="'shards' must be a whole number"):
        sweep.load_sweep(write_sweep(tmp_path, "seed = [0]", extra="shards = 0"))
    (tmp_path / "s2.toml").write_text('base = "nothere.toml"\n[axes]\nseed = [0]\n')
    with pytest.raises(NeuroError, match="base 'nothere.toml' cannot be read"):
        sweep.load_sweep(tmp_path / "s2.toml")


def test_a_worker_without_the_data_names_the_path(tmp_path):
    s = sweep.load_sweep(write_sweep(tmp_path, "seed = [0]"))
    sweep._prepare(tmp_path / "out", s, resume=False)
    config = sweep.point_folder(tmp_path / "out", "p000") / "p000.toml"
    r = sweep.run_point(str(config), 1, str(tmp_path / "no-data"))
    assert r["status"] == "failed" and f"cannot see the data folder {tmp_path / 'no-data'}" in r["error"]
    assert "mount it at the same path on every worker" in r["error"]
    stored = json.loads((config.parent / sweep.ERROR).read_text())
    assert stored["error"] == r["error"] and sweep.point_state(tmp_path / "out", s.points[0]) == "failed"


# --- shards merged exactly (in-process) -------------------------------------------------------------------

@pytest.mark.parametrize("chip", ["float", "loihi"])
def test_shards_merge_to_the_single_run_bit_for_bit(chip):
    import chips

    snn, images = small_converted_cnn()
    labels = np.arange(len(images)) % 3
    emulation = {"encoding": "rate", "timesteps": 6, "batch_size": 4}
    program = None if chip == "float" else chips.compile_for(chip, snn, "rate")
    whole = experiment._engine(program, snn).run(images, labels, 6, encoding="rate", seed=5, batch_size=7,
                                                 progress=False)
    parts = [shard.run_shard(chip, snn, images[a:b], labels[a:b], emulation, 5, a)
             for a, b in shard.bounds(len(images), 3)]
    merged = shard.merge(parts)
    assert merged.n_images == whole.n_images and np.array_equal(merged.correct_by_step, whole.correct_by_step)
    assert np.array_equal(merged.counts_by_step[..., ACTIVITY], whole.counts_by_step[..., ACTIVITY])
    assert np.array_equal(merged.predictions, whole.predictions)
    assert activity(merged.layers) == activity(whole.layers)
    wrong = [shard.run_shard(chip, snn, images[a:b], labels[a:b], emulation, 5, 0)  # offsets left out
             for a, b in shard.bounds(len(images), 3)]
    assert not np.array_equal(shard.merge(wrong).counts_by_step[..., ACTIVITY], whole.counts_by_step[..., ACTIVITY])


def test_bounds():
    assert shard.bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard.bounds(2, 5) == [(0, 1), (1, 2)]


# --- acceptance: a real Dask cluster on 127.0.0.1 ---------------------------------------------------------

def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), NEURO_THREADS="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return env


def _worker(scheduler_file: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                             "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--name", name,
                             "--death-timeout", "60"], env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _until(condition, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mnist_test):
    """A scheduler and two worker processes on 127.0.0.1, and a client to watch them."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("cluster")
    file = folder / "scheduler.json"
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        _until(file.exists, 60, "the scheduler")
        procs += [_worker(file, f"w{i}") for i in range(2)]
        client = Client(scheduler_file=str(file), timeout="30s")
        _until(lambda: len(client.nthreads()) >= 2, 90, "two workers")
        yield file, json.loads(file.read_text())["address"], client, procs
        client.close()
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def _cli(*args, timeout=300) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "neuro.cli", *args], env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(out: Path, s) -> dict:
    """Finished points -> (inode, mtime) of their results files."""
    return {p.id: _stamp(out, p.id) for p in s.points if sweep.point_state(out, p) == "done"}


def _stamp(out: Path, pid: str):
    st = (sweep.point_folder(out, pid) / f"{pid}.h5").stat()
    return st.st_ino, st.st_mtime_ns


def test_a_sweep_completes_on_the_cluster_and_records_failed_points(cluster, tmp_path):
    _, address, *_ = cluster
    path = write_sweep(tmp_path, '"data.images" = [16, 99999]\n"emulation.timesteps" = [2, 4]')
    out = tmp_path / "out"
    summary = sweep.run_sweep(path, out, scheduler=address, progress=False)
    assert sorted(summary["done"]) == ["p000", "p001"] and sorted(summary["failed"]) == ["p002", "p003"]
    assert "key 'data.images' is 99999 but the mnist test split has 10000 images" in summary["failed"]["p002"]
    frame = sweep_report.table(out)
    assert list(frame["status"]) == ["done", "done", "failed", "failed"]
    assert list(frame["timesteps"][:2]) == [2, 4] and frame["accuracy"][:2].between(0, 1).all()
    assert "99999" in frame["error"][3]
    assert (out / "sweep.csv").read_text().startswith("point,data.images,emulation.timesteps,status,chip")
    report = sweep_report.write_report(out, tmp_path / "report")
    assert "accuracy_vs_emulation_timesteps.png" in report.read_text() and "p002 (failed)" in report.read_text()
    stamps = {pid: _stamp(out, pid) for pid in ("p000", "p001")}
    again = _cli("sweep", str(path), "-o", str(out), "--scheduler", address, "--resume", "--no-progress")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 2 and "error: 2 point(s) failed, e.g. p002: " in err and "--resume" in err
    assert {pid: _stamp(out, pid) for pid in ("p000", "p001")} == stamps  # done points were not run again


def test_killing_a_worker_loses_no_finished_point(cluster, tmp_path):
    file, address, client, procs = cluster
    extra = _worker(file, "victim")
    procs.append(extra)
    _until(lambda: len(client.nthreads()) >= 3, 90, "the third worker")
    victim = next(a for a, info in client.scheduler_info()["workers"].items() if info["name"] == "victim")
    path = write_sweep(tmp_path, '"emulation.timesteps" = [2, 3, 4, 5]\nseed = [0, 1, 2]')
    s = sweep.load_sweep(path)
    out = tmp_path / "out"
    run = _cli("sweep", str(path), "-o", str(out), "--scheduler", address, "--no-progress")
    try:
        _until(lambda: _done(out, s) and client.processing().get(victim), 240, "a finished point while the "
               "third worker runs one", every=0.05)
        before = _done(out, s)
        running = client.processing()[victim]
        extra.kill()
        _, err = run.communicate(timeout=400)
    finally:
        run.kill()
    assert run.returncode == 0, err
    assert running and len(_done(out, s)) == len(s.points)
    after = _done(out, s)
    assert {pid: after[pid] for pid in before} == before  # the points finished before the kill were left alone


def test_resume_after_killing_the_client_runs_only_the_missing_points(cluster, tmp_path):
    _, address, *_ = cluster
    # 12 small points, killed at the first finished one: on a quiet machine 8 points could all finish before the
    # kill landed
    path = write_sweep(tmp_path, '"emulation.timesteps" = [2, 3, 4, 5, 6, 7]\nseed = [0, 1]')
    s = sweep.load_sweep(path)
    out = tmp_path / "out"
    run = _cli("sweep", str(path), "-o", str(out), "--scheduler", address, "--no-progress")
    try:
        _until(lambda: len(_done(out, s)) >= 1, 240, "a finished point", every=0.05)
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    finally:
        run.kill()
    before = _done(out, s)
    assert len(before) < len(s.points), "the sweep finished before it could be killed: give it more points"
    with pytest.raises(NeuroError, match="already holds a sweep"):
        sweep.run_sweep(path, out, scheduler=address, progress=False)
    summary = sweep.run_sweep(path, out, scheduler=address, resume=True, progress=False)
    assert set(before) <= set(summary["skipped"]) and not set(before) & set(summary["done"])
    assert sorted(summary["done"] + summary["skipped"]) == [p.id for p in s.points] and not summary["failed"]
    after = _done(out, s)
    assert {pid: after[pid] for pid in before} == before


CHIPS_BASE = BASE.replace('chips = ["float"]', 'chips = ["float", "loihi", "truenorth"]')


def test_sharded_points_equal_the_single_process_run(cluster, tmp_path):
    from distributed import get_task_stream

    _, address, client, _ = cluster
    path = write_sweep(tmp_path, "seed = [3]", base=CHIPS_BASE, extra="shards = 3")
    with get_task_stream(client) as stream:
        summary = sweep.run_sweep(path, tmp_path / "out", scheduler=address, progress=False)
    assert summary["done"] == ["p000"], summary
    ran = [t["key"] for t in stream.data]
    assert sum(str(k).startswith("('run_shard") or str(k).startswith("run_shard") for k in ran) == 9, ran  # 3 chips x 3
    sharded = results.read(tmp_path / "out" / "points" / "p000" / "p000.h5")
    single = results.read(experiment.run_experiment(tmp_path / "out" / "points" / "p000" / "p000.toml",
                                                    tmp_path / "single", progress=False))
    assert set(sharded.chips) == set(single.chips) == {"float", "loihi", "truenorth"}
    for name, a in single.chips.items():
        b = sharded.chips[name]
        assert np.array_equal(a.accuracy_by_step, b.accuracy_by_step)
        assert np.array_equal(a.counts_by_step[..., ACTIVITY], b.counts_by_step[..., ACTIVITY])
        assert activity(a.layers) == activity(b.layers)
        assert a.cost == b.cost and a.coefficients == b.coefficients
