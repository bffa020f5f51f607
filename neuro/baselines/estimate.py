"""Estimated energy per inference and frames/s on reference CPUs and GPUs where no energy counter exists.

Every number here has provenance "estimated" (``neuro.baselines.results.ESTIMATED``): a formula over
published device constants, never a measurement. docs/estimates.md gives the formulas, every constant's
source and the held-out checks.

Public API
----------
- ``LayerWork`` (frozen): one layer's FLOPs, weight bytes, activation bytes in/out (per image) and kernels.
- ``network_work(net, bytes_per_value=4) -> list[LayerWork]``: the work of a ``graph.Network``.
- ``conv_work``, ``dense_work``, ``pool_work``: a layer from its shapes alone (no weights).
- ``resnet50_work(bytes_per_value=4) -> list[LayerWork]``: ImageNet ResNet-50 (224x224), ~4.1 GMACs.
- ``total_flops(work)``, ``weight_bytes(work)``.
- ``GpuSpec`` (frozen) and ``GPUS`` {name: GpuSpec}: H100-SXM, A100-SXM, Jetson-AGX-Orin, Quadro-K4000.
- ``Runtime`` (frozen) and ``RUNTIMES``: host overhead per call and launch floor per kernel.
- ``estimate_gpu(work, gpu, batch, precision="fp32", runtime="eager") -> Estimate``.
- ``CpuPower`` (frozen), ``CPU_POWER``, ``cpu_power(cpu_model)``.
- ``estimate_cpu(seconds_per_image, threads, cpu_model, batch=1) -> Estimate``.
- ``Estimate`` (frozen): device, batch, images_per_s, latency_s (per batch), energy_per_image_j,
  dynamic_energy_per_image_j, power_w: each a ``Range`` (point, low, high); formula, check_note, notes.
- ``Check`` (frozen), ``checks() -> list[Check]`` and ``CHECKS``: each published point held out from
  the fit, with the estimate (point, low, high) and the ratio estimate / published.
- ``ratio_note(check) -> str``: "estimate / published = 0.8x (...)" for a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from neuro import graph
from neuro.errors import NeuroError


class Range(NamedTuple):
    """A point estimate with the low and high it can take over the uncertain constants."""

    point: float
    low: float
    high: float

    def scale(self, k: float) -> Range:
        return Range(self.point * k, self.low * k, self.high * k)


# --- work of a network -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerWork:
    """Per image: FLOPs (2 x MACs), weight bytes (read once per batch), activation bytes in and out.

    ``kernels`` is the number of GPU launches: one per layer; an activation (ReLU, QCFS) right after a layer is
    fused into it and a Flatten is a view (our choice: what cuDNN/TensorRT epilogues and torch views do).
    """

    name: str
    kind: str
    flops: float
    weight_bytes: float
    in_bytes: float
    out_bytes: float
    kernels: int = 1


def _conv_out(h, w, k, stride, pad):
    return (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1


def conv_work(name, in_shape, out_channels, kernel, stride=1, pad=0, groups=1, bytes_per_value=4,
              extra_in_bytes=0.0, bias=True) -> tuple[LayerWork, tuple[int, int, int]]:
    """A square-kernel Conv2d from its shapes; returns the work and the output shape (C, H, W).

    ``extra_in_bytes`` adds reads fused into the layer (a residual shortcut added in its epilogue).
    """
    c, h, w = in_shape
    oh, ow = _conv_out(h, w, kernel, stride, pad)
    macs = out_channels * oh * ow * (c // groups) * kernel * kernel
    params = out_channels * (c // groups) * kernel * kernel + (out_channels if bias else 0)
    work = LayerWork(name, "conv", 2.0 * macs, params * bytes_per_value, c * h * w * bytes_per_value + extra_in_bytes,
                     out_channels * oh * ow * bytes_per_value)
    return work, (out_channels, oh, ow)


def dense_work(name, n_in, n_out, bytes_per_value=4) -> LayerWork:
    """A Dense layer n_in -> n_out (with bias)."""
    return LayerWork(name, "dense", 2.0 * n_in * n_out, (n_in * n_out + n_out) * bytes_per_value,
                     n_in * bytes_per_value, n_out * bytes_per_value)


def pool_work(name, in_shape, kernel, stride, pad=0, kind="avgpool", bytes_per_value=4):
    """A pooling layer; FLOPs: avg pool as the depthwise conv the engine runs (2 per window element),
    max pool one comparison per window element (our choice). Returns the work and the output shape."""
    c, h, w = in_shape
    oh, ow = _conv_out(h, w, kernel, stride, pad)
    per_elem = 2.0 if kind == "avgpool" else 1.0
    work = LayerWork(name, kind, per_elem * c * oh * ow * kernel * kernel, 0.0, c * h * w * bytes_per_value,
                     c * oh * ow * bytes_per_value)
    return work, (c, oh, ow)


def network_work(net: graph.Network, bytes_per_value: int = 4) -> list[LayerWork]:
    """Per-layer work of ``net`` per image (float32 = 4 bytes per value unless said)."""
    shapes, out = net.shapes(), []
    for i, layer in enumerate(net.layers):
        name = f"{i}:{type(layer).__name__}"
        n_in, n_out = math.prod(shapes[i]), math.prod(shapes[i + 1])
        if isinstance(layer, graph.Conv2d):
            o, cg, kh, kw = layer.weight.shape
            macs = n_out * cg * kh * kw
            out.append(LayerWork(name, "conv", 2.0 * macs, (layer.weight.size + o) * bytes_per_value,
                                 n_in * bytes_per_value, n_out * bytes_per_value))
        elif isinstance(layer, graph.Dense):
            out.append(LayerWork(name, "dense", 2.0 * layer.weight.size, (layer.weight.size + layer.weight.shape[0])
                                 * bytes_per_value, n_in * bytes_per_value, n_out * bytes_per_value))
        elif isinstance(layer, (graph.AvgPool2d, graph.MaxPool2d)):
            per_elem = 2.0 if isinstance(layer, graph.AvgPool2d) else 1.0
            out.append(LayerWork(name, "avgpool" if per_elem == 2 else "maxpool",
                                 per_elem * n_out * layer.kernel[0] * layer.kernel[1], 0.0,
                                 n_in * bytes_per_value, n_out * bytes_per_value))
        elif isinstance(layer, graph.Flatten):
            out.append(LayerWork(name, "flatten", 0.0, 0.0, 0.0, 0.0, kernels=0))
        elif isinstance(layer, graph.ACTIVATIONS) and out and out[-1].kernels:
            out.append(LayerWork(name, f"{type(layer).__name__.lower()} (fused)", 0.0, 0.0, 0.0, 0.0, kernels=0))
        else:  # ReLU with nothing to fuse into, QCFS, Softmax: elementwise kernels (our choice: 1 and 5 FLOPs a value)
            per_value = 1.0 if isinstance(layer, graph.ReLU) else 5.0
            out.append(LayerWork(name, type(layer).__name__.lower(), per_value * n_out, 0.0,
                                 n_in * bytes_per_value, n_out * bytes_per_value))
    return out


def resnet50_work(bytes_per_value: int = 4) -> list[LayerWork]:
    """ResNet-50 on 3x224x224 ImageNet images (He et al. 2016, CVPR, Table 1: bottleneck stages of 3, 4, 6, 3
    blocks, widths 64-512, 1000 classes; ~3.8-4.1 GFLOPs counted as multiply-adds). The stride sits on the
    3x3 conv of a stage's first block ("v1.5", torchvision and MLPerf Inference), which gives 4.1 GMACs.
    BatchNorm is folded; ReLU and the residual add are fused into the conv before them (their shortcut read
    is added to that conv's input bytes)."""
    bpv, work = bytes_per_value, []
    w, shape = conv_work("conv1", (3, 224, 224), 64, 7, 2, 3, bytes_per_value=bpv)
    work.append(w)
    w, shape = pool_work("maxpool", shape, 3, 2, 1, kind="maxpool", bytes_per_value=bpv)
    work.append(w)
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=2):
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 2) else 1
            block_in, tag = shape, f"conv{stage}_{b + 1}"
            w1, s = conv_work(f"{tag}a", block_in, width, 1, 1, 0, bytes_per_value=bpv)
            w2, s = conv_work(f"{tag}b", s, width, 3, stride, 1, bytes_per_value=bpv)
            if b == 0:  # projection shortcut (1x1 conv, stride as the block)
                wp, short = conv_work(f"{tag}proj", block_in, 4 * width, 1, stride, 0, bytes_per_value=bpv)
                work.append(wp)
                short_bytes = wp.out_bytes
            else:
                short_bytes = math.prod(block_in) * bpv
            w3, shape = conv_work(f"{tag}c", s, 4 * width, 1, 1, 0, bytes_per_value=bpv, extra_in_bytes=short_bytes)
            work += [w1, w2, w3]
    w, shape = pool_work("avgpool", shape, 7, 1, kind="avgpool", bytes_per_value=bpv)
    work.append(w)
    work.append(dense_work("fc", shape[0], 1000, bytes_per_value=bpv))
    return work


