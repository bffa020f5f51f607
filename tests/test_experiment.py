"""Experiment runner, results file and report: a tiny MNIST experiment (32 images, T = 4, batch 1, short windows)."""

import argparse
import re

import h5py
import numpy as np
import pytest

from conftest import REFERENCE_ONNX
from neuro import datasets, experiment, report, results
from neuro.baselines import write_json
from neuro.errors import NeuroError

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
platforms = ["cpu-onnxruntime"]
batches = [1]
window_s = 0.02
warmup_s = 0.0
idle_s = 0.1
"""

PARTS = {"meta", "conversion", "chips/float", "baselines"}


def write_config(folder, text=TINY, name="tiny.toml"):
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist_test):
    folder = tmp_path_factory.mktemp("experiment")
    return experiment.run_experiment(write_config(folder), folder / "out", progress=False)


def test_run_writes_every_part(tiny_run):
    assert tiny_run.name == "tiny.h5"
    assert results.parts(tiny_run) == PARTS
    r = results.read(tiny_run)
    assert r.seed == 1 and "timesteps = 4" in r.config and r.system["versions"]["numpy"]
    chip = r.chips["float"]
    assert chip.accuracy_by_step.shape == (4,) and chip.n_images == 32 and chip.coefficients == {}
    assert [c.name for c in chip.layers][0].startswith("0:") and sum(c.synops for c in chip.layers) > 0
    assert chip.cost["synops_per_image"].provenance == results.MODELED
    assert chip.cost["energy_per_image"].value is None
    [b] = r.baselines
    assert b.source == "measured" and b.results.platforms[0].points[0].batch == 1
    assert b.results.platforms[0].points[0].throughput.provenance == "measured"
    assert results.read_snn(tiny_run).n_classes == 10


def test_existing_results_need_resume(tiny_run, tmp_path):
    with pytest.raises(NeuroError, match="already exists: resume it"):
        experiment.run_experiment(write_config(tmp_path), tiny_run.parent, progress=False)


def test_resume_after_interruption(tmp_path, mnist_test, monkeypatch):
    config = write_config(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(config, tmp_path / "out", progress=False)
    out = tmp_path / "out" / "tiny.h5"
    assert results.parts(out) == PARTS - {"baselines"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".neuro-lock", "tiny.h5"]  # no temp file left
    monkeypatch.undo()

    def no_emulation(*args, **kwargs):
        raise AssertionError("a finished part ran again")

    for done_work in ("_emulate", "convert_for", "calibrated_for", "_compile"):   # nor is a finished chip compiled
        monkeypatch.setattr(experiment, done_work, no_emulation)
    experiment.run_experiment(config, tmp_path / "out", resume=True, progress=False)
    assert results.parts(out) == PARTS


def test_resume_refuses_a_changed_config(tiny_run, tmp_path):
    config = write_config(tmp_path, TINY.replace("timesteps = 4", "timesteps = 5"))
    with pytest.raises(NeuroError, match="differs from the config stored"):
        experiment.run_experiment(config, tiny_run.parent, resume=True, progress=False)


def test_corrupt_results_file_is_a_clear_error(tiny_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.h5").write_bytes(b"not an HDF5 file")
    (out / "other.h5").write_bytes(tiny_run.read_bytes())
    with pytest.raises(NeuroError, match="damaged") as e:
        experiment.run_experiment(write_config(tmp_path), out, resume=True, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(NeuroError, match="damaged"):
        report.write_report([out / "other.h5", out / "tiny.h5"], tmp_path / "report")
    assert (out / "tiny.h5").read_bytes() == b"not an HDF5 file"
    assert results.parts(out / "other.h5") == PARTS
    assert sorted(p.name for p in out.iterdir()) == ["other.h5", "tiny.h5"]
    assert not (tmp_path / "report" / "report.md").exists()


def flip_byte(path, dataset, at=7):
    """Invert byte ``at`` of ``dataset``'s stored data, as a bad disk sector would (byte 7: a float64's exponent)."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset() + at
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("dataset,redone", [("chips/float/accuracy_by_step", {"chips/float"}),
                                            ("conversion/snn/ops/0/op/weight", {"conversion", "chips/float"})])
