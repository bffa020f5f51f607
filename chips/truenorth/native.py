"""TrueNorth-native networks (ESS15/ESS16): trinary codes, binary spikes, one tick per layer, on emulated cores.

A network is a stack of grouped conv layers (a dense layer is a conv whose kernel covers its input). Neuron
j of a layer fires iff s_j = sum_i c_ji x_i >= theta_j, with codes c in {-1, 0, +1}, x the binary spikes of
the layer below (of the input bits for the first layer) and theta an integer threshold. The last layer's
spikes vote: output channel c counts for class ``classes[c]``, a class's score is its number of spikes.

On the chip (docs/references.md section 1, MER14 / CAS13 equations as in ``chips.truenorth``):

* an input used by a core gets a +/- axon pair there: axon type 0 (weight +1) carries the crossbar bits
  of the +1 codes, type 1 (weight -1) those of the -1 codes; a pair member no neuron of the core uses
  is left out. Hence at most 128 distinct inputs per core (256 axons, MER14);
* a neuron's parameters: leak lambda = 1 - theta, alpha = 1, reset to R = 0 (mode 0), beta = 0,
  kappa = 0. Per tick V = s + lambda (V starts at 0), it spikes iff s >= theta and is reset to 0; without
  a spike V <= 0 and the negative threshold (V < -0) resets it to -R = 0. V is 0 after every tick: the
  neuron is memoryless. lambda must lie in the leak range [-256, 255], so theta in [-254, 257];
* a neuron targets one axon (MER14): a neuron feeding k axons is k identical neurons (same crossbar
  column, same parameters) in its own core, the ESS16 way; no splitter layer, so one tick per layer;
* delay 1 between layers: image k enters at tick k (inputs reach the first layer's axons with delay 0),
  layer l fires at tick k + l - 1, the class of image k is read at tick k + L - 1 (L layers, the depth).

Cores are filled greedily per layer (from the last, which fixes each neuron's copy count): neurons of a
group in Morton order of their output positions, a neuron joining the current core while the core's
axons stay <= 256 and its neurons (copies included) <= 256. Ensemble members sit on separate cores, fed
the same inputs; their class scores add.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chips.truenorth.core import AXON_TYPES, CORE_AXONS, CORE_NEURONS, LEAK_MAX, LEAK_MIN, CoreConfig, mesh_hops
from chips.truenorth.chip import Chip, placement, run_chip
from neuro.errors import NeuroError

INPUT_LEVELS = (0.25, 0.75)          # thermometer code of a pixel in [0, 1]: one input bit per level (our choice)
# per dataset, the thermometer levels of each pixel (of each colour channel); CIFAR-10: 4 levels per colour (our
# choice: ESS16's encoding of colour images is not in our sources), 12 channels, a 3 x 3 kernel reads 108 inputs
DATASET_LEVELS = {"mnist": INPUT_LEVELS, "cifar10": (0.2, 0.4, 0.6, 0.8)}
MAX_FAN_IN = CORE_AXONS // 2         # a +/- axon pair per input (docs/references.md: 256 axons per core)
THETA_MIN, THETA_MAX = 1 - LEAK_MAX, 1 - LEAK_MIN   # theta = 1 - lambda with lambda in the leak range
DELAY = 1                            # ticks between layers (route delay 1..15, MER14)


@dataclass
class Layer:
    """A grouped conv: ``codes`` (out, in / groups, k, k) in {-1, 0, 1}, ``theta`` (out,) integer thresholds."""

    codes: np.ndarray
    theta: np.ndarray
    stride: int
    pad: int
    groups: int


@dataclass
class Member:
    """One network: its layers and the class each output channel votes for."""

    layers: list
    classes: np.ndarray


def encode(images, levels=INPUT_LEVELS) -> np.ndarray:
    """Thermometer bits (N, len(levels) C, H, W) uint8 of images (N, C, H, W) in [0, 1]: channel l C + c is
    colour c > levels[l]."""
    x = np.asarray(images, np.float32)
    return np.concatenate([x > level for level in levels], axis=1).astype(np.uint8)


def check_member(member: Member, in_shape: tuple, name: str = "network") -> list:
    """The (C, H, W) shape after each layer; a one-line NeuroError for a layer the chip cannot hold."""
    shape, shapes = tuple(in_shape), []
    for i, layer in enumerate(member.layers):
        where = f"{name} layer {i}"
        codes, theta = np.asarray(layer.codes), np.asarray(layer.theta)
        if codes.ndim != 4 or codes.shape[2] != codes.shape[3]:
            raise NeuroError(f"{where}: codes have shape {codes.shape}: give (out, in / groups, k, k)")
        out, cin_g, k = codes.shape[0], codes.shape[1], codes.shape[2]
        if layer.groups < 1 or out % layer.groups or cin_g * layer.groups != shape[0]:
            raise NeuroError(f"{where}: {layer.groups} groups of {cin_g} input channels do not match {shape[0]} "
                             f"input channels and {out} outputs: fix the codes' shape or the groups")
        if cin_g * k * k > MAX_FAN_IN:
            raise NeuroError(f"{where}: fan-in {cin_g} x {k} x {k} = {cin_g * k * k} exceeds {MAX_FAN_IN} inputs "
                             f"(a +/- axon pair each in a 256-axon core): use more groups or a smaller kernel")
        if not np.isin(codes, (-1, 0, 1)).all():
            raise NeuroError(f"{where}: codes must be -1, 0 or +1 (trinary): quantise the weights first")
        if theta.shape != (out,) or theta.dtype.kind not in "iu":
            raise NeuroError(f"{where}: theta has shape {theta.shape} and dtype {theta.dtype}: give ({out},) integers")
        if theta.size and (theta.min() < THETA_MIN or theta.max() > THETA_MAX):
            bad = int(theta[(theta < THETA_MIN) | (theta > THETA_MAX)][0])
            raise NeuroError(f"{where}: threshold {bad} is outside "
                             f"[{THETA_MIN}, {THETA_MAX}] (leak 1 - theta in [{LEAK_MIN}, {LEAK_MAX}]): clip it to "
                             f"[-fan_in, fan_in + 1], which keeps every decision")
        h, w = ((n + 2 * layer.pad - k) // layer.stride + 1 for n in shape[1:])
        if h < 1 or w < 1:
            raise NeuroError(f"{where}: kernel {k} with stride {layer.stride}, pad {layer.pad} does not fit a "
                             f"{shape[1]} x {shape[2]} input: fix the geometry")
        shape = (out, h, w)
        shapes.append(shape)
    if len(member.classes) != shape[0]:
        raise NeuroError(f"{name}: {len(member.classes)} class labels for {shape[0]} output channels: "
                         f"give one per channel")
    return shapes


def _patches(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """(N, C, H, W) -> (N, Ho, Wo, C, k, k) windows of the zero-padded input."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 2, 3, 1, 4, 5)