def total_flops(work) -> float:
    return float(sum(w.flops for w in work))


def weight_bytes(work) -> float:
    return float(sum(w.weight_bytes for w in work))


# --- devices -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuSpec:
    """Peak rates (dense, no sparsity), memory and board power of one GPU; ``sources`` cites each constant."""

    name: str
    peak_flops: tuple[tuple[str, float], ...]  # (precision, FLOP/s or OP/s)
    bandwidth: float                           # bytes/s, device memory
    memory: float                              # bytes
    tdp_w: float                               # board limit (TDP / TGP / module max)
    idle_w: float                              # board idle
    sources: str

    def peak(self, precision: str) -> float:
        rates = dict(self.peak_flops)
        if precision not in rates:
            raise NeuroError(f"{self.name} has no {precision} rate here: use precision one of {sorted(rates)}")
        return rates[precision]


GPUS = {g.name: g for g in (
    GpuSpec("H100-SXM",
            # NVIDIA H100 datasheet / Hopper whitepaper (2022), dense: FP32 66.9 TFLOPS (non-tensor),
            # TF32 494.7, FP16/BF16 989.4 TFLOPS, INT8 1,978.9 TOPS
            (("fp32", 66.9e12), ("tf32", 494.7e12), ("fp16", 989.4e12), ("int8", 1978.9e12)),
            3.35e12,     # HBM3 3.35 TB/s, NVIDIA H100 datasheet
            80e9,        # 80 GB HBM3, NVIDIA H100 datasheet
            700.0,       # max TDP 700 W (SXM5), NVIDIA H100 datasheet
            70.0,        # idle: not published by NVIDIA; our choice (~10 % of TDP, typical nvidia-smi idle reading)
            "NVIDIA H100 Tensor Core GPU datasheet (2022); idle W our choice"),
    GpuSpec("A100-SXM",
            # NVIDIA A100 datasheet (2020), dense: FP32 19.5 TFLOPS, TF32 156, FP16 312 TFLOPS, INT8 624 TOPS
            (("fp32", 19.5e12), ("tf32", 156e12), ("fp16", 312e12), ("int8", 624e12)),
            2.039e12,    # A100 80GB SXM: 2,039 GB/s HBM2e, NVIDIA A100 datasheet
            80e9,        # 80 GB, NVIDIA A100 datasheet
            400.0,       # max TDP 400 W (SXM4), NVIDIA A100 datasheet
            50.0,        # idle: not published; our choice (~12 % of TDP)
            "NVIDIA A100 Tensor Core GPU datasheet (2020); idle W our choice"),
    GpuSpec("Jetson-AGX-Orin",
            # NVIDIA Jetson AGX Orin Series technical brief (v1.2, 2022), 64 GB module, GPU only (no DLAs):
            # 2,048 CUDA cores x 2 FLOP x 1.3 GHz = 5.3 TFLOPS FP32; 170 sparse INT8 TOPS -> 85 dense;
            # FP16 tensor dense = INT8 / 2
            (("fp32", 5.3e12), ("fp16", 42.5e12), ("int8", 85e12)),
            204.8e9,     # LPDDR5 204.8 GB/s, Jetson AGX Orin technical brief
            64e9,        # 64 GB shared with the CPU, Jetson AGX Orin technical brief
            60.0,        # module power 15-60 W (MAXN 60 W), Jetson AGX Orin data sheet
            5.0,         # idle: not published; our choice (module idle well under the 15 W lowest mode)
            "NVIDIA Jetson AGX Orin Series technical brief v1.2 and module data sheet; idle W our choice"),
    GpuSpec("Quadro-K4000",
            # NVIDIA Quadro K4000 datasheet (2013): 768 CUDA cores; 811 MHz (TechPowerUp GPU database)
            # -> 768 x 2 x 0.811 GHz = 1.246 TFLOPS FP32; Kepler has no faster FP16/INT8 path
            (("fp32", 1.246e12),),
            134e9,       # 134 GB/s GDDR5 (192-bit), NVIDIA Quadro K4000 datasheet
            3e9,         # 3 GB GDDR5, NVIDIA Quadro K4000 datasheet
            80.0,        # max power consumption 80 W, NVIDIA Quadro K4000 datasheet
            10.0,        # idle: not published; our choice (~12 % of the board limit)
            "NVIDIA Quadro K4000 datasheet (2013), TechPowerUp clock; idle W our choice"),
)}


