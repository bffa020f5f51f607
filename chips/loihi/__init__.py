"""Intel Loihi 1 chip model: bit-exact CUBA LIF cores (``neuron``), the compiler for converted networks
(``compile``), the mapping onto cores and chips (``mapping``), the cost model (``cost_model``) and the lava-dl
netx export (``netx``). The public names of the first four are re-exported here; docs/chips/loihi.md."""

from chips.loihi.neuron import (DECAY_SHIFT, DECAY_UNITY, DS_OFFSET, DM_OFFSET, DECAY_MAX, UV_BITS, UV_HALF,
                                ACT_SHIFT, VTH_SHIFT, VTH_MAX, BIAS_MANT_BITS, BIAS_EXP_MAX, BIAS_EXP_MIN,
                                WEIGHT_BITS, WEIGHT_MIN, WEIGHT_MAX, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX,
                                NUM_WEIGHT_BITS_MIN, NUM_WEIGHT_BITS_MAX, FLOAT32_EXACT, sign_mode, quantize_weights,
                                LoihiLayer, with_weights, lif_step, LoihiNeurons, LoihiBackend, program_snn,
                                LAYER_KEYS, chain_layers, simulate_chain)
from chips.loihi.compile import (DEFAULT_VTH, MANTISSA_MAX, LoihiProgram, compile_snn)
from chips.loihi.mapping import (CHIP_CORES, CORE_COMPARTMENTS, CORE_INPUT_AXONS, CORE_OUTPUT_AXONS, WORD_BITS,
                                 CORE_SYNAPSE_WORDS, SYNAPSE_GROUP, GROUP_HEADER_BITS, STORED_WEIGHT_BITS, INDEX_BITS,
                                 CORES_PER_TILE, MESH_TILES_X, MESH_TILES_Y, LayerMap, LoihiMapping, core_position,
                                 map_layers, map_program)
from chips.loihi.cost_model import (BARRIER_1_TILE_S, BARRIER_32_TILES_S, CHIP_STATIC_W, Coefficients, COEFFICIENTS,
                                    chip_limits, coefficients, barrier_s, LayerActivity, activity_from_result,
                                    LoihiCost, cost, Overheads, UNCERTAIN, SPIKING_FACTOR, X86_ACTIVE_W, MANAGEMENT_S,
                                    INJECT_S, BOARD_IDLE_W, evaluate, estimate_cost, injected_spikes)