def test_a_flipped_byte_is_an_error_and_resume_redoes_the_part(tiny_run, tmp_path, monkeypatch, dataset, redone):
    out = tmp_path / "out" / "tiny.h5"
    out.parent.mkdir()
    out.write_bytes(tiny_run.read_bytes())
    before = results.read(out).chips["float"].accuracy_by_step
    with h5py.File(out, "r") as f:
        stored = f[dataset][()]
    flip_byte(out, dataset)
    with h5py.File(out, "r") as f:
        assert not (f[dataset][()] == stored).all()   # the flip hit the numbers; h5py itself reads them happily
    part = "chips/float" if "chips" in dataset else "conversion"
    with pytest.raises(NeuroError, match=f"{re.escape(str(out))}: part '{part}' is corrupt .*--resume") as e:
        results.read(out)
    assert "\n" not in str(e.value)
    assert results.parts(out) == PARTS - redone

    def not_again(*args, **kwargs):
        raise AssertionError("an intact part ran again")

    monkeypatch.setattr(experiment, "measure", not_again)
    if "conversion" not in redone:
        monkeypatch.setattr(experiment, "convert_for", not_again)
    experiment.run_experiment(write_config(tmp_path), out.parent, resume=True, progress=False)
    assert results.parts(out) == PARTS
    assert (results.read(out).chips["float"].accuracy_by_step == before).all()


def test_changed_attributes_are_caught(tiny_run, tmp_path):
    out = tmp_path / "tiny.h5"
    out.write_bytes(tiny_run.read_bytes())
    with h5py.File(out, "a") as f:
        f["chips/float"].attrs["n_images"] = 31
    with pytest.raises(NeuroError, match="part 'chips/float' is corrupt"):
        results.read(out)
    with h5py.File(out, "a") as f:
        f["meta"].attrs["seed"] = 2
    with pytest.raises(NeuroError, match="part 'meta' is corrupt .*run the experiment into a new folder"):
        results.parts(out)                       # what a resume checks is gone: no resume from this file


def test_files_without_checksums_still_read(tiny_run, tmp_path):
    out = tmp_path / "tiny.h5"
    out.write_bytes(tiny_run.read_bytes())
    with h5py.File(out, "a") as f:
        for part in PARTS:
            assert "sha256" in f[part].attrs
            del f[part].attrs["sha256"]
    assert results.parts(out) == PARTS
    accuracy = (results.read(p).chips["float"].accuracy_by_step for p in (out, tiny_run))
    assert (next(accuracy) == next(accuracy)).all()
    assert results.read_snn(out).n_classes == 10


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["a"] = 1
    with pytest.raises(NeuroError, match="not a results file"):
        results.read(path)


