"""The platforms: the same ANN run by onnxruntime on the CPU, torch on the CPU and torch on a CUDA GPU.

Each call runs one batch end to end, from host memory to host memory (the GPU call includes the
copies both ways). Energy comes from RAPL on the CPU and NVML on the GPU when readable; otherwise the
numbers say "not measurable here" and why. A CPU estimate from a TDP the user gives appears only
in ``energy_per_image_estimate``, with its formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuro import graph
from neuro.baselines import system
from neuro.baselines.energy import RAPL_ROOT, EnergyUnavailable, NvmlEnergyReader, RaplReader, per_image
from neuro.baselines.results import ESTIMATED, MEASURED, Platform, Point, Value
from neuro.baselines.timing import Timing, time_batches
from neuro.baselines.torch_net import to_torch
from neuro.errors import NeuroError

NO_GPU = "no GPU here"
NO_TORCH = "torch not installed (pip install -e '.[torch]')"
#: Images checked against the IR's float forward pass (argmax agreement), outside the timed windows.
AGREEMENT_IMAGES = 256


@dataclass
class Settings:
    """How to measure: batch sizes, timed window and warm-up per batch, idle window, threads."""

    batches: tuple[int, ...] = (1, 16, 256, 4096)
    window_s: float = 1.0
    warmup_s: float = 0.5
    idle_s: float = 3.0
    threads: int | None = None  # CPU threads; None = every CPU this process may use
    cpu_tdp_w: float | None = None  # only for the labelled estimate; never used as a measurement
    rapl_root: str = str(RAPL_ROOT)

    def __post_init__(self):
        self.batches = tuple(int(b) for b in self.batches)
        if not self.batches or min(self.batches) < 1:
            raise NeuroError(f"batch sizes must be positive integers, got {self.batches}")
        if self.window_s <= 0 or self.warmup_s < 0 or self.idle_s <= 0:
            raise NeuroError("the window and idle times must be positive and the warm-up not negative")
        self.threads = system.usable_cpus() if self.threads is None else int(self.threads)


class OrtRunner:
    """One batch through an onnxruntime CPU session."""

    def __init__(self, path, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise NeuroError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name, self.fixed_batch = inp.name, inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.fixed_batch is not None and len(x) != self.fixed_batch:
            raise NeuroError(f"the ONNX model's input has a fixed batch of {self.fixed_batch}: "
                             "export it with a dynamic batch axis to measure other batch sizes")
        return self.session.run(None, {self.input_name: x})[0]


class TorchRunner:
    """One batch through the IR rebuilt as a torch module on ``device``; the result back on the host."""

    def __init__(self, torch, net: graph.Network, device):
        self.torch, self.device = torch, device
        self.module = to_torch(net).to(device)
        self.runtime = f"torch {torch.__version__}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module(self.torch.from_numpy(x).to(self.device)).cpu().numpy()


def onnxruntime_cpu(model_path, net: graph.Network, images: np.ndarray, settings: Settings) -> Platform:
    """The ONNX file run by onnxruntime's CPU provider with ``settings.threads`` threads."""
    runner = OrtRunner(model_path, settings.threads)
    return _measure_cpu("cpu-onnxruntime", runner, net, images, settings)


def torch_cpu(torch, net: graph.Network, images: np.ndarray, settings: Settings) -> Platform:
    """The IR as a torch module on the CPU with ``settings.threads`` threads (``torch`` None: not installed)."""
    if torch is None:
        return Platform("cpu-torch", NO_TORCH)
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _measure_cpu("cpu-torch", TorchRunner(torch, net, "cpu"), net, images, settings)
    finally:
        torch.set_num_threads(previous)


def torch_cuda(torch, nvml, net: graph.Network, images: np.ndarray, settings: Settings,
               device="cuda") -> Platform:
    """The IR as a torch module on a CUDA GPU, energy from NVML (``nvml``: pynvml, or None: not installed)."""
    name = "gpu-torch-cuda"
    if torch is None:
        return Platform(name, NO_TORCH)
    if not torch.cuda.is_available():
        return Platform(name, NO_GPU)
    runner = TorchRunner(torch, net, device)
    counter, reason = _nvml_reader(nvml, torch.cuda.get_device_properties(device))
    driver = f"CUDA runtime {torch.version.cuda}" + (f", NVIDIA driver {counter.driver}" if counter else "")
    try:
        platform = _measure(name, runner, torch.cuda.synchronize, net, images, settings, counter, reason,
                            "GPU board power (the whole card, not the chip alone)", tdp_w=None)
    finally:
        if counter is not None:
            counter.close()
    platform.device, platform.driver, platform.runtime = torch.cuda.get_device_name(device), driver, runner.runtime
    return platform


