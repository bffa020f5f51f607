"""neuro.baselines: energy readers on fakes of NVML and sysfs, the timing loop, the CPU measurement on the
reference ONNX, the GPU path on a fake CUDA torch, JSON round trip and the command line."""

import json
import stat
import time
import types
from pathlib import Path

import numpy as np
import pytest

from neuro import ann
from neuro.baselines import (NO_GPU, EnergyUnavailable, NvmlEnergyReader, RaplReader, Settings, measure, read_json,
                             write_json)
from neuro.baselines.__main__ import main
from neuro.baselines.energy import per_image
from neuro.baselines.platforms import NO_TORCH, OrtRunner, torch_cuda
from neuro.baselines.results import MEASURED, NOT_MEASURABLE, RECORDED
from neuro.baselines.timing import MIN_CALLS, REPEATS, time_batches
from neuro.errors import NeuroError

from conftest import REFERENCE_ONNX

FAST = dict(window_s=0.1, warmup_s=0.02, idle_s=0.1, threads=1)


# --- fakes ------------------------------------------------------------------------------------------------

class FakeMachine:
    """A clock and a power draw: ``sleep`` advances time and integrates the energy (mJ)."""

    def __init__(self, power_w=40.0):
        self.t, self.mj, self.power_w = 100.0, 5_000_000.0, power_w

    def clock(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds
        self.mj += self.power_w * seconds * 1e3


class FakeNvml(types.SimpleNamespace):
    """The pynvml functions the reader uses; the energy counter is ``energy_mj()`` (mJ, integer)."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj, supported=True):
        super().__init__(energy_mj=energy_mj, supported=supported, uuid=None, started=0)

    def nvmlInit(self):
        self.started += 1

    def nvmlShutdown(self):
        self.started -= 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("index", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.uuid = uuid
        return ("uuid", uuid)

    def nvmlDeviceGetName(self, handle):
        return "Fake GPU"

    def nvmlSystemGetDriverVersion(self):
        return "555.1"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return int(self.energy_mj())


def rapl_tree(root: Path, packages, max_uj=1_000_000):
    """/sys/class/powercap as Linux lays it out (all zones side by side): package zones with the given
    energy_uj, plus a core subzone and a psys zone that must be left out."""
    zones = {f"intel-rapl:{i}": (f"package-{i}", uj) for i, uj in enumerate(packages)}
    zones.update({"intel-rapl:0:0": ("core", 7), f"intel-rapl:{len(packages)}": ("psys", 123456)})
    for zone, (name, uj) in zones.items():
        (root / zone).mkdir(parents=True)
        (root / zone / "name").write_text(f"{name}\n")
        (root / zone / "energy_uj").write_text(f"{uj}\n")
        (root / zone / "max_energy_range_uj").write_text(f"{max_uj}\n")


def set_rapl(root: Path, packages):
    for i, uj in enumerate(packages):
        (root / f"intel-rapl:{i}" / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture(scope="module")
def net():
    return ann.load_model(REFERENCE_ONNX)


def random_images(n):
    return np.random.default_rng(0).random((n, 1, 28, 28), np.float32)


# --- NVML ------------------------------------------------------------------------------------------------

def test_nvml_counter_in_mj_and_idle_subtraction():
    m = FakeMachine(power_w=40.0)
    nvml = FakeNvml(lambda: m.mj)
    reader = NvmlEnergyReader(nvml, clock=m.clock, sleep=m.sleep)
    assert (reader.device, reader.driver) == ("Fake GPU", "555.1")
    assert reader.idle_power_w(3.0) == pytest.approx(40.0)
    a = reader.sample()
    m.power_w = 100.0
    m.sleep(2.0)
    w = reader.window(a, reader.sample())
    assert (w.joules, w.seconds) == (pytest.approx(200.0), pytest.approx(2.0))
    total, dynamic = per_image(w, images=1000, idle_w=40.0)
    assert total == pytest.approx(0.2)  # 200 J / 1000 images
    assert dynamic == pytest.approx(0.12)  # (200 J - 40 W x 2 s) / 1000 images
    reader.close()
    assert nvml.started == 0


def test_nvml_window_too_short_is_an_error_and_the_timing_loop_stretches_it():
    m = FakeMachine(power_w=50.0)
    reader = NvmlEnergyReader(FakeNvml(lambda: m.mj), clock=m.clock, sleep=m.sleep)
    a = reader.sample()
    m.sleep(0.5)
    with pytest.raises(NeuroError, match=r"0\.500 s is shorter than the 1 s"):
        reader.window(a, reader.sample())
    assert reader.idle_power_w(0.2) == pytest.approx(50.0)  # idle is measured over 1 s at least

    timing = time_batches(lambda x: m.sleep(0.1), np.zeros((4, 1)), window_s=0.2, warmup_s=0.0, counter=reader,
                          clock=m.clock)
    assert timing.seconds >= 1.0 and timing.calls >= 10
    assert timing.energy.joules == pytest.approx(50.0 * timing.energy.seconds)
    assert timing.throughput == pytest.approx(4 / 0.1)


def test_timing_discards_warm_up_and_times_at_least_min_calls():
    m = FakeMachine()
    calls = []

    def run(x):
        calls.append(m.t)
        m.sleep(0.5)

    timing = time_batches(run, np.zeros((2, 1)), window_s=0.1, warmup_s=1.0, clock=m.clock)
    assert len(calls) - timing.calls == 2  # 1 s of warm-up at 0.5 s a call, not timed
    assert timing.calls == MIN_CALLS * REPEATS and timing.seconds == pytest.approx(0.5 * MIN_CALLS * REPEATS)
    assert timing.energy is None and timing.latency_percentile(99) == pytest.approx(0.5)


def test_throughput_is_the_mean_and_std_over_repeated_windows():
    m = FakeMachine()
    durations = iter([0.1] * 6 + [0.2] * 5 + [0.1] * 100)  # 1 warm-up call; the second window runs at half speed

    timing = time_batches(lambda x: m.sleep(next(durations)), np.zeros((2, 1)), window_s=0.45, warmup_s=0.0,
                          clock=m.clock, repeats=3)
    rates = timing.window_throughputs
    assert len(rates) == 3 and rates.tolist() == pytest.approx([20, 10, 20])
    assert timing.throughput == pytest.approx(rates.mean()) and timing.throughput_std == pytest.approx(rates.std())
    assert timing.throughput_std > 0


def test_nvml_unsupported_counter_is_not_measurable():
    nvml = FakeNvml(lambda: 0, supported=False)
    with pytest.raises(EnergyUnavailable, match="Not Supported"):
        NvmlEnergyReader(nvml)
    assert nvml.started == 0  # shut down again


# --- RAPL ------------------------------------------------------------------------------------------------

def test_rapl_sums_packages_and_undoes_wrap_around(tmp_path):
    rapl_tree(tmp_path, [900_000, 10_000])
    m = FakeMachine()
    reader = RaplReader(tmp_path, clock=m.clock, sleep=m.sleep)
    assert reader.device == "package-0, package-1"
    a = reader.sample()
    set_rapl(tmp_path, [100_000, 60_000])  # package 0 wrapped at max_energy_range_uj = 1 J
    m.sleep(1.0)
    w = reader.window(a, reader.sample())
    assert w.joules == pytest.approx((100_000 + 1_000_000 - 900_000 + 50_000) / 1e6)  # 0.25 J


def test_rapl_missing_or_unreadable_is_not_measurable(tmp_path, monkeypatch):
    with pytest.raises(EnergyUnavailable, match="no RAPL package domains"):
        RaplReader(tmp_path / "absent")
    rapl_tree(tmp_path, [1])
    counter = tmp_path / "intel-rapl:0" / "energy_uj"
    counter.chmod(0)  # as on kernels since 2020: energy_uj is root-only
    read_text = Path.read_text

    def as_non_root(self, *args, **kwargs):  # the tests may run as root, which reads anything
        if not self.stat().st_mode & stat.S_IRUSR:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", as_non_root)
    with pytest.raises(EnergyUnavailable, match="energy_uj is not readable"):
        RaplReader(tmp_path)


# --- measurements ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cpu_results(mnist_test, tmp_path_factory):
    images = mnist_test[0][:64]
    return measure(REFERENCE_ONNX, images, Settings(batches=(1, 8), rapl_root=str(tmp_path_factory.mktemp("none")),
                                                    cpu_tdp_w=10.0, **FAST),
                   which=("cpu-onnxruntime",), inputs="MNIST test, first 64")


def test_onnxruntime_cpu_on_the_reference_model(cpu_results):
    (p,) = cpu_results.platforms
    assert (p.name, p.status, p.threads) == ("cpu-onnxruntime", MEASURED, 1)
    assert [pt.batch for pt in p.points] == [1, 8]
    for pt in p.points:
        assert pt.calls >= MIN_CALLS and pt.window.value >= FAST["window_s"]
        assert pt.throughput.value > 0 and pt.throughput.provenance == MEASURED
        assert 0 < pt.latency_p50.value <= pt.latency_p99.value
        assert pt.energy_per_image.value is None and pt.energy_per_image.provenance == NOT_MEASURABLE
        assert "no RAPL package domains" in pt.energy_per_image.note
        est = pt.energy_per_image_estimate
        assert est.provenance == "estimated" and "TDP 10 W" in est.note
        assert est.value == pytest.approx(10.0 * pt.window.value / (pt.batch * pt.calls))
    assert p.agreement.value == 1.0
    assert cpu_results.system["versions"]["onnxruntime"] and "hostname" not in json.dumps(cpu_results.to_dict())


def test_onnxruntime_predictions_equal_the_ir(net, mnist_test):
    x = np.array(mnist_test[0][:16])
    np.testing.assert_array_equal(OrtRunner(REFERENCE_ONNX, threads=1)(x).argmax(1), net.forward(x).argmax(1))


def test_cpu_energy_from_rapl_when_readable(tmp_path):
    rapl_tree(tmp_path, [5])
    r = measure(REFERENCE_ONNX, random_images(8), Settings(batches=(4,), rapl_root=str(tmp_path), **FAST),
                which=("cpu-onnxruntime",))
    (pt,) = r.platforms[0].points
    assert r.platforms[0].idle_power.value == 0.0  # the fake counter does not move
    assert (pt.energy_per_image.value, pt.energy_per_image.provenance) == (0.0, MEASURED)
    assert pt.dynamic_energy_per_image.value == 0.0 and pt.energy_per_image_estimate is None


def test_no_gpu_reports_cleanly(net):
    images = random_images(1)
    no_cuda = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    assert torch_cuda(no_cuda, None, net, images, Settings(**FAST)).status == NO_GPU
    assert torch_cuda(None, None, net, images, Settings(**FAST)).status == NO_TORCH
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert torch_cuda(torch, None, net, images, Settings(**FAST)).status == NO_GPU


class FakeCudaTorch:
    """Real torch with a fake ``cuda`` namespace, so the GPU path runs on the CPU ("cpu" as the device)."""

    def __init__(self, torch):
        self._torch, self.syncs = torch, 0
        self.version = types.SimpleNamespace(cuda="12.8")
        self.cuda = types.SimpleNamespace(
            is_available=lambda: True, synchronize=self._sync, get_device_name=lambda d: "Fake H100",
            get_device_properties=lambda d: types.SimpleNamespace(uuid="1234-abcd"))

    def _sync(self):
        self.syncs += 1

    def __getattr__(self, name):
        return getattr(self._torch, name)


def test_gpu_path_on_fakes(net):
    torch = FakeCudaTorch(pytest.importorskip("torch"))
    t0 = time.perf_counter()
    nvml = FakeNvml(lambda: 5e6 + 75.0 * 1e3 * (time.perf_counter() - t0))  # a constant 75 W
    p = torch_cuda(torch, nvml, net, random_images(8), Settings(batches=(2,), **FAST), device="cpu")
    assert (p.status, p.device, p.driver) == (MEASURED, "Fake H100", "CUDA runtime 12.8, NVIDIA driver 555.1")
    assert nvml.uuid == "GPU-1234-abcd" and nvml.started == 0 and torch.syncs > MIN_CALLS
    assert p.idle_power.value == pytest.approx(75.0, rel=0.01)
    (pt,) = p.points
    images = pt.batch * pt.calls
    assert pt.window.value >= 1.0  # stretched to NVML's minimum window
    assert pt.energy_per_image.value == pytest.approx(75.0 * pt.window.value / images, rel=0.02)
    assert abs(pt.dynamic_energy_per_image.value) < 0.02 * pt.energy_per_image.value  # all of it was idle power
    assert pt.energy_per_image_estimate is None and p.agreement.value == 1.0


def test_settings_are_checked():
    with pytest.raises(NeuroError, match="batch sizes"):
        Settings(batches=(0, 16))
    with pytest.raises(NeuroError, match="unknown platforms"):
        measure(REFERENCE_ONNX, np.zeros((1, 1, 28, 28), np.float32), Settings(**FAST), which=("tpu",))


# --- files and the command line --------------------------------------------------------------------------

def test_json_round_trip_marks_numbers_recorded(cpu_results, tmp_path):
    path = write_json(cpu_results, tmp_path / "sub" / "cpu.json")
    assert [f.name for f in path.parent.iterdir()] == ["cpu.json"]  # no temporary file left
    back = read_json(path)
    pt, orig = back.platforms[0].points[0], cpu_results.platforms[0].points[0]
    assert pt.throughput.value == orig.throughput.value and pt.throughput.provenance == RECORDED
    assert pt.energy_per_image.provenance == NOT_MEASURABLE and pt.energy_per_image_estimate.provenance == "estimated"
    assert back.platforms[0].agreement.provenance == RECORDED
    as_measured = json.dumps(back.to_dict()).replace(f'"{RECORDED}"', f'"{MEASURED}"')
    assert json.loads(as_measured) == json.loads(json.dumps(cpu_results.to_dict()))  # nothing else changed
    path.write_text('{"model": "m"}')
    with pytest.raises(NeuroError, match="not a baseline results file"):
        read_json(path)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "b.json"
    args = [str(REFERENCE_ONNX), "--batches", "2", "--window", "0.05", "--warmup", "0", "--idle", "0.1",
            "--threads", "1", "--data", "random", "--platforms", "cpu-onnxruntime,gpu-torch-cuda"]
    assert main(args + ["--json", "-o", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert [p["name"] for p in printed["platforms"]] == ["cpu-onnxruntime", "gpu-torch-cuda"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "cpu-onnxruntime" in table and "argmax agreement with the IR: 100.00 %" in table
    assert main([str(tmp_path / "missing.onnx"), "--data", "random"]) == 2
    assert "model file not found" in capsys.readouterr().err
