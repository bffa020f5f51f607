"""Reliability: the same seed gives the same numbers whatever the threads, batch size or machine."""

import errno
import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chips
from conftest import REFERENCE_ONNX, small_converted_cnn
from neuro import experiment, graph, results
from neuro.convert import layer_scales
from neuro.encode import Encoder
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS, Engine

# what the network did, per image; event_steps and dense_steps count the engine's own steps per slice
ACTIVITY = [LAYER_COUNT_FIELDS.index(f) for f in LAYER_COUNT_FIELDS if f not in ("event_steps", "dense_steps")]


@pytest.mark.parametrize("chip", ["float", *chips.available()])
def test_rate_coded_run_is_independent_of_threads_and_batch_size(chip):
    snn, _ = small_converted_cnn()
    rng = np.random.default_rng(3)
    images, labels = rng.random((40, 1, 10, 10)).astype(np.float32), rng.integers(0, 3, 40)
    program = None if chip == "float" else chips.get(chip).compile(snn)
    runs = {}
    for threads in (1, 2):
        engine = Engine(program.snn, program.backend(), threads=threads) if program else Engine(snn, threads=threads)
        for batch in (7, 256):
            runs[threads, batch] = engine.run(images, labels, 12, encoding="rate", seed=5, batch_size=batch,
                                              progress=False)
    first = runs[1, 256]
    assert first.counts_by_step.sum() > 0 and 0 < first.accuracy < 1
    for r in runs.values():
        np.testing.assert_array_equal(r.accuracy_by_step, first.accuracy_by_step)
        np.testing.assert_array_equal(r.counts_by_step[..., ACTIVITY], first.counts_by_step[..., ACTIVITY])
        np.testing.assert_array_equal(r.predictions, first.predictions)


def test_rate_spikes_of_an_image_depend_on_its_index_not_its_batch():
    images = np.random.default_rng(0).random((6, 1, 4, 4)).astype(np.float32)
    whole = Encoder("rate", 9).for_batch(images, 0)
    tail = Encoder("rate", 9).for_batch(images[4:], 4)
    for _ in range(3):
        np.testing.assert_array_equal(whole.step()[4:], tail.step())
    other_seed = Encoder("rate", 10).for_batch(images[4:], 4).step()
    assert not np.array_equal(other_seed, Encoder("rate", 9).for_batch(images[4:], 4).step())


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_encoder_rejects_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(NeuroError, match="seed must be an integer of 0 or more"):
        Encoder("rate", seed)


def test_conversion_statistics_run_on_one_blas_thread(monkeypatch):
    # a multithreaded BLAS splits sums by its thread count: the scales moved by a ULP between machines
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(1)
    net = graph.Network((64,), [graph.Dense(rng.normal(0, 0.2, (32, 64))), graph.ReLU(),
                                graph.Dense(rng.normal(0, 0.2, (10, 32)))])
    forward, seen = net.forward, []

    def spy(x, collect=False):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return forward(x, collect=collect)

    monkeypatch.setattr(net, "forward", spy)
    layer_scales(net, rng.random((50, 64)).astype(np.float32), 99.9)
    assert seen and set(seen) == {1}


# --- the results folder: one writer, checked resume, validation first, one-line OS errors ---------------

REPO = Path(__file__).resolve().parents[1]
TINY = f"""
seed = 1
[data]
images = 32
[model]
path = "{REFERENCE_ONNX}"
[conversion]
calibration = 32
[emulation]
chips = ["float"]
timesteps = 4
batch_size = 32
[baselines]
platforms = []
"""


def config_file(folder, text=TINY, name="tiny.toml"):
    path = folder / name
    path.write_text(text)
    return path


