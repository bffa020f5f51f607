"""Loihi 1 mapping: compiled layers cut into per-core slices under the core limits, placed on tiles and chips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chips.compiling import connections
from chips.loihi.neuron import LoihiLayer, with_weights
from neuro import graph
from neuro.errors import NeuroError

if TYPE_CHECKING:
    from chips.loihi.compile import LoihiProgram

# --- mapping onto cores and chips (issue 3 item 5; docs/chips/loihi.md "Mapping") ---------------------------------
# =================================================================================================================
#
# Each layer's neurons, in the engine's flat order (channel-last (y, x, c) for a conv), are cut into k contiguous,
# near-equal slices, one per core, with k the smallest count under which every slice meets all four per-core
# limits. Layers are cut last to first, because a neuron's output axons are the cores of the next layer it
# reaches. Cores are numbered in layer order and placed in that order: 4 per tile, tiles row by row on each
# chip's mesh, chips side by side. The input is injected into the first layer's axons and takes no core.
#
# Synapse memory follows nengo-loihi's encoding (SynapseFmt.bits_per_axon): an input axon's synapses on a core
# are stored in groups of up to 64, each group n x bits + a 10-bit header, rounded up to 64-bit words. Dense
# layers use the dense format (compression 3): an axon stores a weight for every compartment of the slice, no
# index. Conv layers are stored as their unrolled matrix in the sparse format (compression 0): one entry per
# non-zero weight, weight bits + index bits. Weight sharing (NxTF's conv compression) is not modelled, so conv
# memory is an upper bound.

CHIP_CORES = 128                       # neuromorphic cores per Loihi 1 chip (DAV18 [sec])
CORE_COMPARTMENTS = 1024               # compartments per core (DAV18 [sec]; nengo-loihi MAX_COMPARTMENTS)
CORE_INPUT_AXONS = 4096                # input axons per core (DAV18 [sec]; nengo-loihi MAX_IN_AXONS)
CORE_OUTPUT_AXONS = 4096               # output axons per core (DAV18 [sec]; nengo-loihi MAX_OUT_AXONS)
WORD_BITS = 64                         # synapse memory word (docs/references.md: 128 KB = 16,384 x 64-bit words)
CORE_SYNAPSE_WORDS = 16384             # 128 KB per core (DAV18 [sec]; nengo-loihi MAX_SYNAPSE_BITS = 2^20)
SYNAPSE_GROUP = 64                     # synapses per group: numSynapses + 1 with the 6-bit count field
#                                        (nengo-loihi SynapseFmt, N_SYNAPSES_BITS = 6) [unsure: nengo-loihi sets 63]
GROUP_HEADER_BITS = 4 + 6              # SYNAPSE_FMT_IDX_BITS + N_SYNAPSES_BITS per group (nengo-loihi bits_per_axon)
STORED_WEIGHT_BITS = (0, 1, 2, 3, 4, 5, 6, 8, 8)   # bits stored for num_weight_bits 0..8: 7 is stored as 8
#                                                    (nengo-loihi SynapseFmt.WEIGHT_BITS_MAP)
INDEX_BITS = (6, 7, 8, 9, 10, 11, 12)  # compartment index widths of the sparse format (nengo-loihi INDEX_BITS_MAP)
CORES_PER_TILE = 4                     # 4 cores per tile, 32 tiles per chip (DAV18 [sec]; Table 2's "1-32 tiles")
MESH_TILES_X, MESH_TILES_Y = 8, 4      # one chip's tiles as an 8 x 4 mesh [unsure: the aspect is our reading]


@dataclass
class LayerMap:
    """One layer on its cores: per-core usage (arrays over the layer's cores) and its spike traffic."""

    name: str
    kind: str                          # "dense" or "conv" (synapse format and, for SANA-FE, synapse energy)
    neurons: int
    biased: bool                       # a non-zero bias changes v every step: all neurons update every step
    first_core: int
    compartments: np.ndarray
    input_axons: np.ndarray
    output_axons: np.ndarray
    synapse_words: np.ndarray
    packets_per_spike: float = 0.0     # destination cores per spike, mean over the layer's neurons
    hops_x: float = 0.0                # mean east-west tile hops per packet
    hops_y: float = 0.0                # mean north-south tile hops per packet
    inputs: int = 0                    # source neurons (or input values) feeding the layer
    synapses: int = 0                  # non-zero weights into the layer (inputs x mean fan-out)

    @property
    def cores(self) -> int:
        return len(self.compartments)


@dataclass
class LoihiMapping:
    """Every layer on its cores; ``cores`` and ``chips`` in all, and the utilisation of what they hold."""

    layers: list[LayerMap]

    @property
    def cores(self) -> int:
        return sum(m.cores for m in self.layers)

    @property
    def chips(self) -> int:
        return -(-self.cores // CHIP_CORES)

    def utilisation(self) -> dict:
        """Fractions of the used cores' compartments and synapse memory, and of the chips' cores, in use."""
        used = {k: float(sum(getattr(m, k).sum() for m in self.layers)) for k in ("compartments", "synapse_words")}
        return dict(compartments=used["compartments"] / (self.cores * CORE_COMPARTMENTS),
                    synapse_memory=used["synapse_words"] / (self.cores * CORE_SYNAPSE_WORDS),
                    cores=self.cores / (self.chips * CHIP_CORES))


def _connections(layer: LoihiLayer, in_shape) -> tuple[np.ndarray, np.ndarray]:
    """(target, source) of every non-zero weight the chip holds (after Lava's truncation), sorted by target."""
    return connections(with_weights(layer.synapse, layer.weights), in_shape)


def _group_words(n, bits: int):
    """64-bit words of one group of n synapses: n x bits + the header, rounded up."""
    return -(-(n * bits + GROUP_HEADER_BITS) // WORD_BITS)


def _words(synapses: np.ndarray, bits: int) -> np.ndarray:
    """64-bit words for axons with ``synapses`` synapses each, in groups of up to 64."""
    full, rest = np.divmod(synapses, SYNAPSE_GROUP)
    return full * _group_words(SYNAPSE_GROUP, bits) + np.where(rest > 0, _group_words(rest, bits), 0)


def _index_bits(compartments: int) -> int:
    """The narrowest index of the sparse format that addresses ``compartments`` compartments."""
    need = max(int(compartments) - 1, 1).bit_length()
    return next(b for b in INDEX_BITS if b >= need)


def _slices(n: int, k: int) -> np.ndarray:
    """Bounds of k contiguous, near-equal slices of n neurons."""
    return np.arange(k + 1) * n // k


def _usage(kind, bits, target, source, bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice: compartments, input axons, synapse words."""
    cuts = np.searchsorted(target, bounds)
    comps, axons, words = np.diff(bounds), [], []
    for (a, b), size in zip(zip(cuts[:-1], cuts[1:]), comps):
        _, per_axon = np.unique(source[a:b], return_counts=True)
        axons.append(len(per_axon))
        if kind == "dense":   # dense format: every axon stores all of the slice's compartments
            words.append(len(per_axon) * int(_words(np.array(size), bits)))
        else:                 # sparse format: one entry per non-zero weight, with its compartment index
            words.append(int(_words(per_axon, bits + _index_bits(size)).sum()))
    return comps, np.array(axons), np.array(words)


def _fanout_cores(source, target, next_bounds) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (neuron, next-layer core) pairs, sorted by neuron: neuron and core (within the next layer)."""
    core = np.searchsorted(next_bounds, target, side="right") - 1
    pairs = np.unique(source.astype(np.int64) * (len(next_bounds) - 1) + core)
    return np.divmod(pairs, len(next_bounds) - 1)


def _binding(comps, axons, words, out_axons) -> str | None:
    """The first per-core limit a slice breaks, or None."""
    for used, limit, what in ((comps, CORE_COMPARTMENTS, "compartments"), (axons, CORE_INPUT_AXONS, "input axons"),
                              (words, CORE_SYNAPSE_WORDS, "synapse memory words"),
                              (out_axons, CORE_OUTPUT_AXONS, "output axons")):
        if used.max(initial=0) > limit:
            return f"{what} ({int(used.max())} > {limit})"
    return None


def _partition(layer, target, source, n, out_axons) -> tuple[np.ndarray, tuple]:
    """The fewest near-equal slices that meet every per-core limit; a NeuroError naming the limit if none do.

    ``out_axons(bounds)`` gives each slice's output axons for given slice bounds.
    """
    bits = STORED_WEIGHT_BITS[layer.num_weight_bits]
    fan_in = int(np.bincount(target, minlength=n).max(initial=0))
    if fan_in > CORE_INPUT_AXONS:   # one neuron per core breaks it too: say so now, not after trying every k
        raise NeuroError(f"{layer.name}: does not fit a Loihi core even with one neuron per core: input axons "
                         f"({fan_in} > {CORE_INPUT_AXONS}): give its neurons fewer inputs")
    k = _least_slices(_kind(layer), bits, source, n)
    while True:
        bounds = _slices(n, k)
        usage = _usage(_kind(layer), bits, target, source, bounds)
        broken = _binding(*usage, out_axons(bounds))
        if broken is None:
            return bounds, usage
        if k == n:
            raise NeuroError(f"{layer.name}: does not fit a Loihi core even with one neuron per core: "
                             f"{broken}: give its neurons fewer inputs")
        k += 1


def _least_slices(kind, bits, source, n) -> int:
    """A lower bound on the slices ``_partition`` needs, so that its search does not start far below the answer
    (a large conv layer needs hundreds of cores, and every try counts all its synapses): the compartments,
    and for the sparse format the synapse memory. Every slice count below it breaks a limit: splitting a layer
    over cores adds group headers and never removes synapses, and no index is narrower than INDEX_BITS[0], so
    the slices' words total at least ``least`` and the fullest slice holds at least least / k."""
    k = -(-n // CORE_COMPARTMENTS)
    if kind == "dense" or len(source) == 0:
        return k
    per_axon = np.bincount(source)
    per_axon = per_axon[per_axon > 0]
    least = (per_axon * (bits + INDEX_BITS[0]) + -(-per_axon // SYNAPSE_GROUP) * GROUP_HEADER_BITS).sum() / WORD_BITS
    return max(k, min(int(least // CORE_SYNAPSE_WORDS), n))


def _layer_shapes(layers: list[LoihiLayer], input_shape) -> list[tuple]:
    """Each layer's input shape (flattened before a dense layer, as ``program_snn`` does)."""
    shapes, shape = [], tuple(input_shape)
    for layer in layers:
        if isinstance(layer.synapse, graph.Dense) and len(shape) > 1:
            shape = (int(np.prod(shape)),)
        shapes.append(shape)
        shape = layer.synapse.output_shape(shape)
    return shapes + [shape]


def core_position(core: int) -> tuple[int, int]:
    """(x, y) tile of a core numbered in placement order: 4 per tile, tiles row by row, chips side by side."""
    chip, local = divmod(int(core), CHIP_CORES)
    y, x = divmod(local // CORES_PER_TILE, MESH_TILES_X)
    return chip * MESH_TILES_X + x, y


def _positions(first: int, count: int) -> np.ndarray:
    """(count, 2) tiles of the cores first .. first + count - 1."""
    return np.array([core_position(first + i) for i in range(count)]).reshape(count, 2)


def _kind(layer: LoihiLayer) -> str:
    """The synapse format (and SANA-FE synapse class) of a layer: "dense" or "conv"."""
    return "dense" if isinstance(layer.synapse, graph.Dense) else "conv"


def _per_slice(sorted_ids: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_ids`` fall into each slice."""
    return np.diff(np.searchsorted(sorted_ids, bounds))


def map_layers(layers: list[LoihiLayer], input_shape) -> LoihiMapping:
    """Partition every layer onto cores under the per-core limits and place the cores in order on the mesh."""
    shapes = _layer_shapes(layers, input_shape)
    conns = [_connections(layer, shape) for layer, shape in zip(layers, shapes)]
    sizes = [int(np.prod(s)) for s in shapes[1:]]
    n = len(layers)
    bounds, usages = [None] * n, [None] * n
    fanouts = [(np.zeros(0, np.int64),) * 2] * n   # the last layer's spikes go to the host: no output axons
    for i in reversed(range(n)):
        if i + 1 < n:
            fanouts[i] = _fanout_cores(*conns[i + 1][::-1], bounds[i + 1])
        bounds[i], usages[i] = _partition(layers[i], *conns[i], sizes[i],
                                          lambda b, neuron=fanouts[i][0]: _per_slice(neuron, b))
    maps, first = [], 0
    for layer, b, (comps, axons, words), (neuron, _), size, shape, conn in zip(layers, bounds, usages, fanouts,
                                                                               sizes, shapes, conns):
        maps.append(LayerMap(layer.name, _kind(layer), size, bool(np.any(layer.bias_mant)), first, comps, axons,
                             _per_slice(neuron, b), words, inputs=int(np.prod(shape)), synapses=len(conn[0])))
        first += len(comps)
    for i in range(n - 1):
        _traffic(maps[i], maps[i + 1], bounds[i], *fanouts[i])
    return LoihiMapping(maps)


def _traffic(src: LayerMap, dst: LayerMap, bounds, neuron, dst_core) -> None:
    """Packets per spike and mean tile hops per packet from ``src``'s cores to ``dst``'s."""
    src_core = np.searchsorted(bounds, neuron, side="right") - 1
    a, b = _positions(src.first_core, src.cores)[src_core], _positions(dst.first_core, dst.cores)[dst_core]
    src.packets_per_spike = len(neuron) / src.neurons
    hops = np.abs(a - b).reshape(-1, 2)
    src.hops_x, src.hops_y = (float(hops[:, j].mean()) if len(hops) else 0.0 for j in (0, 1))


def map_program(program: LoihiProgram) -> LoihiMapping:
    """``map_layers`` for a compiled program."""
    return map_layers(program.layers, program.snn.input_shape)


# =================================================================================================================
