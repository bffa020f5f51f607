"""The Loihi 1 chip model as the chip API sees it (``chips.api.Chip``), the ``loihi`` entry point."""

from chips.api import Chip, Option
from chips.loihi.compile import DEFAULT_VTH, compile_snn, float_proxy
from chips.loihi.cost_model import SETS, chip_limits
from chips.loihi.neuron import VTH_MAX
from neuro.published import PublishedPoint

PUBLISHED = (
    PublishedPoint("Loihi", "keyword spotting 390-256-256-29, batch 1", None, 0.27e-3, (296, 296),
                   "idle-subtracted dynamic energy", "Blouw et al. 2019, Table 1"),
    PublishedPoint("Quadro K4000 GPU", "keyword spotting 390-256-256-29, batch 1", None, 29.8e-3, (770, 770),
                   "idle-subtracted dynamic energy", "Blouw et al. 2019, Table 1"),
    PublishedPoint("Xeon E5-2630 CPU", "keyword spotting 390-256-256-29, batch 1", None, 6.3e-3, (1814, 1814),
                   "idle-subtracted dynamic energy", "Blouw et al. 2019, Table 1"),
    PublishedPoint("Loihi (NxTF)", "MNIST 4-conv net, 512 steps/image", 0.9844, None, (1 / 29.4e-3, 1 / 29.4e-3),
                   "29.4 ms per image (frames/s = 1 / 29.4 ms)", "Intel NxTF tutorial notebook outputs"),
)

CHIP = Chip(
    name="loihi", title="Loihi", compile=compile_snn, limits=chip_limits(), coefficients=SETS,
    options=(Option("vth", int, DEFAULT_VTH, "threshold mantissa: v counts vth x 64 units per threshold (lowered "
                    "per layer where the weights need it)", low=1, high=VTH_MAX),
             Option("reset_threshold", float, 1.0, "spiking thresholds as a fraction of the converted ones where reset "
                    "to zero replaces the SNN's subtraction (compensates the charge it drops; 1: none)",
                    low=0.05, high=1.0)),
    published=PUBLISHED, float_proxy=float_proxy)
