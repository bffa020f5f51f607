"""Energy counters read around a timing window: NVML for a GPU board, RAPL for the CPU packages.

A reader's ``sample()`` takes the raw counters and a timestamp; ``window(a, b)`` gives the joules
and seconds between two samples and refuses windows shorter than the counter can resolve;
``idle_power_w`` measures the idle draw that ``per_image`` subtracts for the dynamic energy.
Both readers take their interface as an argument (a pynvml-like module, a sysfs root), so tests
run them on fakes. A counter that cannot be read raises ``EnergyUnavailable`` with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from neuro.errors import NeuroError

RAPL_ROOT = Path("/sys/class/powercap")


class EnergyUnavailable(Exception):
    """The counter cannot be read on this machine; the message says why (shown as "not measurable here")."""


@dataclass(frozen=True)
class Sample:
    """Raw counter values (the reader's units) at time ``t`` (seconds, the reader's clock)."""

    counters: tuple[int, ...]
    t: float


@dataclass(frozen=True)
class Window:
    """Energy used between two samples."""

    joules: float
    seconds: float


class _Counter:
    """Window and idle arithmetic shared by the readers; subclasses define ``sample`` and ``_joules``."""

    source = ""

    def __init__(self, min_window_s: float, clock, sleep):
        self.min_window_s, self.clock, self.sleep = float(min_window_s), clock, sleep

    def window(self, a: Sample, b: Sample) -> Window:
        """Joules between samples ``a`` and ``b``; an error when the window is too short to trust."""
        seconds = b.t - a.t
        if seconds < self.min_window_s:
            raise NeuroError(f"energy window of {seconds:.3f} s is shorter than the {self.min_window_s:g} s that "
                             f"{self.source} needs: measure over a longer window")
        return Window(self._joules(a, b), seconds)

    def idle_power_w(self, seconds: float) -> float:
        """Mean power (W) while this process sleeps for ``seconds`` (at least the minimum window)."""
        a = self.sample()
        self.sleep(max(seconds, self.min_window_s))
        w = self.window(a, self.sample())
        return w.joules / w.seconds


class NvmlEnergyReader(_Counter):
    """GPU board energy from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load; Volta+).

    ``nvml`` is the ``pynvml`` module of nvidia-ml-py, or anything with its functions. The device is
    picked by NVML UUID ("GPU-...") when given, else by NVML index. Board power (the whole card):
    not the chip alone. Windows of at least ``min_window_s`` (1 s): the counter advances with the
    driver's power sampling, and recent GPUs average power over about 1 s.
    """

    source = "NVML total-energy counter"

    def __init__(self, nvml, uuid: str | None = None, index: int = 0, min_window_s: float = 1.0,
                 clock=time.perf_counter, sleep=time.sleep):
        super().__init__(min_window_s, clock, sleep)
        self.nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise EnergyUnavailable(f"NVML cannot start ({e})") from None
        try:
            self.handle = nvml.nvmlDeviceGetHandleByUUID(uuid) if uuid else nvml.nvmlDeviceGetHandleByIndex(index)
            self.device = nvml.nvmlDeviceGetName(self.handle)
            self.driver = nvml.nvmlSystemGetDriverVersion()
            self.sample()
        except nvml.NVMLError as e:
            nvml.nvmlShutdown()
            raise EnergyUnavailable(f"NVML total-energy counter not readable ({e})") from None

    def sample(self) -> Sample:
        return Sample((int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)),), self.clock())

    def _joules(self, a: Sample, b: Sample) -> float:
        if b.counters[0] < a.counters[0]:
            raise NeuroError("the NVML energy counter went backwards (driver reloaded?): measure again")
        return (b.counters[0] - a.counters[0]) / 1e3

    def close(self) -> None:
        self.nvml.nvmlShutdown()


class RaplReader(_Counter):
    """CPU package energy from RAPL in the Linux powercap tree (``intel-rapl:N/energy_uj``, in uJ).

    Sums the top-level package domains (name ``package-N``; psys and DRAM are left out). Each
    counter wraps to 0 after ``max_energy_range_uj``; one wrap per window is undone, so a window must
    be shorter than a wrap period (minutes to hours). ``energy_uj`` is root-only on many systems.
    """

    source = "RAPL package counters"

    def __init__(self, root=RAPL_ROOT, min_window_s: float = 0.1, clock=time.perf_counter, sleep=time.sleep):
        super().__init__(min_window_s, clock, sleep)
        root = Path(root)
        try:
            self.zones = [z for z in sorted(root.glob("intel-rapl:*")) if _read(z / "name").startswith("package")]
            if not self.zones:
                raise EnergyUnavailable(f"no RAPL package domains under {root} (usual in VMs and containers)")
            self.device = ", ".join(_read(z / "name") for z in self.zones)
            self.max_uj = [int(_read(z / "max_energy_range_uj")) for z in self.zones]
            self.sample()
        except PermissionError as e:
            raise EnergyUnavailable(f"{e.filename} is not readable (RAPL is root-only here)") from None
        except (OSError, ValueError) as e:
            raise EnergyUnavailable(f"RAPL counters under {root} are unreadable ({e})") from None

    def sample(self) -> Sample:
        return Sample(tuple(int(_read(z / "energy_uj")) for z in self.zones), self.clock())

    def _joules(self, a: Sample, b: Sample) -> float:
        uj = sum(e1 - e0 if e1 >= e0 else e1 + top - e0 for e0, e1, top in zip(a.counters, b.counters, self.max_uj))
        return uj / 1e6


def per_image(window: Window, images: int, idle_w: float) -> tuple[float, float]:
    """(total, dynamic) joules per image: dynamic = (E - P_idle * t) / images."""
    return window.joules / images, (window.joules - idle_w * window.seconds) / images


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
