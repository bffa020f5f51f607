"""Loihi 1 compiler: a converted SNN (``neuro.convert``) quantised into Loihi layers (``LoihiProgram``).

8-bit mixed-sign weights with a per-layer exponent, thresholds and biases in Loihi's mantissa/exponent
formats, average pools folded into the next convolution; docs/chips/loihi.md "Compiling" has the details.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from chips.api import CoefficientSet
from chips.compiling import layers, pool_overlaps, start_ahead
from chips.loihi.cost_model import LoihiCost, activity_from_result, cost
from chips.loihi.mapping import CORE_INPUT_AXONS, map_program
from chips.loihi.neuron import (BIAS_EXP_MAX, BIAS_MANT_BITS, DECAY_MAX, DECAY_UNITY, UV_HALF, VTH_SHIFT,
                                WEIGHT_EXP_MAX, VTH_MAX, WEIGHT_EXP_MIN, WEIGHT_MIN, LoihiBackend, LoihiLayer,
                                with_weights, program_snn)
from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, Neurons

# --- compiling a converted SNN (neuro.convert) ---------------------------------------------------------------

DEFAULT_VTH = 1 << 10   # threshold mantissa: v counts 2^16 units per threshold, so u and v hold +-128 thresholds
#                         before wrapping or saturating (24-bit state) while 8-bit weights set the precision
MANTISSA_MAX = 254      # mixed-sign 8-bit weights are even values in [-256, 254] (docs/references.md "weights")
READOUT_VTH = 64        # potential readout: v counts 64 x 64 units per threshold, so v's 24 bits hold +-2048
#                         thresholds (a class whose input averages 16 thresholds a step for 128 steps) before
#                         saturating; the threshold itself is VTH_MAX, above every v short of saturation


@dataclass
class LoihiProgram:
    """A converted SNN compiled for Loihi: its layers, the SNN the engine runs, the per-layer quantisation."""

    layers: list[LoihiLayer]
    snn: SNN
    quantisation: list[dict]
    deviations: list[str] = field(default_factory=list)  # every way the program differs from the converted SNN

    def backend(self) -> LoihiBackend:
        return LoihiBackend(self.layers, self.snn)

    def cost(self, result, steps_per_inference: int, coefficients: CoefficientSet | str | None = None) \
            -> LoihiCost:
        """Energy, latency and frames/s of this program for the activity of an engine run (``SimResult``);
        ``coefficients``: a set (or a shipped set's name); None: dav18."""
        return cost(map_program(self), activity_from_result(self, result), steps_per_inference, coefficients)


def compile_snn(snn: SNN, vth: int = DEFAULT_VTH, reset_threshold: float = 1.0) -> LoihiProgram:
    """Quantise a converted SNN onto Loihi layers: pooling folded into the next synapses (netx and NxTF do
    the same), integrate-and-fire as du = 4095 (the current lasts one step) and dv = leak x 4096, reset to
    zero (the chip's native reset; a subtractive reset is not emulated). Readout as the SNN's: spikes (class =
    most spikes), or potential: the output layer's v read by a voltage probe (Lava's Monitor, NxSDK's probes;
    NxTF reads its output layer the same way), its threshold at VTH_MAX so that it never spikes.
    ``reset_threshold``: the threshold of every spiking layer whose SNN neurons reset by subtraction, as a
    fraction of the converted one: reset to zero drops the charge above the threshold at each spike, the error
    term Rueckauer et al. 2017 derive for it (docs/references.md), which a lower threshold gives back on average
    (1: no compensation; a choice, measured in docs/results.md)."""
    if not 0 < reset_threshold <= 1:
        raise NeuroError(f"reset_threshold is {reset_threshold}: give a fraction of the threshold in (0, 1]")
    found, folded = layers(snn, "Loihi", _fan_in_before_fold)
    compiled, report = [], []
    for k, layer in enumerate(found):
        probed = snn.readout == "potential" and k == len(found) - 1
        quantised, errors = _quantize_layer(layer.synapse, _as_run(layer.neurons, probed, reset_threshold),
                                            READOUT_VTH if probed else vth, layer.name,
                                            VTH_MAX if probed else None, ahead=k + 1)
        errors["reset"] = "zero" if layer.neurons.reset == "zero" else "zero (the SNN asked for subtract)"
        if isinstance(layer.synapse, graph.Dense):
            _check_fan_in(layer.name, int(np.count_nonzero(quantised.weights, axis=1).max(initial=0)))
        compiled.append(quantised)
        report.append(errors)
    return LoihiProgram(compiled, program_snn(compiled, snn.input_shape, snn.readout), report,
                        _deviations(snn, report, folded, reset_threshold))


def float_proxy(snn: SNN, options: Mapping[str, Any]) -> SNN:
    """The float SNN whose neurons run as the compiled program's do (``Chip.float_proxy``), for calibrating the
    biases against Loihi's own dynamics (``neuro.calibrate``): reset to zero, at ``reset_threshold`` of the
    threshold where the SNN resets by subtraction. Left out: the 8-bit weights (a small loss, docs/results.md) and
    the one step of latency per layer (whose bias lead the compiled initial v takes out)."""
    last = max(i for i, op in enumerate(snn.ops) if isinstance(op, Neurons))
    ops = [_as_run(op, snn.readout == "potential" and i == last, options.get("reset_threshold", 1.0))
           if isinstance(op, Neurons) else op for i, op in enumerate(snn.ops)]
    return SNN(snn.input_shape, ops, snn.readout, snn.ann, snn.info)


def _as_run(neurons: Neurons, probed: bool, reset_threshold: float) -> Neurons:
    """A layer's neurons as the program runs them: reset to zero, a spiking layer that resets by subtraction at
    ``reset_threshold`` of its threshold (a probed output layer does not spike)."""
    if neurons.reset == "subtract" and not probed:
        return replace(neurons, reset="zero", threshold=neurons.threshold * reset_threshold)
    return replace(neurons, reset="zero")


def _check_fan_in(name: str, fan_in: int, floor: str = "") -> None:
    """A neuron's non-zero weights each take an input axon of its core: more than a core has never map."""
    if fan_in > CORE_INPUT_AXONS:
        raise NeuroError(f"{name}: a neuron has {floor}{fan_in} non-zero input weights, over the {CORE_INPUT_AXONS} "
                         "input axons of a Loihi core: pool more before the layer or give it fewer inputs")


def _fan_in_before_fold(where: str, first, in_shape, second) -> None:
    """Before an unpadded average pool with disjoint windows is folded into a Dense layer: every weight above
    1/100 of the layer's largest survives the 8-bit quantisation (mantissas of at least 127 at the largest weight,
    a weight survives from 1/127 of it) and spreads over kh x kw inputs, so a neuron with more such weights than a
    core's input axons / (kh kw) never maps: refused before the folded weights are built."""
    if not (isinstance(first, graph.AvgPool2d) and isinstance(second, graph.Dense)) or pool_overlaps(first) \
            or first.padding != (0, 0) or second.weight.size == 0:
        return
    mag = np.abs(second.weight)
    kept = np.count_nonzero(mag > mag.max() / 100, axis=1).max()
    _check_fan_in(where, int(kept) * first.kernel[0] * first.kernel[1], "at least ")


def _deviations(snn: SNN, report: list[dict], folded: list[str], reset_threshold: float) -> list[str]:
    """One line per way the compiled program differs from the converted SNN, for the results and the report."""
    out = list(folded)
    subtract = [q["layer"] for q, n in zip(report, (op for op in snn.ops if isinstance(op, Neurons)))
                if n.reset == "subtract"]
    if subtract:
        out.append(f"reset by subtraction replaced by reset to zero (Loihi's native reset) in {len(subtract)} of "
                   f"{len(report)} layers" + ("" if reset_threshold == 1 else f", their spiking thresholds lowered to "
                   f"{reset_threshold:g} of the converted ones to give back the charge a reset to zero drops"
                   + (" (a probed output layer does not spike)" if snn.readout == "potential" else "")))
    if snn.readout == "potential":
        out.append("potential readout: the output layer's v read by a voltage probe every step (class = largest v); "
                   f"v in units of 1/{READOUT_VTH << VTH_SHIFT} threshold, saturating at +-{(1 << 17) // READOUT_VTH} "
                   "thresholds; the layer's threshold is the 17-bit maximum, so it does not spike")
    capped = sum(q["v_init_capped"] for q in report)
    out.append("one step of synaptic latency per layer: layer k's first input arrives at step k + 1, so its initial "
               "v takes off the k + 1 steps of bias before it" + (f" (capped below the threshold in {capped} "
               "channels with large negative biases)" if capped else ""))
    for q in report:
        out.append(f"{q['layer']}: weights quantised to 8-bit mantissas x 2^{q['weight_exp']} (relative rms error "
                   f"{q['weight_rel_rms']:.2g}, largest {q['weight_max_abs']:.2g} thresholds), biases off by at most "
                   f"{q['bias_max_abs']:.2g} thresholds")
    return out


def _quantize_layer(op, neurons: Neurons, vth: int, name: str, spike_vth: int | None = None, ahead: int = 0) \
        -> tuple[LoihiLayer, dict]:
    """Integer weights, exponent, bias and initial v of one layer, v in units of threshold / (vth << 6);
    ``spike_vth``: the layer's threshold mantissa if not vth (a probed output layer that must not spike);
    ``ahead``: steps the layer's bias integrates before its first input arrives: one step of synaptic latency per
    layer, so layer k's first input comes at step k + 1 while its bias acts from step 0; v at step 0 takes them
    out (``chips.compiling.start_ahead``; a choice, set through Lava LIF's per-neuron ``v``; exact for
    integrate-and-fire, dv = 0; with a leak it undoes the bias without its decay), capped where the first step's
    v would spike (v > vth)."""
    w = op.weight.astype(np.float64) / neurons.threshold
    b = op.bias.astype(np.float64) / neurons.threshold
    wmax = float(np.abs(w).max())
    if wmax == 0:
        raise NeuroError(f"{name}: all weights are zero: nothing to compile")
    weight_exp = int(np.ceil(np.log2(wmax * vth / MANTISSA_MAX)))
    if weight_exp > WEIGHT_EXP_MAX:  # weights too large for this threshold: lower the threshold mantissa
        vth, weight_exp = int(MANTISSA_MAX * 2 ** WEIGHT_EXP_MAX / wmax), WEIGHT_EXP_MAX
    if weight_exp < WEIGHT_EXP_MIN or vth < 1:
        raise NeuroError(f"{name}: weights (max |w| = {wmax:.3g} thresholds) do not fit the Loihi format "
                         f"(8-bit mantissa, exponent in [{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]): rescale the layer")
    scaled = w * vth / 2.0 ** weight_exp   # weight units: 2^(weight_exp + 6) / (vth << 6) thresholds
    mant = np.clip(2 * np.round(scaled / 2), WEIGHT_MIN, MANTISSA_MAX)
    unit = float(vth << VTH_SHIFT)         # v per threshold
    bias_mant, bias_exp = _bias_mant_exp(b * unit, name)
    bias = bias_mant << bias_exp   # exponents are >= 0 here
    v_init, capped = start_ahead(np.full(len(bias), round(neurons.v_init * unit)), bias, ahead,
                                 np.minimum(((spike_vth or vth) << VTH_SHIFT) - bias, UV_HALF - 1), -UV_HALF + 1)
    layer = LoihiLayer(with_weights(op, mant), num_weight_bits=8, weight_exp=weight_exp, du=DECAY_MAX,
                       dv=int(round(neurons.leak * DECAY_UNITY)), vth=spike_vth or vth, bias_mant=bias_mant,
                       bias_exp=bias_exp, v_init=v_init, name=name)
    effective = layer.weights * 2.0 ** weight_exp / vth
    b_eff = layer.bias() / unit
    errors = dict(layer=name, weight_exp=weight_exp, vth=vth,
                  weight_rel_rms=float(np.sqrt(np.mean((effective - w) ** 2) / np.mean(w ** 2))),
                  weight_max_abs=float(np.abs(effective - w).max()),
                  bias_max_abs=float(np.abs(b_eff - b).max(initial=0)), v_init_capped=capped)
    return layer, errors


def _bias_mant_exp(bias_v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron 13-bit mantissa and 0..7 exponent closest to ``bias_v`` (v units per step)."""
    half = 1 << (BIAS_MANT_BITS - 1)
    need = np.ceil(np.log2(np.maximum(np.abs(bias_v), 1) / (half - 1)))
    exp = np.maximum(need, 0).astype(np.int64)
    if exp.max(initial=0) > BIAS_EXP_MAX:
        raise NeuroError(f"{name}: a bias of {np.abs(bias_v).max() / 2 ** BIAS_EXP_MAX:.3g} x 2^7 overflows the "
                         "13-bit mantissa with exponent <= 7: use a smaller threshold mantissa (vth)")
    mant = np.clip(np.round(bias_v / 2.0 ** exp), -half, half - 1).astype(np.int64)
    return mant, exp


# =================================================================================================================
