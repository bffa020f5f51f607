"""CPU and GPU baselines: the same ANN (ONNX) measured honestly on onnxruntime, torch CPU and torch CUDA.

Per batch size: throughput (images/s), latency p50/p99 of one batch, energy per image (total and
idle-subtracted) from NVML or RAPL where readable, else "not measurable here". Warm-up is discarded
and each point is timed over a window well above 100 ms. Every number carries its provenance
(docs/references.md section 4). ``python -m neuro.baselines MODEL.onnx`` prints a table or JSON.
"""

from neuro.baselines.energy import EnergyUnavailable, NvmlEnergyReader, RaplReader
from neuro.baselines.platforms import NO_GPU, Settings
from neuro.baselines.results import Baselines, Platform, Point, Value, read_json, write_json
from neuro.baselines.suite import PLATFORMS, measure
from neuro.baselines.torch_net import to_torch

__all__ = ["measure", "Settings", "PLATFORMS", "NO_GPU", "Baselines", "Platform", "Point", "Value",
           "read_json", "write_json", "NvmlEnergyReader", "RaplReader", "EnergyUnavailable", "to_torch"]
