"""The Loihi 2 chip model as the chip API sees it (``chips.api.Chip``), the ``loihi2`` entry point."""

from chips.api import Chip, Option, PublishedPoint
from chips.loihi2.chip import (CHIP_CORES, CHIP_SYNAPSES, CORE_NEURONS, CORE_SYNAPSES, DEFAULT_ACT_BITS, DEFAULT_VTH,
                               EMBEDDED_CPUS, SETS, compile_snn)
from chips.lava_dense import WEIGHT_BITS
from neuro.encode import SPIKE_ENCODINGS
from chips.loihi2.neuron import MESSAGE_BITS_MAX

PUBLISHED = (
    PublishedPoint("Loihi 2 (PilotNet SDNN)", "PilotNet steering-angle regression, 1 step per frame", None, 1.66e-3,
                   (409, 409), "held out from the cost model (docs/chips/loihi2.md calibration)",
                   "lava-dl PilotNet SDNN benchmark on Loihi 2 (Intel Labs) [verify the table]"),
)

CHIP = Chip(
    name="loihi2", title="Loihi 2", compile=compile_snn,
    limits={"cores per chip": CHIP_CORES, "neurons per core": CORE_NEURONS, "synapses per chip": CHIP_SYNAPSES,
            "synapses per core (our even split)": CORE_SYNAPSES, "embedded x86 cores per chip": EMBEDDED_CPUS,
            "weight bits": WEIGHT_BITS, "graded payload bits": MESSAGE_BITS_MAX},
    coefficients=SETS,
    options=(Option("act_bits", int, DEFAULT_ACT_BITS, "activation resolution: 2^act_bits integer units per unit "
                    "of activation", low=2, high=12),
             Option("vth", int, DEFAULT_VTH, "delta threshold in activation units: smaller changes wait in the "
                    "residue (0: send every change)", low=0, high=1 << 16)),
    published=PUBLISHED, wide_options={"act_bits": 8, "vth": 0},
    encodings=("current", *SPIKE_ENCODINGS))   # current: the frame as graded input (how sigma-delta networks take video)
