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
    assert out["frames_per_second"] == pytest.approx(1000 / 6) and out["latency_s"] == pytest.approx(0.006)
    assert list(out["accuracy_by_step"]) == [str(t) for t in range(1, 7)]
    assert main(["simulate", str(snn_file), "--n", "4", "--timesteps", "2", "--encoding", "rate", "--chip",
                 "truenorth", "--coefficients", "dav18", "--no-progress"]) == 2
    assert "one coefficient set" in capsys.readouterr().err


def test_chip_errors(snn_file, capsys):
    assert main(["simulate", str(snn_file), "--n", "4", "--chip", "loihi", "--no-progress"]) == 2
    assert "rate encoding" in capsys.readouterr().err
    assert main(["simulate", str(snn_file), "--n", "4", "--chip", "spinnaker", "--encoding", "rate"]) == 2
    assert "available chip models: loihi, truenorth" in capsys.readouterr().err


def test_chips_lists_limits(capsys):
    assert main(["chips"]) == 0
    out = capsys.readouterr().out
    assert "loihi" in out and "compartments per core: 1024" in out
    assert "truenorth" in out and "neurons per core: 256" in out