def neuro(*args, **kwargs):
    """The real command line in a subprocess."""
    return subprocess.Popen([sys.executable, "-m", "neuro.cli", *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def one_error_line(proc) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in err, err
    [line] = err.splitlines()
    assert line.startswith("error: ")
    return line


def test_a_second_writer_fails_at_once_naming_the_holder_and_a_killed_holder_frees_the_folder(tmp_path, mnist_test):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from neuro import lock\n"
                               f"with lock.hold({str(out)!r}):\n    print('held', flush=True); time.sleep(300)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        second = neuro("run", config_file(tmp_path), "-o", out, "--no-progress")
        line = one_error_line(second)
        assert f"is in use by another run (pid {holder.pid} on {socket.gethostname()} since " in line
        assert not (out / "tiny.h5").exists()
    finally:
        holder.kill()
        holder.wait()
    run = neuro("run", config_file(tmp_path), "-o", out, "--no-progress")
    assert run.communicate(timeout=300)[0] == f"wrote {out / 'tiny.h5'}\n" and run.returncode == 0


def test_resume_refuses_a_changed_model_file_and_removes_stale_temps(tmp_path, mnist_test):
    model = tmp_path / "model.onnx"
    shutil.copyfile(REFERENCE_ONNX, model)
    config = config_file(tmp_path, TINY.replace(str(REFERENCE_ONNX), "model.onnx"))
    out = experiment.run_experiment(config, tmp_path / "out", progress=False)
    identity = results.read_identity(out)
    assert identity["data"] == {"dataset": "mnist", "split": "test", "images": 32, "sha256": identity["data"]["sha256"]}
    assert identity["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert set(identity["versions"]) == {"neuro", "numpy", "numba"}
    assert results.read(out).system["engine_threads"] >= 1 and results.read(out).system["cpu"]

    stale = out.parent / ".tiny.h5.k1ll3d.tmp.h5"  # as atomic_path names its temp files
    stale.write_bytes(b"half a file")
    experiment.run_experiment(config, out.parent, resume=True, progress=False)
    assert not stale.exists()

    with open(model, "ab") as f:
        f.write(b"\0")
    with pytest.raises(NeuroError, match=r"cannot resume .*tiny.h5: the model file changed \(sha256 "):
        experiment.run_experiment(config, out.parent, resume=True, progress=False)


def test_resume_refuses_other_data_or_versions(tmp_path, mnist_test, monkeypatch):
    config = config_file(tmp_path)
    out = experiment.run_experiment(config, tmp_path / "out", progress=False)
    monkeypatch.setattr(experiment, "_data", lambda c: (mnist_test[0][1:33], mnist_test[1][1:33]))
    with pytest.raises(NeuroError, match=r"the data changed \(mnist test, 32 images, sha256 \w+, now mnist test"):
        experiment.run_experiment(config, out.parent, resume=True, progress=False)
    monkeypatch.undo()
    real = experiment._system
    monkeypatch.setattr(experiment, "_system", lambda: {**real(), "versions": {**real()["versions"], "numpy": "0.1"}})
    with pytest.raises(NeuroError, match=r"numpy \S+ is now 0.1: resume with the original inputs"):
        experiment.run_experiment(config, out.parent, resume=True, progress=False)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("[baselines]", "[baselines]\nwindow_s = inf"), "'baselines.window_s' must be a finite"),
    (lambda t: t.replace("[baselines]", "[baselines]\nwarmup_s = nan"), "'baselines.warmup_s' must be a finite"),
    (lambda t: t.replace("calibration = 32", "calibration = 32\nv_init = nan"), "'conversion.v_init' must be a finite"),
    (lambda t: t.replace("seed = 1", "seed = -1"), r"'seed' must be in \[0, 2\^63\)"),
    (lambda t: t.replace("images = 32", "images = 20000"), "'data.images' is 20000 but the mnist test split has "
                                                           "10000 images: use at most 10000"),
    (lambda t: t.replace("calibration = 32", "calibration = 70000"), "'conversion.calibration' is 70000"),
    (lambda t: t.replace('chips = ["float"]', 'chips = ["float", "loihi"]\nencoding = "rate"\ncoefficients = "x"'),
     "key 'emulation.coefficients': unknown Loihi coefficient set 'x'"),
])
def test_nothing_is_written_when_validation_fails(tmp_path, mnist_test, edit, message):
    with pytest.raises(NeuroError, match=message) as e:
        experiment.run_experiment(config_file(tmp_path, edit(TINY)), tmp_path / "out", progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_os_failures_are_one_line_errors(tmp_path, mnist_test):
    afile = tmp_path / "afile"
    afile.write_text("")
    config = config_file(tmp_path)
    assert "afile is a file, not a folder: give a folder path" in one_error_line(neuro("run", config, "-o", afile))
    assert "afile is a file, not a folder" in one_error_line(neuro("run", config, "-o", afile / "sub"))
    model = REFERENCE_ONNX
    line = one_error_line(neuro("convert", model, "-o", afile / "x.h5", "--calibration", "10"))
    assert "a file stands where a folder should be" in line
    line = one_error_line(neuro("convert", model, "-o", tmp_path, "--calibration", "10"))
    assert f"Is a directory ({tmp_path}): that is a folder: give a file name" in line
    snn = tmp_path / "snn.h5"
    assert neuro("convert", model, "-o", snn, "--calibration", "10").wait(timeout=300) == 0
    for args, message in ((["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
                          (["--n", "20000"], "--n is 20000 but the mnist test split has 10000 images"),
                          (["--plot", tmp_path], "is a folder: give a file name"),
                          (["--seed", "-1", "--encoding", "rate"], "seed must be an integer of 0 or more")):
        assert message in one_error_line(neuro("simulate", snn, "--no-progress", *args))


def test_a_full_disk_is_a_one_line_error_saying_what_is_needed(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    results.add_part(tmp_path / "r.h5", "meta", lambda g: None)
    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(NeuroError, match=r"no space left on the disk of .* writing part 'conversion' \(it needs a copy "
                                         r"of the 0\.0 MB results file plus the new part\): free some space"):
        results.add_part(tmp_path / "r.h5", "conversion", lambda g: None)
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_run_with_one_line_leaving_the_finished_parts(tmp_path, mnist_test, sig, status):
    slow = TINY.replace("images = 32", "images = 3000").replace("timesteps = 4", "timesteps = 400")
    config = config_file(tmp_path, slow.replace('chips = ["float"]', 'chips = ["float"]\nencoding = "rate"'))
    out = tmp_path / "out"
    run = neuro("run", config, "-o", out)
    for line in run.stderr:
        if "emulating on float" in line:
            break
    time.sleep(1)
    run.send_signal(sig)
    _, err = run.communicate(timeout=300)
    assert run.returncode == status and "Traceback" not in err
    assert [line.strip() for line in err.splitlines() if line.strip()][-1] == "interrupted: run again with --resume"
    assert results.parts(out / "tiny.h5") == {"meta", "conversion"}
    assert sorted(p.name for p in out.iterdir()) == [".neuro-lock", "tiny.h5"]


def _fields(path) -> dict:
    """Every dataset and attribute of a results file's conversion and chip parts, by path. Left out: the emulator's
    wall time, the parts' checksums (they hash it), and the engine's counts of which synapse path it took
    (event or dense: chosen per slice of a batch, so they follow the slicing; no cost model reads them)."""
    import h5py

    path_fields = [LAYER_COUNT_FIELDS.index(f) for f in ("event_steps", "dense_steps")]  # the engine's own paths

    def value(name, data):
        data = np.asarray(data)
        if name.endswith("counts_by_step"):
            data = np.delete(data, path_fields, axis=-1)
        return repr(data.tolist()) if data.dtype == object else data.tobytes()

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if name.startswith(("conversion", "chips")) and not name.endswith(("event_steps", "dense_steps")):
                if isinstance(obj, h5py.Dataset):
                    out[name] = value(name, obj[()])
                out.update({f"{name}@{k}": str(v) for k, v in obj.attrs.items() if k not in ("seconds", "sha256")})
        f.visititems(visit)
    return out


def test_results_files_are_identical_field_by_field_across_threads_and_batch_sizes(tmp_path, mnist_test):
    """The same experiment with 1 and 2 engine threads and batch sizes 32 and 7: every stored number the same."""
    text = TINY.replace('chips = ["float"]', 'chips = ["float", "loihi", "truenorth"]\nencoding = "rate"')
    runs = []
    for threads, batch in ((1, 32), (2, 7)):
        folder = tmp_path / f"t{threads}b{batch}"
        folder.mkdir()
        config = config_file(folder, text.replace("batch_size = 32", f"batch_size = {batch}"))
        env = {**__import__("os").environ, "NEURO_THREADS": str(threads)}
        proc = neuro("run", config, "-o", folder / "out", "--no-progress", env=env)
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
        runs.append(_fields(folder / "out" / "tiny.h5"))
    first, second = runs
    differing = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
    assert len(first) > 50 and differing == []