def test_report(tiny_run, tmp_path):
    path = report.write_report([tiny_run], tmp_path)
    text = path.read_text()
    for section in ("## Runs", "## Accuracy vs time step", "## CPU and GPU baselines", "## Energy per inference",
                    "## Frames per second", "## The gap at equal accuracy", "## Published points",
                    "## Verdict"):
        assert section in text
    for figure in ("accuracy_vs_steps.png", "energy_vs_accuracy.png", "frames_per_second.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({figure})" in text
    assert "not measurable here" in text or "(measured)" in text
    assert "| truenorth | registered but not run in this experiment" in text
    assert "99.42 % (published)" in text and "88,700 (published)" in text
    assert "(modeled)" in text and "(measured)" in text
    assert "## Overall verdict" not in text and not (tmp_path / "energy_vs_accuracy_all.png").exists()  # one file


def _run(text, chip):
    return text.replace('chips = ["float"]', f'chips = ["float", "{chip}"]\nencoding = "rate"')


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("[emulation]", "[emulation]\ntimestep = 3"), "unknown key 'emulation.timestep'"),
    (lambda t: t.replace("timesteps = 4", "timesteps = 0"), "'emulation.timesteps' must be at least 1"),
    (lambda t: t.replace("timesteps = 4", 'timesteps = "4"'), "'emulation.timesteps' must be an integer"),
    (lambda t: t.replace('chips = ["float"]', 'chips = ["nochip"]'), "'emulation.chips' names 'nochip'"),
    (lambda t: t.replace("batches = [1]", "batches = [1, 0]"), "'baselines.batches' 0 must be at least 1"),
    (lambda t: t.replace('platforms = ["cpu-onnxruntime"]', 'platforms = ["tpu"]'), "'baselines.platforms' 'tpu'"),
    (lambda t: t.replace("[data]", "[dat]"), r"unknown table \[dat\]"),
    (lambda t: t.replace(f'path = "{REFERENCE_ONNX}"', 'path = "missing.onnx"'), "model.path names 'missing.onnx'"),
    (lambda t: t.replace(f'path = "{REFERENCE_ONNX}"\n', ""), "missing key 'model.path'"),
    (lambda t: t.replace("seed = 1", "seed = 1.5"), "'seed' must be an integer"),
    (lambda t: t + "[report]\ntolerance = -1\n", "'report.tolerance' must be in"),
    (lambda t: t.replace("seed = 1", "seed = "), "is not valid TOML"),
    (lambda t: t + "[chips.loihi]\nvth = 100\n", r"\[chips.loihi\] must be a table for a chip in emulation.chips"),
    (lambda t: _run(t, "loihi") + "[chips.loihi]\nspeed = 2\n", "the Loihi chip has no option 'speed'"),
    (lambda t: _run(t, "loihi") + "[chips.loihi]\nvth = 0\n", "vth must be an integer in"),
    (lambda t: _run(t, "truenorth") + "[chips.truenorth]\nscheme = 3\n", "scheme must be one of 'trinary'"),
    (lambda t: _run(t, "loihi") + '[chips.loihi]\ncoefficients = "dav19"\n',
     r"key 'chips.loihi.coefficients': unknown Loihi coefficient set 'dav19': give one of dav18, sana-fe"),
    (lambda t: _run(t, "loihi") + '[chips.loihi]\ncoefficients = "mine.toml"\n', "cannot read coefficient file"),
    (lambda t: _run(t, "truenorth").replace("batch_size = 32", 'batch_size = 32\ncoefficients = "sana-fe"'),
     "key 'emulation.coefficients': the TrueNorth cost model takes only its own coefficient sets"),
    (lambda t: t.replace("images = 32", 'images = 32\nselect = "random"'), "'data.select' must be one of"),
    (lambda t: t.replace("calibration = 32", 'calibration = 32\nscales = "max"'), "'conversion.scales' must be one of"),
    (lambda t: t.replace("calibration = 32", "calibration = 32\ncalibrate_steps = -4"),
     "'conversion.calibrate_steps' must be 0 \\(no calibration\\) or more steps, got -4"),
    (lambda t: t.replace("calibration = 32", "calibration = 32\ncalibrate_steps = 2.5"),
     "'conversion.calibrate_steps' must be an integer"),
])
def test_bad_config(tmp_path, edit, message):
    with pytest.raises(NeuroError, match=message) as e:
        experiment.load_config(write_config(tmp_path, edit(TINY)))
    assert "\n" not in str(e.value)


def test_model_scales_come_from_the_metadata_next_to_the_model(tmp_path, mnist_test):
    """[conversion] scales = "model": each layer's lambda is the QCFS threshold in the model's JSON."""
    model = tmp_path / "net.onnx"
    model.write_bytes(REFERENCE_ONNX.read_bytes())
    text = TINY.replace(f'path = "{REFERENCE_ONNX}"', 'path = "net.onnx"').replace(
        "calibration = 32", 'calibration = 32\nscales = "model"')
    with pytest.raises(NeuroError, match="net.json carries no 'qcfs_thresholds'"):
        experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out1", progress=False)
    (tmp_path / "net.json").write_text('{"qcfs_thresholds": [1.5, 2.0, 4.25]}')
    out = experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out2", progress=False)
    info = results.read_snn(out).info
    assert info["scales"] == [1.5, 2.0, 4.25] and info["scales_from"] == "model"
    (tmp_path / "net.json").write_text('{"qcfs_thresholds": [1.5, 2.0, 4.5]}')   # other scales: not the same run
    with pytest.raises(NeuroError, match=r"cannot resume .*: the model's metadata JSON \(its QCFS thresholds"):
        experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out2", resume=True, progress=False)


