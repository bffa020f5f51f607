"""The command line end to end on the shipped model, and its one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REFERENCE_ONNX
from neuro.cli import main


@pytest.fixture(scope="module")
def snn_file(tmp_path_factory, mnist_test):
    path = tmp_path_factory.mktemp("cli") / "snn.h5"
    assert main(["convert", str(REFERENCE_ONNX), "--data", "mnist", "-o", str(path), "--calibration", "200"]) == 0
    return path


def test_simulate_json(snn_file, tmp_path, capsys):
    capsys.readouterr()
    plot = tmp_path / "acc.png"
    assert main(["simulate", str(snn_file), "--data", "mnist", "--n", "64", "--timesteps", "8", "--json",
                 "--plot", str(plot), "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 64 and out["timesteps"] == 8
    assert list(out["accuracy_by_step"]) == [str(t) for t in range(1, 9)]
    assert 0.9 <= out["ann_accuracy"] <= 1.0
    assert out["accuracy_by_step"]["8"] >= out["ann_accuracy"] - 0.1
    assert out["synops_per_image"] > 0 and len(out["layers"]) > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_spread_takes_images_across_the_split(snn_file, mnist_test, capsys):
    from neuro import snn

    capsys.readouterr()
    assert main(["simulate", str(snn_file), "--data", "mnist", "--n", "20", "--spread", "--timesteps", "2", "--json",
                 "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    images, labels = mnist_test
    assert out["n_images"] == 20
    assert out["ann_accuracy"] == snn.load(snn_file).ann.accuracy(images[::500], labels[::500])


def test_simulate_table(snn_file, capsys):
    capsys.readouterr()
    assert main(["simulate", str(snn_file), "--n", "32", "--timesteps", "4", "--encoding", "rate",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ANN accuracy" in out and "    4  " in out


@pytest.mark.parametrize("args,message", [
    (["convert", "missing.onnx", "-o", "x.h5"], "not found"),
    (["simulate", "missing.h5"], "does not exist"),
])
def test_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_console_script_help():
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "neuro.cli", "simulate", "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    for flag in ("--n", "--timesteps", "--encoding", "--plot", "--json"):
        assert flag in out


HEAVY = ("numba", "llvmlite", "torch", "onnx", "onnxruntime", "matplotlib", "h5py", "scipy", "dask", "pandas", "tqdm")


@pytest.mark.parametrize("args", [["--help"], ["chips"], ["simulate", "--help"], ["convert", "--help"]])
def test_start_up_imports_no_heavy_library(args):
    """The durable form of the start-up goal (under 0.5 s): these commands import none of the heavy libraries
    (numba kernels compile on first call, neuro.jit; h5py, onnx, tqdm where used)."""
    code = (f"import sys; from neuro.cli import main\ntry: main({args!r})\nexcept SystemExit: pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_every_command_is_listed():
    out = subprocess.run([sys.executable, "-m", "neuro.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in ("convert", "simulate", "chips", "run", "report", "sweep", "sweep-report"):
        assert command in out


def test_simulate_on_loihi_adds_the_chip_cost(snn_file, capsys):
    capsys.readouterr()
    assert main(["simulate", str(snn_file), "--n", "16", "--timesteps", "8", "--encoding", "rate", "--chip", "loihi",
                 "--coefficients", "sana-fe", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chip"] == "loihi" and out["coefficients"] == "sana-fe"
    assert out["energy_per_inference_j"] > 0 and out["frames_per_second"] > 0 and out["latency_s"] > 0
    assert out["cores"] >= 1 and out["chips"] >= 1
    assert out["frames_per_second"] == pytest.approx(1 / out["latency_s"])
    assert list(out["accuracy_by_step"]) == [str(t) for t in range(1, 9)]


def test_simulate_on_truenorth_adds_the_chip_cost(snn_file, capsys):
    capsys.readouterr()
    assert main(["simulate", str(snn_file), "--n", "8", "--timesteps", "6", "--encoding", "rate", "--chip", "truenorth",
                 "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chip"] == "truenorth" and out["coefficients"] == "ako15"
    assert out["energy_per_inference_j"] > 0 and out["cores"] >= 1 and out["chips"] >= 1
    # the fastest tick the published limits allow: 1 to 21 times real time (1 kHz)
    assert 1000 / 6 <= out["frames_per_second"] <= 21000 / 6 + 1e-6
    assert out["frames_per_second"] == pytest.approx(1 / out["latency_s"])
    low, high = out["ranges"]["energy_per_inference_j"]
    assert low <= out["energy_per_inference_j"] <= high
    assert list(out["accuracy_by_step"]) == [str(t) for t in range(1, 7)]
    assert main(["simulate", str(snn_file), "--n", "4", "--timesteps", "2", "--encoding", "rate", "--chip",
                 "truenorth", "--coefficients", "dav18", "--no-progress"]) == 2
    assert "takes only its own coefficient sets (ako15), not 'dav18'" in capsys.readouterr().err


def test_simulate_regular_encoding_on_loihi(snn_file, capsys):
    # the deterministic encoding: the same chip run twice gives the same accuracy curve and energy, seed or not
    outs = []
    for seed in ("0", "5"):
        capsys.readouterr()
        assert main(["simulate", str(snn_file), "--n", "6", "--timesteps", "5", "--encoding", "regular", "--seed", seed,
                     "--chip", "loihi", "--json", "--no-progress"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["encoding"] == "regular" and outs[0]["chip"] == "loihi"
    assert outs[0]["accuracy_by_step"] == outs[1]["accuracy_by_step"]
    assert outs[0]["energy_per_inference_j"] == outs[1]["energy_per_inference_j"] > 0


def test_chip_errors(snn_file, capsys):
    assert main(["simulate", str(snn_file), "--n", "4", "--chip", "loihi", "--no-progress"]) == 2
    assert "use the rate or regular encoding" in capsys.readouterr().err
    assert main(["simulate", str(snn_file), "--n", "4", "--chip", "spinnaker", "--encoding", "rate"]) == 2
    err = capsys.readouterr().err
    assert "no chip model named 'spinnaker'" in err and "loihi" in err and "truenorth" in err  # built-ins among them
    assert "neuro.chips" in err and "chips.register" in err and err.count("\n") == 1     # how to add one


def test_chips_lists_limits_sets_and_options(capsys):
    assert main(["chips"]) == 0
    out = capsys.readouterr().out
    assert "loihi" in out and "compartments per core: 1024" in out
    assert "coefficient sets: dav18, sana-fe (default dav18; or a .toml file)" in out
    assert "option vth (an integer in [1, 131071]; default 1024)" in out
    assert "truenorth" in out and "neurons per core: 256" in out
    assert "option scheme (one of 'trinary', 'multilevel'; default 'multilevel')" in out
    assert "option tick_hz (a number in [1, 21000] or 'max'; default 'max')" in out


def test_chip_options_reach_the_compiler_and_the_cost(snn_file, capsys):
    capsys.readouterr()
    run = ["simulate", str(snn_file), "--n", "4", "--timesteps", "4", "--encoding", "rate", "--chip", "truenorth",
           "--json", "--no-progress"]
    assert main(run + ["--chip-option", "tick_hz=1000", "--chip-option", "scheme=trinary"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames_per_second"] == pytest.approx(1000 / 4)   # the real-time tick asked for, not the fastest
    for option, message in [("levels=9", "levels must be an integer in [2, 4], got 9"),
                            ("scheme=binary", "scheme must be one of 'trinary', 'multilevel', got 'binary'"),
                            ("tick_hz=fast", "tick_hz must be a number in [1, 21000] or 'max', got 'fast'"),
                            ("speed=1", "the TrueNorth chip has no option 'speed': its options are scheme, levels"),
                            ("levels", "give key=value")]:
        assert main(run + ["--chip-option", option]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["simulate", str(snn_file), "--n", "4", "--coefficients", "dav18", "--no-progress"]) == 2
    assert "add --chip NAME" in capsys.readouterr().err


def test_a_coefficient_file_by_path(snn_file, tmp_path, capsys):
    """A user's set: the dav18 event energies at 0.9 V (x (0.9 / 0.75)^2), the rest taken from dav18."""
    scale = (0.9 / 0.75) ** 2
    (tmp_path / "loihi-0.9v.toml").write_text(
        'chip = "loihi"\nname = "dav18-0.9v"\nbase = "dav18"\n[values]\n' + "".join(
            f'{k} = {{ value = {v * scale!r}, unit = "J", source = "DAV18 Table 2 x (0.9 / 0.75)^2" }}\n'
            for k, v in [("e_synop_dense", 23.6e-12), ("e_synop_conv", 23.6e-12), ("e_active", 81e-12),
                         ("e_inactive", 52e-12)]))
    capsys.readouterr()
    run = ["simulate", str(snn_file), "--n", "4", "--timesteps", "4", "--encoding", "rate", "--chip", "loihi",
           "--json", "--no-progress"]
    assert main(run) == 0
    stock = json.loads(capsys.readouterr().out)
    assert main(run + ["--coefficients", str(tmp_path / "loihi-0.9v.toml")]) == 0
    hot = json.loads(capsys.readouterr().out)
    assert hot["coefficients"] == "dav18-0.9v" and stock["coefficients"] == "dav18"
    assert hot["energy_per_inference_j"] > stock["energy_per_inference_j"]
    assert hot["frames_per_second"] == pytest.approx(stock["frames_per_second"])   # energies only: same time
    assert main(run + ["--coefficients", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read coefficient file" in capsys.readouterr().err


def test_convert_scales_from_the_model_metadata(tmp_path, mnist_test, capsys):
    """--scales model takes each ReLU layer's lambda from the QCFS thresholds in the JSON next to the model."""
    from neuro import snn

    model = tmp_path / "net.onnx"
    model.write_bytes(REFERENCE_ONNX.read_bytes())  # three ReLU layers
    convert = ["convert", str(model), "--data", "mnist", "--calibration", "50", "--scales", "model", "-o"]
    assert main(convert + [str(tmp_path / "a.h5")]) == 2  # no metadata at all
    assert f"{tmp_path / 'net.json'} carries no 'qcfs_thresholds'" in capsys.readouterr().err
    (tmp_path / "net.json").write_text(json.dumps({"qcfs_thresholds": [1.5, 2.0]}))
    assert main(convert + [str(tmp_path / "a.h5")]) == 2
    err = capsys.readouterr().err
    assert "2 model thresholds for the 3 ReLU/QCFS layers" in err and err.count("\n") == 1
    (tmp_path / "net.json").write_text(json.dumps({"qcfs_thresholds": [1.5, 2.0, 4.25]}))
    assert main(convert + [str(tmp_path / "a.h5")]) == 0
    assert "scales (from model) 1.5, 2, 4.25" in capsys.readouterr().out
    info = snn.load(tmp_path / "a.h5").info
    assert info["scales"] == [1.5, 2.0, 4.25] and info["scales_from"] == "model"


def test_convert_calibrate_steps(tmp_path, mnist_test, capsys):
    """--calibrate-steps 0 writes the same SNN as no option; T > 0 moves the hidden biases and says so in the
    SNN's info; a negative T is a one-line error."""
    import numpy as np

    from neuro import snn

    convert = ["convert", str(REFERENCE_ONNX), "--data", "mnist", "--calibration", "40", "-o"]
    for name, extra in (("plain", []), ("zero", ["--calibrate-steps", "0"]), ("two", ["--calibrate-steps", "2"])):
        assert main(convert + [str(tmp_path / f"{name}.h5")] + extra) == 0
    assert "calibrated the biases for T = 2 on 40 calibration images in" in capsys.readouterr().out
    plain, zero, two = (snn.load(tmp_path / f"{name}.h5") for name in ("plain", "zero", "two"))
    assert zero.info == plain.info and "bias_calibration" not in plain.info
    assert two.info["bias_calibration"] == {"timesteps": 2, "images": 40, "encoding": "current"}
    biases = [[op.op.bias for op in s.ops if hasattr(getattr(op, "op", None), "bias")] for s in (plain, zero, two)]
    assert all(np.array_equal(a, b) for a, b in zip(biases[0], biases[1]))
    assert [np.array_equal(a, b) for a, b in zip(biases[0], biases[2])] == [False, False, False, True]
    assert main(convert + [str(tmp_path / "bad.h5"), "--calibrate-steps", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--calibrate-steps must be 0 (no calibration) or more steps, got -1" in err and err.count("\n") == 1
    assert not (tmp_path / "bad.h5").exists()