def _nvml_reader(nvml, props):
    """(NVML reader for the torch device ``props``, None) or (None, why energy is not measurable)."""
    if nvml is None:
        return None, "nvidia-ml-py is not installed (pip install -e '.[gpu]')"
    uuid = str(props.uuid)
    try:
        return NvmlEnergyReader(nvml, uuid=uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"), ""
    except EnergyUnavailable as e:
        return None, str(e)


def _measure_cpu(name: str, runner, net, images, settings: Settings) -> Platform:
    try:
        counter, reason = RaplReader(settings.rapl_root), ""
    except EnergyUnavailable as e:
        counter, reason = None, str(e)
    platform = _measure(name, runner, lambda: None, net, images, settings, counter, reason,
                        "CPU packages (RAPL): every process on them counts, DRAM and board excluded",
                        tdp_w=settings.cpu_tdp_w)
    platform.device, platform.threads, platform.runtime = system.cpu_model(), settings.threads, runner.runtime
    return platform


def _measure(name, runner, sync, net, images, settings: Settings, counter, reason: str, scope: str,
             tdp_w: float | None) -> Platform:
    """Idle power first (when a counter is readable), then every batch size; plus the IR agreement check."""
    idle = None
    if counter is not None:
        sync()
        seconds = max(settings.idle_s, counter.min_window_s)
        idle = Value.measured(counter.idle_power_w(seconds), "W",
                              f"mean over {seconds:g} s idle before the runs; {scope}")
    points = []
    for b in settings.batches:
        timing = time_batches(runner, batch_of(images, b), settings.window_s, settings.warmup_s, counter, sync)
        points.append(_point(timing, idle, reason, scope, tdp_w))
    return Platform(name, MEASURED, energy_source=f"{counter.source}: {scope}" if counter else
                    f"not measurable here: {reason}", idle_power=idle, agreement=agreement(runner, net, images),
                    points=points)


def _point(t: Timing, idle: Value | None, reason: str, scope: str, tdp_w: float | None) -> Point:
    if t.energy is None:
        total, dynamic = Value.missing("J/image", reason), Value.missing("J/image", reason)
    else:
        e, d = per_image(t.energy, t.images, idle.value)
        total = Value.measured(e, "J/image", f"{t.energy.joules:.4g} J over {t.energy.seconds:.3f} s; {scope}")
        dynamic = Value.measured(d, "J/image", f"total minus idle {idle.value:.4g} W x {t.energy.seconds:.3f} s")
    estimate = None if tdp_w is None else Value(
        tdp_w * t.seconds / t.images, "J/image", ESTIMATED,
        f"TDP {tdp_w:g} W x {t.seconds:.3f} s / {t.images} images: assumes the package at TDP throughout")
    windows = len(t.window_throughputs) if t.window_throughputs is not None else 1
    throughput = Value(t.throughput, "images/s", MEASURED, f"mean of {windows} timed windows", std=t.throughput_std)
    return Point(t.batch, t.calls, Value.measured(t.seconds, "s"), throughput,
                 Value.measured(1e3 * t.latency_percentile(50), "ms", "one batch, host to host"),
                 Value.measured(1e3 * t.latency_percentile(99), "ms", "one batch, host to host"),
                 total, dynamic, estimate)


def agreement(runner, net: graph.Network, images: np.ndarray) -> Value:
    """Fraction of images whose argmax from ``runner`` equals the IR's float forward pass."""
    x = np.array(images[:AGREEMENT_IMAGES], np.float32)  # a writable copy: torch refuses read-only arrays
    same = runner(x).argmax(axis=1) == net.predict(x)
    return Value.measured(same.mean(), "fraction", f"argmax vs neuro.graph forward on {len(x)} images")


def batch_of(images: np.ndarray, batch: int) -> np.ndarray:
    """A contiguous float32 batch of ``batch`` images, cycling through ``images`` when there are fewer."""
    return np.ascontiguousarray(images[np.arange(batch) % len(images)], np.float32)