def test_calibrate_steps_is_part_of_the_run(tiny_run, tmp_path):
    """[conversion] calibrate_steps: 0 is the default (an old results file resumes), another value is another run
    (not resumed), and the conversion calibrates the biases for that T with the emulation's encoding."""
    zero = write_config(tmp_path, TINY.replace("calibration = 32", "calibration = 32\ncalibrate_steps = 0"))
    assert experiment.load_config(zero).values == experiment.load_config(write_config(tmp_path, TINY, "t.toml")).values
    experiment.run_experiment(zero, tiny_run.parent, resume=True, progress=False)  # every part is there already
    two = write_config(tmp_path, TINY.replace("calibration = 32", "calibration = 32\ncalibrate_steps = 2"))
    with pytest.raises(NeuroError, match="differs from the config stored"):
        experiment.run_experiment(two, tiny_run.parent, resume=True, progress=False)
    snn = experiment.convert_for(experiment.load_config(two))
    assert snn.info["bias_calibration"] == {"timesteps": 2, "images": 32, "encoding": "current"}


def test_calibrate_steps_calibrates_again_for_a_chip_with_a_float_proxy(tmp_path, mnist_test):
    """With calibrate_steps, Loihi (whose float proxy resets to zero at reset_threshold) compiles the experiment's
    SNN calibrated again on that proxy, and its run says so; TrueNorth on its own (its weight codes); Loihi 2 (no
    proxy) and the float SNN run the experiment's SNN itself, which is what the results file keeps."""
    text = TINY.replace("calibration = 32", "calibration = 32\ncalibrate_steps = 3").replace(
        'chips = ["float"]', 'chips = ["float", "loihi"]\nencoding = "regular"')
    text += "[chips.loihi]\nreset_threshold = 0.7\n"
    config = experiment.load_config(write_config(tmp_path, text))
    snn = experiment.convert_for(config)
    loihi = experiment.calibrated_for(config, "loihi", snn)
    assert loihi.info["bias_calibration"] == {"timesteps": 3, "images": 32, "encoding": "regular",
                                              "dynamics": "Loihi", "after": snn.info["bias_calibration"]}
    assert not np.array_equal(loihi.ops[0].op.bias, snn.ops[0].op.bias)
    truenorth = experiment.calibrated_for(config, "truenorth", snn)
    assert truenorth.info["bias_calibration"]["dynamics"] == "TrueNorth"
    assert not np.array_equal(truenorth.ops[0].op.bias, loihi.ops[0].op.bias)
    assert experiment.calibrated_for(config, "loihi2", snn) is snn
    assert experiment.calibrated_for(config, "float", snn) is snn
    out = experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out", progress=False)
    r = results.read(out)
    assert any("calibrated again for 3 steps on 32 calibration images against Loihi" in d
               for d in r.chips["loihi"].deviations)
    assert results.read_snn(out).info["bias_calibration"] == snn.info["bias_calibration"]


SHIPPED = [p for p in sorted(REFERENCE_ONNX.parents[1].glob("*.toml")) if "_sweep" not in p.stem]


