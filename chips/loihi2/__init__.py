"""Intel Loihi 2 chip model, written against the public chip API only: sigma-delta neurons with graded spikes,
bit-exact to Lava's fixed-point SigmaDelta (``neuron``), the compiler for converted networks and the cost model
(``chip``), the ``loihi2`` entry point (``entry``). docs/chips/loihi2.md."""

from chips.loihi2.neuron import (Loihi2Backend, SigmaDeltaLayer, SigmaDeltaNeurons, program_snn,
                                 quantize_weights, simulate_chain)
