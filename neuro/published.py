"""Published points: numbers from papers and benchmark rounds, never measured here, for the report.

``PublishedPoint`` (system, task, accuracy as a fraction or None, energy_j per inference or None, fps (low,
high) or None, note, source), frozen. Each chip model carries its own published points and the platforms
measured beside them (``chips.published_points()``); ``GPU_POINTS`` holds MLPerf's H100; ``OTHER_CHIPS`` holds
Google TPU v1, an MLPerf Tiny edge NPU and FINN; each
note says which table a number comes from and which numbers were derived here (e.g. energy = power / frames
per second). ``HEADLINE_FPS`` and ``HEADLINE_POWER_RATIO`` are the two claims the report tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedPoint:
    """A number from a publication, never measured here."""

    system: str
    task: str
    accuracy: float | None           # fraction
    energy_j: float | None           # per inference
    fps: tuple[float, float] | None  # frames/s (low, high); low == high for one number
    note: str
    source: str


# ESS16: "1,200 to 2,600 frames/s" on one TrueNorth chip at 25-275 mW (Esser et al. 2016, PNAS 113:11441).
HEADLINE_FPS = (1200.0, 2600.0)
# "at 1/10,000 the power of a conventional microprocessor", as the claim is usually repeated: it merges ESS16's
# frames/s with MER14's power *density* (20 mW/cm2 for TrueNorth vs 50-100 W/cm2 for a CPU), not a measured
# power per inference of the same task. The report tests it as a power ratio at equal accuracy on the same task.
HEADLINE_POWER_RATIO = 1e-4
MER14_POWER_DENSITY_W_CM2 = 20e-3          # TrueNorth, W/cm2 (MER14 [sec])
MER14_CPU_POWER_DENSITY_W_CM2 = (50.0, 100.0)   # a conventional CPU, W/cm2 (MER14 [sec])

# The chips' own published points (and the platforms measured beside them) come with each chip model
# (``chips.api.Chip.published``; ``chips.published_points()`` gathers them); GPU_POINTS holds the rest.
GPU_POINTS = (
    PublishedPoint("H100-SXM", "ImageNet ResNet-50, offline", None, None, (88_714, 88_714),
                   "a far larger network than the MNIST CNN", "MLPerf Inference v4.0"),
)

# Jouppi et al. 2017: Table 4, MLP0 at the 7 ms 99th-percentile limit: TPU 225,000 inferences/s per die at
# batch 200; Table 2: TPU die busy power 40 W (TDP 75 W, idle 28 W). Energy derived here: 40 W / 225,000.
TPU_V1_IPS = 225_000.0
TPU_V1_BUSY_W = 40.0

# Umuroglu et al. 2017 (FINN), abstract and results: ZC706 board "drawing less than 25 W total system power";
# SFC-max MNIST 12.3 M images/s at 95.8 %; CNV-max CIFAR-10 21,906 images/s at 80.1 %. Energy derived here as
# an upper bound, 25 W / images/s.
FINN_POWER_BOUND_W = 25.0

OTHER_CHIPS = (
    PublishedPoint("Google TPU v1 (one die)", "MLP0 (production MLP), batch 200, 7 ms 99th-percentile limit",
                   None, TPU_V1_BUSY_W / TPU_V1_IPS, (TPU_V1_IPS, TPU_V1_IPS),
                   "energy derived here: busy power 40 W per die (Table 2) / 225,000 IPS (Table 4); 92 TOPS peak "
                   "INT8, 28 nm; no accuracy given",
                   "Jouppi et al. 2017, ISCA, Tables 2 and 4"),
    PublishedPoint("Syntiant NDP9120 (MLPerf Tiny)", "CIFAR-10 ResNet-8 image classification, single stream", None,
                   102e-6, (62.0, 62.0),
                   "closed division: the model must reach the 85 % top-1 quality target; energy as submitted",
                   "MLPerf Tiny v1.1 results, image classification (MLCommons, 2023)"),
    PublishedPoint("FINN on Xilinx ZC706 (FPGA), SFC-max", "MNIST, binarized MLP", 0.958,
                   FINN_POWER_BOUND_W / 12.3e6, (12.3e6, 12.3e6),
                   "0.31 us latency; energy an upper bound derived here: < 25 W total system power / frames/s",
                   "Umuroglu et al. 2017, FPGA '17 (FINN), abstract and results section"),
    PublishedPoint("FINN on Xilinx ZC706 (FPGA), CNV-max", "CIFAR-10, binarized CNN", 0.801,
                   FINN_POWER_BOUND_W / 21_906.0, (21_906.0, 21_906.0),
                   "283 us latency; energy an upper bound derived here: < 25 W total system power / frames/s",
                   "Umuroglu et al. 2017, FPGA '17 (FINN), abstract and results section"),
)