@dataclass(frozen=True)
class Runtime:
    """How the network is launched: host time per call and the floor of one kernel (each as a Range)."""

    name: str
    host_s: Range        # per call (per batch): framework dispatch, feeding, synchronization
    kernel_floor_s: Range  # per kernel: launch + smallest kernel duration
    note: str


# CUDA launch floor: a few microseconds per kernel (NVIDIA developer blog "Getting Started with CUDA Graphs",
# Gray 2019: ~3-4 us per short kernel launched from a stream). Range 3-20 us, point 8 us: our choice.
_FLOOR = Range(8e-6, 3e-6, 20e-6)
# FITTED (the only fitted constant): TensorFlow 1 session overhead per call = the whole batch-1 time of the
# same keyword-spotting MLP on the Xeon E5-2630 CPU in Blouw et al. 2019, Table 1 (1,814 inf/s -> 551 us;
# the MLP's 0.35 MFLOP take ~1 us of it). Range 0.5x-1.5x: our choice. Held out: every GPU number of Blouw.
_TF1_HOST_S = 1.0 / 1814.0

RUNTIMES = {r.name: r for r in (
    Runtime("compiled", Range(0.0, 0.0, 20e-6), _FLOOR,
            "TensorRT / CUDA graphs, host work pipelined with the GPU (our choice: 0-20 us per call)"),
    Runtime("eager", Range(50e-6, 20e-6, 150e-6), _FLOOR,
            "PyTorch-style eager call from Python (our choice: 20-150 us per call)"),
    Runtime("tf1-session", Range(_TF1_HOST_S, 0.5 * _TF1_HOST_S, 1.5 * _TF1_HOST_S), _FLOOR,
            "TensorFlow 1 session.run, host overhead fitted to Blouw et al. 2019 CPU batch 1 (1/1,814 s)"),
)}

