"""IBM TrueNorth chip model: one core's published neuron equations (``core``), the cost model (``cost_model``),
the multi-core chip with its router (``chip``), converted networks mapped onto cores (``mapping``) and run as an
engine program (``program``), checked against real cores (``cores``), and TrueNorth-native trinary networks
(``native``). The public names of ``core`` and ``cost_model`` and the compiler's entry points are re-exported
here; docs/chips/truenorth.md."""

from chips.truenorth.core import (CORE_AXONS, CORE_NEURONS, AXON_TYPES, WEIGHT_MIN, WEIGHT_MAX, V_BITS, V_MIN, V_MAX,
                                  RHO_BITS, RESET_MODES, LEAK_MIN, LEAK_MAX, THRESHOLD_MAX, RESET_MIN, RESET_MAX,
                                  MASK_BITS_MAX, XORSHIFT_A, XORSHIFT_B, XORSHIFT_C, STATE_MASK, SPLITMIX_GAMMA,
                                  SPLITMIX_M1, SPLITMIX_M2, U64, CoreConfig, CHIP_CORES, MESH_SIDE, CHIP_NEURONS,
                                  mesh_hops, seed_state, core_update, tick, LANES, TrueNorthNeurons, TrueNorthBackend,
                                  core_snn, simulate_core)
from chips.truenorth.cost_model import (TICK_HZ, TICK_HZ_MAX, VOLTAGE_MIN, VOLTAGE_MAX, FIT_VOLTAGE, FIT_SYNAPSES,
                                        FIG17_POINTS, IDLE_VOLTAGE, IDLE_W, MEMORY_READ_W, MER14_VOLTAGE, E_HOP_MER14,
                                        E_CHIP_BIT, PACKET_BITS, E_CHIP, E_SOP_FIT, STATIC_FIT_W, E_TICK_MER14,
                                        LEAK_FIT_W, LEAK_EXPONENT, CALIBRATION_HOPS, MESH_RANDOM_HOPS, Assumptions,
                                        POINT, ASSUMPTIONS, coefficients, leakage_w, tick_energy_j, sop_energy_j,
                                        hop_energy_j, sop_routing_j, fastest_tick_hz, Cost, COEFFICIENTS, cost,
                                        activity_per_tick, Check, benchmark, application, calibration,
                                        calibration_line)
from chips.truenorth.program import TrueNorthProgram, chip_limits, compile_snn