@pytest.mark.parametrize("toml", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_experiment_file_is_valid(toml):
    """experiments/*.toml (the sweep files aside) load (schema, chips, options) and name a model that exists."""
    config = experiment.load_config(toml)
    assert config.resolve(config["model"]["path"]).is_file()
    assert all(config.chip(name) is not None for name in config["emulation"]["chips"])


def test_default_experiment_is_valid():
    config = experiment.load_config(REFERENCE_ONNX.parents[1] / "mnist.toml")
    assert config.name == "mnist" and config["emulation"]["chips"] == ["float", "loihi", "loihi2", "truenorth"]
    assert config["emulation"]["encoding"] == "regular" and config["emulation"]["coefficients"] == ""
    assert config["baselines"]["batches"] == [1, 16, 256, 4096]
    assert config["report"]["tolerance"] == 0.5


def test_select_images_spreads_over_a_split_stored_class_by_class():
    import numpy as np

    labels = np.repeat(np.arange(10), 100)  # class by class, as the CIFAR-10 JPEG copy's test split
    images = np.arange(1000)[:, None]
    first, first_labels = experiment.select_images(images, labels, 100, "first")
    assert set(first_labels) == {0} and list(first[:, 0]) == list(range(100))
    spread, spread_labels = experiment.select_images(images, labels, 100, "spread")
    assert np.bincount(spread_labels).tolist() == [10] * 10
    assert list(spread[:3, 0]) == [0, 10, 20] and np.array_equal(labels[spread[:, 0]], spread_labels)
    assert len(experiment.select_images(images, labels, 5000, "spread")[0]) == 1000


def test_command_line(tiny_run, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    experiment.add_parser(sub)
    report.add_parser(sub)
    args = parser.parse_args(["run", str(write_config(tmp_path)), "-o", str(tiny_run.parent), "--resume",
                              "--no-progress"])
    experiment.cmd_run(args)  # every part is there: nothing runs again
    report.cmd_report(parser.parse_args(["report", str(tiny_run), "-o", str(tmp_path / "report")]))
    assert capsys.readouterr().out.splitlines() == [f"wrote {tiny_run}", f"wrote {tmp_path / 'report' / 'report.md'}"]


def test_recorded_baselines(tiny_run, tmp_path, mnist_test):
    write_json(results.read(tiny_run).baselines[0].results, tmp_path / "gpu.json")
    text = TINY.replace('platforms = ["cpu-onnxruntime"]', 'platforms = []\nrecorded = ["gpu.json"]')
    config = write_config(tmp_path, text)
    out = experiment.run_experiment(config, tmp_path / "out", progress=False)
    [b] = results.read(out).baselines
    assert b.source == "recorded" and b.file == "gpu.json"
    assert b.results.platforms[0].points[0].throughput.provenance == "recorded"
    text = report.write_report([out], tmp_path / "report").read_text()
    assert "cpu-onnxruntime (tiny, recorded from gpu.json)" in text


def test_loihi_chip_run_has_a_modeled_cost_in_the_report(tmp_path, mnist_test):
    text = TINY.replace('chips = ["float"]', 'chips = ["float", "loihi"]\nencoding = "rate"\ncoefficients = "sana-fe"')
    path = experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out", progress=False)
    loihi = results.read(path).chips["loihi"]
    assert loihi.coefficients["name"] == "sana-fe" and loihi.coefficients["cores"] >= 1
    for key in ("energy_per_image", "frames_per_second", "latency"):
        assert loihi.cost[key].value > 0 and loihi.cost[key].provenance == results.MODELED
    assert loihi.cost["frames_per_second"].value == pytest.approx(1 / loihi.cost["latency"].value)
    report_text = report.write_report([path], tmp_path / "report").read_text()
    row = next(line for line in report_text.splitlines() if line.startswith("| tiny: Loihi") or
               line.startswith("| tiny: loihi"))
    assert re.search(r"\d \([\d.,]+-[\d.,]+\) uJ \(modeled\)", row)    # energy with its low-high range
    assert re.search(r"\d \([\d.,]+-[\d.,]+\) [mu]?s \(modeled\)", row)  # latency with its range
    energy = loihi.cost["energy_per_image"]
    assert energy.low < energy.value < energy.high
    assert loihi.cost["equal_accuracy_step"].value is None and "does not reach" in loihi.cost["equal_accuracy_step"].note
    assert any("reset to zero" in d for d in loihi.deviations)    # the converted SNN asked for subtraction
    assert "reset to zero" in report_text and "no ratio" in report_text
    verdict = report_text[report_text.index("## Verdict"):]
    assert "- **loihi**, equal accuracy: does not reach the ANN's accuracy within 4 steps" in verdict
    assert not [line for line in report_text.splitlines() if line.count("does not reach the ANN's accuracy") > 1]


def test_per_chip_tables_set_coefficients_and_options(tmp_path, mnist_test):
    """[chips.<name>]: a coefficient file relative to the experiment file, and compile options; each lands in the
    cost and in its provenance."""
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "loihi-hot.toml").write_text(
        'chip = "loihi"\nname = "hot"\nbase = "dav18"\n[values]\n'
        'static_w = { value = 0.2, unit = "W", source = "a hotter chip (test)" }\n')
    text = TINY.replace('chips = ["float"]', 'chips = ["loihi", "truenorth"]\nencoding = "rate"') + \
        '[chips.loihi]\ncoefficients = "sets/loihi-hot.toml"\nvth = 512\n' + \
        '[chips.truenorth]\nscheme = "trinary"\ntick_hz = 1000\n'
    config = experiment.load_config(write_config(tmp_path, text))
    options, coefficients = config.chip("loihi")
    assert options == {"vth": 512, "reset_threshold": 1.0} and coefficients.name == "hot" and coefficients["static_w"] == 0.2
    assert coefficients["e_synop_dense"] == 23.6e-12          # the rest from its base
    path = experiment.run_experiment(config.path, tmp_path / "out", progress=False)
    run = results.read(path).chips
    assert run["loihi"].coefficients["name"] == "hot"
    note = run["loihi"].cost["energy_per_image"].note
    assert "hot coefficients (" in note and "loihi-hot.toml" in note and "vth = 512" in note
    tn = run["truenorth"].cost
    assert tn["frames_per_second"].value == pytest.approx(1000 / 4)   # the real-time tick asked for
    assert "scheme = 'trinary'" in tn["latency"].note
    assert any("trinary" in d for d in run["truenorth"].deviations)


def test_chips_need_a_spike_encoding(tmp_path, mnist_test):
    text = TINY.replace('chips = ["float"]', 'chips = ["loihi"]')
    with pytest.raises(NeuroError, match="use the rate or regular encoding"):
        experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out", progress=False)
    poisson = TINY.replace('chips = ["float"]', 'chips = ["float"]\nencoding = "poisson"')
    with pytest.raises(NeuroError, match="emulation.encoding.*'rate', 'regular'"):
        experiment.run_experiment(write_config(tmp_path, poisson), tmp_path / "out2", progress=False)


def test_ci_fails_when_the_lava_tests_cannot_run(tmp_path):
    """.ci/run sets NEURO_REQUIRE_LAVA=1 for the Lava venv: there, a Lava test that skips must fail the run."""
    import os
    import subprocess
    import sys
    from importlib.util import find_spec

    from conftest import REPO

    if find_spec("lava") is not None:
        pytest.skip("lava-nc is importable here, so the Lava tests would run rather than skip")
    env = {**os.environ, "NEURO_REQUIRE_LAVA": "1"}
    args = [sys.executable, "-m", "pytest", "-q", "-m", "lava", "-p", "no:cacheprovider", "tests/test_netx.py",
            "tests/test_loihi.py"]
    required = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    assert required.returncode == 1 and "NEURO_REQUIRE_LAVA=1 but this Lava test was skipped" in required.stdout
    relaxed = subprocess.run(args, cwd=REPO, env={**env, "NEURO_REQUIRE_LAVA": ""}, capture_output=True, text=True)
    assert relaxed.returncode == 0 and "skipped" in relaxed.stdout


# --- a report on several results files ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, mnist_test):
    """A second dataset: MNIST test digits written as an image folder (4 "train" and 4 "test" images of each digit),
    emulated on the float SNN and Loihi with a tolerance of 100 points, so that Loihi has a cost at equal accuracy
    (step 1)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("digits")
    images, labels = mnist_test
    for digit in range(10):
        for k, i in enumerate(np.flatnonzero(labels == digit)[:8]):
            path = folder / "digits" / ("train" if k < 4 else "test") / str(digit) / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((images[i, 0] * 255).round().astype("uint8"), "L").save(path)
    text = TINY.replace("[data]", '[data]\ndataset = "imagefolder:digits"').replace(
        'chips = ["float"]', 'chips = ["float", "loihi"]\nencoding = "rate"').replace(
        'platforms = ["cpu-onnxruntime"]', "platforms = []") + "[report]\ntolerance = 100\n"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(datasets, "CACHE_DIR", folder / "cache")
        return experiment.run_experiment(write_config(folder, text, "digits.toml"), folder / "out", progress=False)


def test_report_on_two_datasets(tiny_run, digits_run, tmp_path):
    text = report.write_report([tiny_run, digits_run], tmp_path).read_text()
    titles = [line for line in text.splitlines() if line.startswith("## ") and "test images: experiment" in line]
    assert titles == [f"## MNIST, 32 test images: experiment tiny ({tiny_run})",
                      f"## imagefolder:digits, 32 test images: experiment digits ({digits_run})"]
    mnist, digits = text.split(titles[0])[1].split(titles[1])
    for section, k, name in ((mnist, 1, "tiny.h5"), (digits, 2, "digits.h5")):
        for heading in ("### Runs", "### Accuracy vs time step", "### The gap at equal accuracy", "### Verdict"):
            assert section.count(heading + " ") + section.count(heading + "\n") == 1
        assert f"| {name} |" in section
        for figure in ("accuracy_vs_steps.png", "energy_vs_accuracy.png", "frames_per_second.png"):
            assert f"]({k}-{figure})" in section and (tmp_path / f"{k}-{figure}").is_file()
    assert "## Published points" not in mnist and digits.count("## Published points") == 1
    overall = text[text.index("## Overall verdict"):text.index(titles[0])]
    assert f"- **{titles[0][3:]}**. In short: no chip" in overall
    assert f"- **{titles[1][3:]}**. In short: **loihi**: \"1,200-2,600 frames/s\"" in overall
    assert "](energy_vs_accuracy_all.png)" in overall
    assert (tmp_path / "energy_vs_accuracy_all.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "accuracy_vs_steps.png").exists()


def test_combined_figure_has_every_dataset(tiny_run, digits_run):
    studies = [report._Study(results.read(p)) for p in (tiny_run, digits_run)]
    points = report.combined_energy_points(studies)
    assert list(points) == ["MNIST", "imagefolder:digits"]
    for study, pts in zip(studies, points.values()):
        refs = [pt for pt in pts if pt.interval is None]
        assert {pt.platform for pt in refs} == {ref.label for ref in study.refs}
        assert all(pt.accuracy == study.ann for pt in refs) and len(refs) >= 6   # 3 estimated GPUs at 2 batches
    assert any(pt.platform.startswith("cpu-onnxruntime batch 1") for pt in points["MNIST"])   # measured in tiny
    [loihi] = [pt for pt in points["imagefolder:digits"] if pt.interval is not None]
    cost = results.read(digits_run).chips["loihi"].cost
    assert loihi.platform == "loihi" and loihi.step == 1 and loihi.energy == cost["energy_per_image_at_equal_accuracy"]
    assert not [pt for pt in points["MNIST"] if pt.interval is not None]    # the float SNN has no energy


def _section(text: str, title: str) -> list[str]:
    """The lines of a report's section ``## title`` up to the next level-2 heading."""
    lines = text.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def test_each_section_is_the_single_report(tiny_run, digits_run, tmp_path):
    """A section of a report on several files is the report on its file alone: one heading level down, its
    figures numbered, the shared introduction and published points once for the whole report."""
    multi = report.write_report([tiny_run, digits_run], tmp_path / "both").read_text()
    for k, run in enumerate((tiny_run, digits_run), 1):
        single = report.write_report([run], tmp_path / run.stem).read_text().splitlines()
        body = single[len(report.INTRO):]
        published = body.index("## Published points (never measured here)")
        body = body[:published] + body[body.index("## Verdict (generated from the numbers above)"):]
        title = report._Study(results.read(run)).title
        section = [line[1:] if line.startswith("###") else line.replace(f"]({k}-", "](")
                   for line in _section(multi, title)[1:]]
        assert section == body


def test_same_dataset_twice_gets_distinct_titles(tiny_run, tmp_path, mnist_test):
    """Two runs of one dataset, model and experiment name (another T, in another folder): titled by file."""
    text = TINY.replace("timesteps = 4", "timesteps = 2").replace('platforms = ["cpu-onnxruntime"]', "platforms = []")
    other = experiment.run_experiment(write_config(tmp_path, text), tmp_path / "out", progress=False)
    studies = [report._Study(results.read(p)) for p in (tiny_run, other)]
    assert report.study_labels(studies) == [f"MNIST: tiny ({tiny_run})", f"MNIST: tiny ({other})"]
    written = report.write_report([tiny_run, other], tmp_path / "report").read_text()
    assert f"## MNIST, 32 test images: experiment tiny ({other})" in written


def test_report_errors_write_nothing(tiny_run, tmp_path, capsys):
    from neuro import cli

    copy = tmp_path / "copy.h5"
    copy.write_bytes(tiny_run.read_bytes())
    cases = [([tiny_run, tiny_run.parent / ".." / tiny_run.parent.name / tiny_run.name], "is given twice"),
             ([tiny_run, copy], f"{tiny_run} and {copy} hold the same run"),
             ([tiny_run, tmp_path / "missing.h5"], f"results file {tmp_path / 'missing.h5'} does not exist")]
    for paths, message in cases:
        assert cli.main(["report", *map(str, paths), "-o", str(tmp_path / "report")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_cifar10_caveat_stays_with_its_section(tiny_run, tmp_path):
    """The CIFAR-10 JPEG copy's caveat: in the CIFAR-10 section (beside each figure), in the overall verdict and
    beside the combined figure; not in the MNIST section. Needs $NEURO_DATA/cifar10 (the first run decodes it)."""
    import os
    from pathlib import Path

    if not (Path(os.environ.get("NEURO_DATA", "")) / "cifar10").is_dir():
        pytest.skip("NEURO_DATA/cifar10 is absent (CI: ../shared/datasets)")
    model = REFERENCE_ONNX.parent / "cifar10_cnn.onnx"
    text = TINY.replace("images = 32", 'dataset = "cifar10"\nimages = 10\nselect = "spread"').replace(
        str(REFERENCE_ONNX), str(model)).replace("calibration = 32", "calibration = 10").replace(
        "timesteps = 4", "timesteps = 2").replace('platforms = ["cpu-onnxruntime"]', "platforms = []")
    cifar = experiment.run_experiment(write_config(tmp_path, text, "cifar.toml"), tmp_path / "out", progress=False)
    note = report.FIGURE_NOTES["cifar10"]
    single = report.write_report([cifar], tmp_path / "single").read_text()
    assert single.count(report.DATASET_NOTES["cifar10"]) == 1 and single.count(note) == 3   # 3 figures
    both = report.write_report([tiny_run, cifar], tmp_path / "both").read_text()
    mnist_title, cifar_title = (report._Study(results.read(p)).title for p in (tiny_run, cifar))
    assert cifar_title == f"CIFAR-10, 10 test images: experiment cifar ({cifar})"
    head, sections = both.split(f"## {mnist_title}")
    mnist, rest = sections.split(f"## {cifar_title}")
    assert "JPEG" not in mnist and rest.count(report.DATASET_NOTES["cifar10"]) == 1 and rest.count(note) == 3
    assert head.count(note) == 2 and f"**{cifar_title}**. In short:" in head   # overall verdict, combined figure