# Fractions of peak reached (our choice; literature is silent for a generic network): compute 0.25-0.8 of the
# dense peak (well-tuned GEMM/conv libraries reach 0.5-0.8 on large layers), memory 0.5-0.9 of peak bandwidth
# (STREAM-like copies reach ~0.8-0.9 on HBM GPUs).
COMPUTE_EFFICIENCY = Range(0.5, 0.25, 0.8)
BANDWIDTH_EFFICIENCY = Range(0.7, 0.5, 0.9)
# Activity factor: board power = idle + a x (TDP - idle); a = 0.5, range 0.2-1.0 (our choice: at least idle,
# at most the board limit, as the brief's "between idle and TDP").
ACTIVITY = Range(0.5, 0.2, 1.0)
# Share of device memory the activations of one batch may use before the batch is run in chunks (our choice).
MEMORY_HEADROOM = 0.8


@dataclass(frozen=True)
class Estimate:
    """An estimated operating point; every quantity a Range (point, low, high). Provenance "estimated"."""

    device: str
    batch: int
    images_per_s: Range
    latency_s: Range                  # one batch
    energy_per_image_j: Range         # board (GPU) or cores' share of the package (CPU), idle included
    dynamic_energy_per_image_j: Range  # idle subtracted (compare with Blouw et al. 2019)
    power_w: Range
    formula: str
    check_note: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    provenance: str = "estimated"