def layer_sums(layer: Layer, x: np.ndarray) -> np.ndarray:
    """s = sum_i c_i x_i per neuron: (N, out, Ho, Wo) int32 (float32 products, exact below 2^24)."""
    codes = np.asarray(layer.codes)
    out, cin_g, k = codes.shape[:3]
    g = layer.groups
    p = _patches(x.astype(np.float32), k, layer.stride, layer.pad)          # (N, Ho, Wo, C, k, k)
    n, ho, wo = p.shape[:3]
    p = p.reshape(n * ho * wo, g, cin_g * k * k).transpose(1, 0, 2)         # (g, N Ho Wo, in)
    w = codes.reshape(g, out // g, cin_g * k * k).transpose(0, 2, 1).astype(np.float32)
    s = np.matmul(p, w)                                                      # (g, N Ho Wo, out / g)
    return s.transpose(1, 0, 2).reshape(n, ho, wo, out).transpose(0, 3, 1, 2).astype(np.int32)


def forward(member: Member, bits, chunk: int = 1000) -> tuple[list, np.ndarray]:
    """Integer forward (numpy only): (spikes per layer, each (N, C, H, W) uint8; class scores (N, classes) int)."""
    bits = np.asarray(bits, np.uint8)
    check_member(member, bits.shape[1:])
    n_classes = int(np.max(member.classes)) + 1
    vote = np.eye(n_classes, dtype=np.int64)[member.classes]                # (out channels, classes)
    spikes = [[] for _ in member.layers]
    for start in range(0, len(bits), chunk):
        x = bits[start:start + chunk]
        for i, layer in enumerate(member.layers):
            x = (layer_sums(layer, x) >= np.asarray(layer.theta)[None, :, None, None]).astype(np.uint8)
            spikes[i].append(x)
    spikes = [np.concatenate(s) for s in spikes]
    return spikes, spikes[-1].sum((2, 3), dtype=np.int64) @ vote


# --- files -------------------------------------------------------------------------------------------------

def save_members(path, members: list) -> None:
    """Write the members' integer arrays and geometry to one compressed npz."""
    arrays = {"members": np.array(len(members))}
    for m, member in enumerate(members):
        arrays[f"m{m}_classes"] = np.asarray(member.classes, np.int32)
        arrays[f"m{m}_layers"] = np.array(len(member.layers))
        for i, layer in enumerate(member.layers):
            arrays[f"m{m}_l{i}_codes"] = np.asarray(layer.codes, np.int8)
            arrays[f"m{m}_l{i}_theta"] = np.asarray(layer.theta, np.int32)
            arrays[f"m{m}_l{i}_geometry"] = np.array([layer.stride, layer.pad, layer.groups])
    np.savez_compressed(path, **arrays)


def load_members(path) -> list:
    """The members saved by ``save_members``."""
    try:
        f = np.load(path)
    except OSError as e:
        raise NeuroError(f"cannot read TrueNorth-native model {path}: {e}: train it with "
                         f"experiments/train_truenorth_native.py") from None
    with f:
        members = []
        for m in range(int(f["members"])):
            layers = []
            for i in range(int(f[f"m{m}_layers"])):
                stride, pad, groups = (int(v) for v in f[f"m{m}_l{i}_geometry"])
                layers.append(Layer(f[f"m{m}_l{i}_codes"], f[f"m{m}_l{i}_theta"], stride, pad, groups))
            members.append(Member(layers, f[f"m{m}_classes"]))
    return members


# --- mapping onto cores ------------------------------------------------------------------------------------

def _morton(h: int, w: int) -> np.ndarray:
    """Flat indices y w + x of an h x w grid in Morton (Z) order."""
    y, x = np.divmod(np.arange(h * w), w)
    key = np.zeros(h * w, np.int64)
    for bit in range(16):
        key |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return np.argsort(key, kind="stable")


def _axon_keys(layer: Layer, in_shape: tuple, out_shape: tuple) -> np.ndarray:
    """Per neuron (out channel, y, x flattened) its axons as keys 2 input + (0 for code +1, 1 for -1), -1 unused."""
    codes = np.asarray(layer.codes)
    out, cin_g, k = codes.shape[:3]
    c_in, h, w = in_shape
    _, ho, wo = out_shape
    o, y, x = np.meshgrid(np.arange(out), np.arange(ho), np.arange(wo), indexing="ij")
    ci, dy, dx = np.meshgrid(np.arange(cin_g), np.arange(k), np.arange(k), indexing="ij")
    chan = (o // (out // layer.groups) * cin_g)[..., None] + ci.reshape(-1)          # (out, ho, wo, fan)
    iy = (y * layer.stride - layer.pad)[..., None] + dy.reshape(-1)
    ix = (x * layer.stride - layer.pad)[..., None] + dx.reshape(-1)
    c = np.broadcast_to(codes.reshape(out, 1, 1, -1), chan.shape)
    used = (c != 0) & (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    keys = np.where(used, 2 * ((chan * h + iy) * w + ix) + (c < 0), -1)
    return keys.reshape(out * ho * wo, -1)


def _pack(keys: np.ndarray, copies: np.ndarray, order: np.ndarray) -> list:
    """Greedy cores over neurons in ``order``: lists of neurons whose axon keys fit 256 axons and whose
    copies fit 256 neurons."""
    cores, current, axons, slots = [], [], set(), 0
    for n in order:
        new = axons.union(keys[n][keys[n] >= 0].tolist())
        if current and (len(new) > CORE_AXONS or slots + copies[n] > CORE_NEURONS):
            cores.append(current)
            current, new, slots = [], set(keys[n][keys[n] >= 0].tolist()), 0
        current.append(n)
        axons, slots = new, slots + copies[n]
    cores.append(current)
    return cores


@dataclass
class LayerMap:
    """Where a layer's neurons sit: ``core`` and first ``slot`` per neuron (flat out channel, y, x), ``copies``
    each, and per core its axon keys (2 input + sign) in axon order."""

    shape: tuple
    cores: list          # global core indices
    core: np.ndarray
    slot: np.ndarray
    copies: np.ndarray
    axon_keys: list


@dataclass
class ChipLayout:
    """The built chip's map: per member its LayerMaps and the output channel of each last-layer neuron."""

    members: list        # list[list[LayerMap]]
    out_offset: list     # first output channel of each member's last layer
    probe_offset: list   # per member, per layer: first output channel of its probe (empty without probes)
    n_cores: int
    depth: int


def build_chip(members: list, in_shape: tuple, probe: bool = False):
    """(chips.truenorth.chip.Chip, ChipLayout) of the members side by side, fed the same inputs.

    Input i is bit i of the flattened (C, H, W) input; member m's last-layer neuron n (flat out channel, y,
    x) is output channel ``out_offset[m] + n``. ``probe``: every neuron's first copy is also an output
    (channels ``probe_offset[m][l] + n``), to compare each layer's spikes with ``forward``.
    """
    plans = []
    for m, member in enumerate(members):
        shapes = check_member(member, in_shape, name=f"member {m}")
        ins = [tuple(in_shape)] + shapes[:-1]
        keys = [_axon_keys(layer, i, o) for layer, i, o in zip(member.layers, ins, shapes)]
        cores, copies = [None] * len(shapes), [None] * len(shapes)
        copies[-1] = np.ones(int(np.prod(shapes[-1])), np.int64)
        for l in range(len(shapes) - 1, -1, -1):
            out, ho, wo = shapes[l]
            per_group = out // member.layers[l].groups
            pos = _morton(ho, wo)
            order = np.concatenate([(g * per_group + np.arange(per_group))[None, :] * (ho * wo) + pos[:, None]
                                    for g in range(member.layers[l].groups)], axis=None)
            cores[l] = _pack(keys[l], copies[l], order)
            if l:
                n_below = int(np.prod(shapes[l - 1]))
                used = [np.unique(keys[l][c][keys[l][c] >= 0]) for c in cores[l]]
                copies[l - 1] = np.maximum(1, np.bincount(np.concatenate(used) // 2, minlength=n_below))
                if copies[l - 1].max() > CORE_NEURONS:
                    raise NeuroError(f"member {m} layer {l - 1}: a neuron feeds {copies[l - 1].max()} axons, so "
                                     f"needs as many copies, more than a core's {CORE_NEURONS} neurons: give "
                                     f"layer {l} fewer cores reading each input (larger groups or tiles)")
        plans.append((shapes, keys, cores, copies))
    if len({len(p[0]) for p in plans}) > 1:
        raise NeuroError("ensemble members have different depths: give members with the same number of layers")

    configs, routes, inputs, outputs = [], [], [], []
    layout, next_core, n_out = ChipLayout([], [], [], 0, len(plans[0][0])), 0, 0
    for shapes, keys, cores, copies in plans:
        maps = []
        for l, shape in enumerate(shapes):
            n = int(np.prod(shape))
            lm = LayerMap(shape, list(range(next_core, next_core + len(cores[l]))), np.zeros(n, np.int64),
                          np.zeros(n, np.int64), copies[l], [])
            for c, neurons in enumerate(cores[l]):
                neurons = np.asarray(neurons)
                lm.core[neurons] = next_core + c
                lm.slot[neurons] = np.concatenate([[0], np.cumsum(copies[l][neurons])[:-1]])
                lm.axon_keys.append(np.unique(keys[l][neurons][keys[l][neurons] >= 0]))
            next_core += len(cores[l])
            maps.append(lm)
        layout.members.append(maps)
    layout.n_cores = next_core

    routes = np.zeros((next_core, CORE_NEURONS, 3), np.int64)
    routes[..., 0], routes[..., 2] = -1, DELAY
    for member, maps, (_, keys, _, _) in zip(members, layout.members, plans):
        for l, (layer, lm) in enumerate(zip(member.layers, maps)):
            theta = np.asarray(layer.theta)[np.arange(len(lm.core)) // int(np.prod(lm.shape[1:]))]
            targets = []                                            # (source neuron below, core, axon)
            for c, axon_keys in zip(lm.cores, lm.axon_keys):
                neurons = np.flatnonzero(lm.core == c)
                configs.append(_core_config(keys[l], lm, neurons, axon_keys, theta))
                axons = np.arange(len(axon_keys))
                targets.append(np.stack([axon_keys // 2, np.full_like(axons, c), axons], -1))
            targets = np.concatenate(targets)
            if l == 0:
                inputs.append(targets)
                continue
            below = maps[l - 1]                                     # copy r of a source goes to its r-th target
            targets = targets[np.argsort(targets[:, 0], kind="stable")]
            src = targets[:, 0]
            first = np.searchsorted(src, src)
            copy = below.slot[src] + np.arange(len(src)) - first
            routes[below.core[src], copy, 0] = targets[:, 1]
            routes[below.core[src], copy, 1] = targets[:, 2]
        last = maps[-1]
        n = len(last.core)
        layout.out_offset.append(n_out)
        outputs.append(np.stack([last.core, last.slot, n_out + np.arange(n)], -1))
        n_out += n
    if probe:
        for maps in layout.members:
            offsets = []
            for lm in maps:
                offsets.append(n_out)
                outputs.append(np.stack([lm.core, lm.slot, n_out + np.arange(len(lm.core))], -1))
                n_out += len(lm.core)
            layout.probe_offset.append(offsets)
    n_inputs = int(np.prod(in_shape))
    chip = Chip(cores=configs, routes=routes, inputs=np.concatenate(inputs), outputs=np.concatenate(outputs),
                n_inputs=n_inputs, n_outputs=n_out)
    return chip, layout


def _core_config(keys: np.ndarray, lm: LayerMap, neurons: np.ndarray, axon_keys: np.ndarray,
                 theta: np.ndarray) -> CoreConfig:
    """The core holding ``neurons`` (each ``lm.copies`` times from ``lm.slot``) on axons ``axon_keys``:
    type 0 weight +1, type 1 weight -1; leak 1 - theta, alpha 1, reset to 0, beta 0, kappa 0 (memoryless)."""
    crossbar = np.zeros((CORE_AXONS, CORE_NEURONS), bool)
    leak = np.zeros(CORE_NEURONS, np.int64)
    for n in neurons:
        slots = lm.slot[n] + np.arange(lm.copies[n])
        k = keys[n][keys[n] >= 0]
        crossbar[np.searchsorted(axon_keys, k)[:, None], slots[None, :]] = True
        leak[slots] = 1 - theta[n]
    types = np.zeros(CORE_AXONS, np.int64)
    types[:len(axon_keys)] = axon_keys % 2
    weights = np.zeros((CORE_NEURONS, AXON_TYPES), np.int64)
    weights[:, 0], weights[:, 1] = 1, -1                    # type 0: +1 codes, type 1: -1 codes
    return CoreConfig(crossbar=crossbar, axon_types=types, weights=weights,
                      stochastic_synapse=np.zeros((CORE_NEURONS, AXON_TYPES), bool), leak=leak, leak_reversal=0,
                      stochastic_leak=0, alpha=1, beta=0, threshold_mask_bits=0, reset_value=0, reset_mode=0,
                      kappa=0, v0=0)


# --- running on the chip -----------------------------------------------------------------------------------

@dataclass
class NativeRun:
    """Images streamed through the chip, one per tick: class scores per member (n_members, N, classes), the
    chip's totals over all ticks (fill and drain included) and, with probes, each layer's spikes per image."""

    scores: np.ndarray
    sops: int
    neuron_spikes: int
    hops: int
    chip_crossings: int
    ticks: int
    layer_spikes: list | None

    @property
    def predictions(self) -> np.ndarray:
        """The ensemble's class per image: the most spikes summed over members, ties to the lowest class."""
        return self.scores.sum(0).argmax(1)


def classify(members: list, bits, chunk: int = 2000, seed: int = 0, probe: bool = False, progress: bool = False,
             built=None) -> NativeRun:
    """Stream ``bits`` (N, C, H, W) through the chip built from ``members`` (or ``built`` = build_chip's pair):
    image k enters at tick k of its chunk, its class is read at tick k + depth - 1. Chunks are independent
    runs (the neurons are memoryless), each ``len(chunk) + depth - 1`` ticks."""
    bits = np.asarray(bits, np.uint8)
    chip, layout = built if built is not None else build_chip(members, bits.shape[1:], probe=probe)
    if probe and not layout.probe_offset:
        raise NeuroError("classify(probe=True) needs a chip built with build_chip(..., probe=True)")
    d = layout.depth
    n_classes = int(max(np.max(m.classes) for m in members)) + 1
    votes = [np.eye(n_classes, dtype=np.int64)[np.repeat(m.classes, int(np.prod(lm[-1].shape[1:])))]
             for m, lm in zip(members, layout.members)]
    scores = np.zeros((len(members), len(bits), n_classes), np.int64)
    totals = np.zeros(5, np.int64)
    probes = [[[] for _ in maps] for maps in layout.members] if probe else None
    for start in range(0, len(bits), chunk):
        x = bits[start:start + chunk].reshape(-1, chip.n_inputs)
        n = len(x)
        run = run_chip(chip, np.concatenate([x, np.zeros((d - 1, chip.n_inputs), np.uint8)]).astype(bool), seed=seed,
                       progress=progress)
        totals += (run.sops, run.neuron_spikes, run.hops, run.chip_crossings, run.ticks)
        for m, (off, maps) in enumerate(zip(layout.out_offset, layout.members)):
            out = run.spikes[d - 1:d - 1 + n, off:off + len(maps[-1].core)]
            scores[m, start:start + n] = out.astype(np.int64) @ votes[m]
            if probe:
                for l, (poff, lm) in enumerate(zip(layout.probe_offset[m], maps)):
                    probes[m][l].append(run.spikes[l:l + n, poff:poff + len(lm.core)].reshape(n, *lm.shape))
    if probe:
        probes = [[np.concatenate(p).astype(np.uint8) for p in layers] for layers in probes]
    return NativeRun(scores, *(int(t) for t in totals), probes)


def activity(chip, layout: ChipLayout, m: int, bits, layer_spikes: list) -> dict:
    """Member ``m``'s SOPs, neuron spikes, mesh hops and input packets (from off chip, one per target axon) for
    each row of ``bits`` (rows, inputs) and its layers' spikes (rows, neurons of layer l): every copy of a
    spiking neuron spikes; a spike (or an input) reaching an axon costs that axon's set crossbar bits (MER14's
    SOPs) and its route's mesh hops."""
    row_bits = np.stack([c.crossbar.sum(1) for c in chip.cores])                     # (cores, axons)
    maps = layout.members[m]
    own = np.isin(chip.inputs[:, 1], maps[0].cores)
    per_input = np.bincount(chip.inputs[own, 0], row_bits[chip.inputs[own, 1], chip.inputs[own, 2]],
                            minlength=chip.n_inputs)
    sops = np.asarray(bits, np.float64).reshape(len(bits), -1) @ per_input
    inputs = np.asarray(bits, np.float64).reshape(len(bits), -1) @ np.bincount(chip.inputs[own, 0],
                                                                               minlength=chip.n_inputs)
    spikes, hops = np.zeros(len(bits)), np.zeros(len(bits))
    for lm, s in zip(maps, layer_spikes):
        s = np.asarray(s, np.float64).reshape(len(bits), -1)
        core = np.repeat(lm.core, lm.copies)
        slot = np.repeat(lm.slot, lm.copies) + np.arange(lm.copies.sum()) - np.repeat(
            np.cumsum(lm.copies) - lm.copies, lm.copies)
        target, axon = chip.routes[core, slot, 0], chip.routes[core, slot, 1]
        (src_chip, sx, sy), (dst_chip, dx, dy) = placement(core), placement(np.maximum(target, 0))
        routed = target >= 0
        same = routed & (src_chip == dst_chip)
        owner = np.repeat(np.arange(len(lm.core)), lm.copies)
        per_sop = np.bincount(owner, np.where(routed, row_bits[np.maximum(target, 0), axon], 0), len(lm.core))
        hop = np.where(same, mesh_hops(np.stack([sx, sy], -1), np.stack([dx, dy], -1)), 0)
        per_hop = np.bincount(owner, hop, len(lm.core))
        sops += s @ per_sop
        spikes += s @ lm.copies
        hops += s @ per_hop
    return {"sops": sops, "spikes": spikes, "hops": hops, "inputs": inputs}
