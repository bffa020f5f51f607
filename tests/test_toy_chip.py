"""The worked example of docs/chips/extending.md: a chip in its own package outside neuro (examples/toy_chip),
pip-installed into a folder of its own, found through the neuro.chips entry point alone by `neuro chips`,
`neuro simulate --chip toy`, `neuro run` and the report; and the same chip registered from a script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import chips
from chips.conformance import check_chip
from conftest import REFERENCE_ONNX
from neuro import results
from neuro.errors import NeuroError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "toy_chip"


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory):
    """examples/toy_chip installed (not editable) into a fresh folder: its code and its entry point, nothing else."""
    tmp = tmp_path_factory.mktemp("toy")
    shutil.copytree(EXAMPLE, tmp / "src")   # the build writes into its source tree: keep the repository clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(tmp / "site"), str(tmp / "src")], check=True, capture_output=True)
    return tmp / "site"


def _neuro(site, *args, cwd=None):
    """`neuro ARGS` in a fresh interpreter that sees this repository and the installed toy package."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "neuro.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


def test_installed_chip_is_listed_by_its_entry_point(toy_site):
    assert not (toy_site / "toy_chip" / "__init__.py").read_text().count("chips.register")
    out = _neuro(toy_site, "chips")
    assert out.returncode == 0, out.stderr
    assert "toy (toy, toy_chip)" in out.stdout and "neurons per core: 256" in out.stdout
    assert "coefficient sets: toy (default toy; or a .toml file)" in out.stdout
    assert "option bits (an integer in [2, 8]; default 4)" in out.stdout
    assert "loihi (Loihi" in out.stdout and "truenorth (TrueNorth" in out.stdout


def test_installed_chip_simulates_runs_and_reports(toy_site, tmp_path, mnist_test):
    snn = tmp_path / "snn.h5"
    assert _neuro(toy_site, "convert", str(REFERENCE_ONNX), "-o", str(snn), "--calibration", "100").returncode == 0
    out = _neuro(toy_site, "simulate", str(snn), "--n", "16", "--timesteps", "8", "--encoding", "rate", "--chip", "toy",
                 "--chip-option", "bits=6", "--json", "--no-progress")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["chip"] == "toy" and summary["coefficients"] == "toy"
    assert summary["frames_per_second"] == pytest.approx(1 / (8 * 1e-6)) and summary["energy_per_inference_j"] > 0
    bad = _neuro(toy_site, "simulate", str(snn), "--n", "4", "--encoding", "rate", "--chip", "toy", "--chip-option",
                 "bits=12", "--no-progress")
    assert bad.returncode == 2 and "bits must be an integer in [2, 8], got 12" in bad.stderr

    (tmp_path / "toy.toml").write_text(f"""
[data]
images = 16
[model]
path = "{REFERENCE_ONNX}"
[conversion]
calibration = 32
readout = "spikes"
[emulation]
chips = ["float", "toy"]
timesteps = 8
encoding = "rate"
[chips.toy]
bits = 8
[baselines]
platforms = []
""")
    run = _neuro(toy_site, "run", "toy.toml", "-o", "out", "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = _neuro(toy_site, "report", str(tmp_path / "out" / "toy.h5"), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    toy = results.read(tmp_path / "out" / "toy.h5").chips["toy"]
    assert toy.coefficients["name"] == "toy" and toy.cost["energy_per_image"].value > 0
    assert "toy_chip cost model, toy coefficients, bits = 8" in toy.cost["energy_per_image"].note
    text = (tmp_path / "report" / "report.md").read_text()
    assert "**toy: toy** (toy coefficients; cores:" in text          # the chip's section of the report
    assert "| loihi | registered but not run in this experiment" in text


def test_a_script_registers_a_chip(monkeypatch):
    """chips.register: the same chip from a notebook or script, by object or by "module:attribute"."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr(chips, "_registered", {})
    monkeypatch.setattr(chips, "_loaded", {})
    from toy_chip import CHIP
    chips.register("toy", "toy_chip:CHIP")
    assert "toy" in chips.available() and chips.get("toy") is CHIP
    check_chip(chips.get("toy"))
    with pytest.raises(NeuroError, match="chip name 'loihi' is taken by chips.loihi.entry:CHIP: register another name"):
        chips.register("loihi", "toy_chip:CHIP")
    with pytest.raises(NeuroError, match="calls itself 'toy'"):
        chips.register("toy2", CHIP)
    with pytest.raises(NeuroError, match="chip name 'float' is not allowed"):
        chips.register("float", CHIP)