def _check_batch(batch):
    if not isinstance(batch, (int,)) or isinstance(batch, bool) or batch < 1:
        raise NeuroError(f"batch must be a whole number >= 1, got {batch!r}: pass e.g. batch=1 or batch=256")


def gpu_spec(gpu) -> GpuSpec:
    if isinstance(gpu, GpuSpec):
        return gpu
    if gpu not in GPUS:
        raise NeuroError(f"unknown GPU {gpu!r}: use one of {', '.join(GPUS)} or pass a GpuSpec")
    return GPUS[gpu]


def _batch_time(work, spec, b, peak, eff_c, eff_b, floor, host):
    """Seconds for one call on ``b`` images: host + sum over layers of max(compute, memory, launch floor)."""
    t = host
    for w in work:
        if w.kernels == 0:
            continue
        compute = w.flops * b / (peak * eff_c)
        memory = (w.weight_bytes + b * (w.in_bytes + w.out_bytes)) / (spec.bandwidth * eff_b)
        t += max(compute, memory, w.kernels * floor)
    return t


def max_batch_in_memory(work, gpu) -> int:
    """Largest batch whose weights plus the largest layer's activations (in + out) fit MEMORY_HEADROOM."""
    spec = gpu_spec(gpu)
    per_image = max((w.in_bytes + w.out_bytes for w in work), default=0.0)
    room = MEMORY_HEADROOM * spec.memory - weight_bytes(work)
    if room <= per_image:
        raise NeuroError(f"the network's weights and one image do not fit the {spec.name}'s memory: "
                         "choose a larger GPU or a lower precision")
    return int(room // per_image) if per_image else 1 << 30


def estimate_gpu(work, gpu, batch: int, precision: str = "fp32", runtime: str = "eager") -> Estimate:
    """Estimated images/s, latency, power and energy per image of ``work`` on ``gpu`` at ``batch``.

    A batch beyond device memory runs as chunks of ``max_batch_in_memory`` images, one after another.
    """
    _check_batch(batch)
    spec = gpu_spec(gpu)
    if runtime not in RUNTIMES:
        raise NeuroError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    rt, peak = RUNTIMES[runtime], spec.peak(precision)
    if not work:
        raise NeuroError("the network has no layers: describe it with network_work or conv_work/dense_work")
    chunk = min(batch, max_batch_in_memory(work, spec))
    chunks = [chunk] * (batch // chunk) + ([batch % chunk] if batch % chunk else [])

    def time(eff_c, eff_b, floor, host):
        return sum(_batch_time(work, spec, b, peak, eff_c, eff_b, floor, host) for b in chunks)

    c, m, f, h = COMPUTE_EFFICIENCY, BANDWIDTH_EFFICIENCY, rt.kernel_floor_s, rt.host_s
    latency = Range(time(c.point, m.point, f.point, h.point), time(c.high, m.high, f.low, h.low),
                    time(c.low, m.low, f.high, h.high))
    span = spec.tdp_w - spec.idle_w
    power = Range(*(spec.idle_w + a * span for a in ACTIVITY))
    dynamic = Range(*(p - spec.idle_w for p in power))
    notes = [f"runtime {rt.name}: {rt.note}"]
    if chunk < batch:
        notes.append(f"batch {batch} exceeds {MEMORY_HEADROOM:.0%} of the {spec.memory / 1e9:g} GB memory: "
                     f"run as {len(chunks)} chunks of <= {chunk} images")
    return Estimate(
        device=spec.name, batch=batch,
        images_per_s=Range(batch / latency.point, batch / latency.high, batch / latency.low),
        latency_s=latency,
        energy_per_image_j=Range(power.point * latency.point / batch, power.low * latency.low / batch,
                                 power.high * latency.high / batch),
        dynamic_energy_per_image_j=Range(dynamic.point * latency.point / batch, dynamic.low * latency.low / batch,
                                         dynamic.high * latency.high / batch),
        power_w=power,
        formula=("t_batch = host + sum_layers max(FLOPs*B/(peak*eff_c), (W + B*(A_in+A_out))/(BW*eff_b), "
                 f"kernels*floor); P = idle + a*(TDP - idle); E/image = P*t_batch/B [{precision}, {spec.name}]"),
        check_note=check_note_for("gpu"),
        notes=tuple(notes),
    )


# --- CPU ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuPart:
    name: str
    cores: int
    tdp_w: float
    source: str

    @property
    def per_core_w(self) -> float:
        return self.tdp_w / self.cores


@dataclass(frozen=True)
class CpuPower:
    """Package power per busy core (W) for a CPU family: Range over the listed parts."""

    family: str
    per_core_w: Range
    parts: tuple[CpuPart, ...]
    note: str


# AMD EPYC default TDPs (AMD product pages / launch specifications), one part per recent generation.
EPYC_PARTS = (
    CpuPart("EPYC 7742 (Rome, Zen 2)", 64, 225.0, "AMD EPYC 7742 product page: 64 cores, default TDP 225 W"),
    CpuPart("EPYC 7763 (Milan, Zen 3)", 64, 280.0, "AMD EPYC 7763 product page: 64 cores, default TDP 280 W"),
    CpuPart("EPYC 9654 (Genoa, Zen 4)", 96, 360.0, "AMD EPYC 9654 product page: 96 cores, default TDP 360 W"),
    CpuPart("EPYC 9754 (Bergamo, Zen 4c)", 128, 360.0, "AMD EPYC 9754 product page: 128 cores, default TDP 360 W"),
)
# AMD publishes no idle package power for EPYC. Our choice: a busy core in an otherwise idle package draws at
# least half its TDP share (low), at most the largest share (high); point = mean share over the parts.
_epyc_shares = [p.per_core_w for p in EPYC_PARTS]
CPU_POWER = {
    "AMD EPYC": CpuPower("AMD EPYC", Range(sum(_epyc_shares) / len(_epyc_shares), 0.5 * min(_epyc_shares),
                                           max(_epyc_shares)), EPYC_PARTS,
                         "TDP / cores across EPYC generations; low = half the smallest share (our choice)"),
}
# Unknown CPU: our choice, 1-16 W per core (a 192-core 500 W server part is 2.6 W/core; a 4-core 65 W desktop
# part 16 W/core); point 4 W.
UNKNOWN_CPU = CpuPower("unknown CPU", Range(4.0, 1.0, 16.0), (), "wide default range (our choice)")


def cpu_power(cpu_model: str) -> CpuPower:
    """Per-core power range for ``cpu_model`` (e.g. "AMD EPYC 7763 64-Core Processor"); UNKNOWN_CPU if no match."""
    for family, power in CPU_POWER.items():
        if family.lower() in (cpu_model or "").lower():
            return power
    return UNKNOWN_CPU


def estimate_cpu(seconds_per_image: float, threads: int, cpu_model: str, batch: int = 1) -> Estimate:
    """Energy per image = measured seconds per image x threads x package power per busy core."""
    _check_batch(batch)
    if not (seconds_per_image > 0 and math.isfinite(seconds_per_image)):
        raise NeuroError(f"seconds_per_image must be a positive time, got {seconds_per_image!r}: pass the "
                         "measured latency per batch divided by the batch")
    if not isinstance(threads, int) or threads < 1:
        raise NeuroError(f"threads must be a whole number >= 1, got {threads!r}: pass the cores the run used")
    fam = cpu_power(cpu_model)
    power = fam.per_core_w.scale(threads)
    ips = 1.0 / seconds_per_image
    latency = seconds_per_image * batch
    return Estimate(
        device=f"{cpu_model} ({threads} threads)", batch=batch,
        images_per_s=Range(ips, ips, ips), latency_s=Range(latency, latency, latency),
        energy_per_image_j=power.scale(seconds_per_image),
        dynamic_energy_per_image_j=power.scale(seconds_per_image),  # the cores' share only: idle is not in it
        power_w=power,
        formula=f"E/image = t_image x threads x P_core; P_core {fam.per_core_w.point:.2f} "
                f"({fam.per_core_w.low:.2f}-{fam.per_core_w.high:.2f}) W [{fam.family}: {fam.note}]",
        check_note="time is measured; only the power per core is estimated (no held-out CPU energy check)",
        notes=(f"cpu_model={cpu_model!r}", f"threads={threads}"),
    )


# --- held-out checks ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """A published measurement not used to fit, beside the estimate of it."""

    name: str
    quantity: str
    unit: str
    published: float
    estimate: Range
    bound: float        # the stated error bound: ratio within [1/bound, bound]
    note: str
    source: str

    @property
    def ratio(self) -> float:
        return self.estimate.point / self.published

    @property
    def within(self) -> bool:
        return 1.0 / self.bound <= self.ratio <= self.bound


def blouw_mlp_work(bytes_per_value: int = 4) -> list[LayerWork]:
    """The keyword-spotting MLP 390-256-256-29 of Blouw et al. 2019 (ReLUs fused)."""
    return [dense_work("fc1", 390, 256, bytes_per_value), dense_work("fc2", 256, 256, bytes_per_value),
            dense_work("fc3", 256, 29, bytes_per_value)]


MLPERF_BATCH = 2048  # our choice: a large offline batch (the MLPerf offline scenario lets the submitter choose)


def checks() -> list[Check]:
    """Every published point with the estimate of it (point, low, high) and the ratio estimate / published."""
    blouw = "Blouw et al. 2019, Table 1 (batch 1); batch 64 derived from the paper's logs (docs/references.md)"
    kws = blouw_mlp_work()
    b1 = estimate_gpu(kws, "Quadro-K4000", 1, "fp32", "tf1-session")
    b64 = estimate_gpu(kws, "Quadro-K4000", 64, "fp32", "tf1-session")
    rn = estimate_gpu(resnet50_work(bytes_per_value=1), "H100-SXM", MLPERF_BATCH, "int8", "compiled")
    fit = "host overhead fitted to Blouw's CPU batch 1 (not this number)"
    dyn = "dynamic energy: estimate's (P - idle) x t / B vs Blouw's idle-subtracted energy"
    return [
        Check("Blouw K4000 batch 1 throughput", "images_per_s", "inf/s", 770.0, b1.images_per_s, 2.5,
              f"{fit}; stated miss (bound 2.5x): too fast, TF's GPU path costs more per call than its CPU path",
              blouw),
        Check("Blouw K4000 batch 1 dynamic energy", "dynamic_energy_per_image_j", "J", 29.8e-3,
              b1.dynamic_energy_per_image_j, 2.0, f"{dyn}; {fit}", blouw),
        Check("Blouw K4000 batch 64 throughput", "images_per_s", "inf/s", 36e3, b64.images_per_s, 3.5,
              f"{fit}; stated miss (bound 3.5x): too fast, the host cost per image fed and the low efficiency of "
              "tiny GEMMs on Kepler are not modelled", blouw),
        Check("Blouw K4000 batch 64 dynamic energy", "dynamic_energy_per_image_j", "J", 0.73e-3,
              b64.dynamic_energy_per_image_j, 2.5, f"{dyn}; stated miss (bound 2.5x): too low, follows the time miss", blouw),
        Check("MLPerf v4.0 H100-SXM ResNet-50 offline", "images_per_s", "samples/s", 88714.0, rn.images_per_s, 2.0,
              f"INT8, compiled runtime, batch {MLPERF_BATCH} (our choice); nothing fitted to MLPerf",
              "MLPerf Inference v4.0 datacenter, closed, ResNet-50 offline, per H100-SXM accelerator"),
    ]


def check_note_for(kind: str) -> str:
    """Where the GPU estimate's accuracy is known (filled from ``CHECKS`` once computed)."""
    if kind != "gpu" or "CHECKS" not in globals():
        return "see neuro.baselines.estimate.CHECKS"
    return "; ".join(f"{c.name}: {c.ratio:.2f}x" for c in CHECKS)


def ratio_note(check: Check) -> str:
    """The line a report prints beside an estimate that depends on ``check``."""
    return (f"estimate / published = {check.ratio:.2g}x ({check.name}; range {check.estimate.low / check.published:.2g}"
            f"-{check.estimate.high / check.published:.2g}x; {check.source})")


CHECKS = checks()
