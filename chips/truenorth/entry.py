"""The TrueNorth chip model as the chip API sees it (``chips.api.Chip``), the ``truenorth`` entry point."""

from chips.api import Chip, Option
from chips.truenorth.cost_model import FIT_VOLTAGE, SETS, TICK_HZ_MAX, VOLTAGE_MAX, VOLTAGE_MIN
from chips.truenorth.mapping import MAX_LEVELS, MIN_LEVELS, SCHEMES
from chips.truenorth.program import (DEFAULT_LEVELS, DEFAULT_SCHEME, PARTIAL_RESOLUTION, chip_limits, compile_snn,
                                     float_proxy)
from neuro.published import HEADLINE_FPS, PublishedPoint

PUBLISHED = (
    PublishedPoint("TrueNorth, 64-copy ensemble", "MNIST", 0.9942, 121e-6, None,
                   "other copies of the paper say 108 uJ", "Esser et al. 2015, NeurIPS (ESS15)"),
    PublishedPoint("TrueNorth, 1 copy", "MNIST", 0.927, 0.408e-6, None,
                   "other copies of the paper say 0.268 uJ", "Esser et al. 2015, NeurIPS (ESS15)"),
    PublishedPoint("TrueNorth, one chip", "8 data sets (vision, speech)", None, None, HEADLINE_FPS,
                   "25-275 mW, > 6,000 frames/s/W", "Esser et al. 2016, PNAS 113:11441 (ESS16)"),
)

CHIP = Chip(
    name="truenorth", title="TrueNorth", compile=compile_snn, limits=chip_limits(), coefficients=SETS,
    options=(Option("scheme", str, DEFAULT_SCHEME, "weight scheme: ternary codes, or two's-complement codes over "
                    "the axon types", choices=SCHEMES),
             Option("levels", int, DEFAULT_LEVELS, "bits per weight of the multilevel scheme (one axon type each)",
                    low=MIN_LEVELS, high=MAX_LEVELS),
             Option("tick_hz", float, "max", "tick rate of the cost: a rate in Hz, or max (the fastest tick the "
                    "run's activity allows)", choices=("max",), low=1.0, high=TICK_HZ_MAX),
             Option("voltage", float, FIT_VOLTAGE, "supply voltage of the cost (AKO15's measured envelope)",
                    low=VOLTAGE_MIN, high=VOLTAGE_MAX),
             Option("partial_resolution", int, PARTIAL_RESOLUTION, "split layers' partial neurons fire at down to "
                    "1/this of the output threshold: finer sums, but more partial spikes, and a piece whose sum moves faster "
                    "than that a tick lags (at most one spike a tick)", low=1, high=64)),
    published=PUBLISHED, wide_options={"scheme": "multilevel", "levels": MAX_LEVELS}, float_proxy=float_proxy,
    coefficient_files=False)   # the power model is fitted to ako15 at import (chips/truenorth/cost_model.py)
