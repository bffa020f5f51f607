"""lava-dl netx export of compiled Loihi programs: file round trip here; in the Lava venv (tests marked ``lava``),
Lava processes built from the file give the emulator's output spikes."""

import importlib.util
import json

import h5py
import numpy as np
import pytest

if importlib.util.find_spec("lava") is not None:
    # Lava sets the multiprocessing start method when first imported, which fails once the engine (tqdm's lock) has
    # fixed it: import it at collection, before any test runs (as tests/test_loihi_lava.py does).
    import lava.proc.dense.process  # noqa: F401

from chips.loihi import LoihiLayer, LoihiProgram, compile_snn, program_snn  # noqa: E402
from chips.loihi.netx import netx_gaps, read_netx, write_netx  # noqa: E402
from neuro import graph  # noqa: E402
from neuro.encode import Playback  # noqa: E402
from neuro.errors import NeuroError  # noqa: E402
from neuro.sim import Engine  # noqa: E402
from neuro.snn import Neurons  # noqa: E402
from conftest import small_converted_cnn  # noqa: E402

IN_SHAPE = (1, 10, 10)
NETX_BIAS_EXP = 6   # netx builds every LIF with bias_exp = 6 (lava-dl netx/hdf5.py)


def converted_program(seed=8) -> tuple[LoihiProgram, np.ndarray]:
    """A converted CNN compiled for Loihi, and its images."""
    snn, images = small_converted_cnn(seed)
    return compile_snn(snn), images


def netx_exact_program(seed=3) -> LoihiProgram:
    """Hand-built layers netx expresses exactly: weight_exp 0, biases multiples of 2^6, v from 0; a padded conv,
    a strided grouped conv, a dense layer."""
    rng = np.random.default_rng(seed)
    ops = [graph.Conv2d(2 * rng.integers(-128, 128, (4, 1, 3, 3)), None, stride=1, padding=1),
           graph.Conv2d(2 * rng.integers(-128, 128, (6, 2, 3, 3)), None, stride=(2, 1), padding=(0, 1), groups=2),
           graph.Dense(2 * rng.integers(-128, 128, (5, 6 * 4 * 10)))]
    params = [dict(du=4095, dv=0, vth=200, bias_mant=rng.integers(-3, 4, 4), bias_exp=6),
              dict(du=1000, dv=300, vth=300, bias_mant=rng.integers(-8, 9, 6), bias_exp=7),
              dict(num_weight_bits=7, du=0, dv=4095, vth=150, bias_mant=-1, bias_exp=6)]
    layers = [LoihiLayer(op, name=f"layer {i}", **p) for i, (op, p) in enumerate(zip(ops, params))]
    return LoihiProgram(layers, program_snn(layers, IN_SHAPE), [])


def test_round_trip_of_a_compiled_cnn(tmp_path):
    program, _ = converted_program()
    path = tmp_path / "net.h5"
    gaps = write_netx(program, path, IN_SHAPE)
    read = read_netx(path)
    assert [entry["type"] for entry in read] == ["input", "conv", "conv", "flatten", "dense", "dense"]
    assert tuple(read[0]["shape"]) == IN_SHAPE
    synapse_layers = [entry for entry in read if entry["type"] in ("conv", "dense")]
    shapes = [s for s, op in zip(program.snn.shapes()[1:], program.snn.ops) if isinstance(op, Neurons)]
    for entry, layer, shape in zip(synapse_layers, program.layers, shapes, strict=True):
        w = entry["weight"]
        assert w.dtype == np.float32 and np.array_equal(w, layer.weights)
        assert np.all(w == np.round(w)) and w.min() >= -256 and w.max() <= 254
        assert tuple(entry["shape"]) == shape
        assert entry["neuron"] == dict(type="CUBA", iDecay=layer.du + 1, vDecay=layer.dv, vThMant=layer.vth,
                                       refDelay=1, gradedSpike=False)
        extras = entry["neuro"]
        assert (extras["weightExp"], extras["numWeightBits"], extras["name"]) == \
            (layer.weight_exp, layer.num_weight_bits, layer.name)
        assert np.array_equal(extras["vInit"], layer.v_init)
        assert np.array_equal(extras["biasMant"], layer.bias_mant) and np.array_equal(extras["biasExp"], layer.bias_exp)
        np.testing.assert_array_equal(entry.get("bias", 0), np.round(layer.bias() / 64))
    assert read[3]["shape"].tolist() == [24, 1, 1]   # the last pooling is folded into the dense layer
    assert (read[4]["inFeatures"], read[4]["outFeatures"]) == (24, 8)
    assert gaps == netx_gaps(program) and gaps   # a converted net has weight exponents and fine biases
    with h5py.File(path) as f:
        assert json.loads(f.attrs["neuro.netx_gaps"]) == gaps
        assert f["layer/1/type"].shape == (1,) and f["layer/1/type"].dtype == np.dtype("S10")


def test_conv_geometry_fields(tmp_path):
    program = netx_exact_program()
    write_netx(program, tmp_path / "net.h5")
    conv1, conv2 = read_netx(tmp_path / "net.h5")[1:3]
    assert (conv1["inChannels"], conv1["outChannels"], conv1["groups"]) == (1, 4, 1)
    assert [conv1[k].tolist() for k in ("kernelSize", "stride", "padding", "dilation")] == [[3, 3], [1, 1], [1, 1], [1, 1]]
    assert (conv2["inChannels"], conv2["outChannels"], conv2["groups"]) == (4, 6, 2)
    assert [conv2[k].tolist() for k in ("kernelSize", "stride", "padding", "dilation")] == [[3, 3], [2, 1], [0, 1], [1, 1]]
    assert conv2["weight"].shape == (6, 2, 3, 3) and conv2["shape"].tolist() == [6, 4, 10]


def test_exact_export_of_what_netx_expresses(tmp_path):
    program = netx_exact_program()
    assert write_netx(program, tmp_path / "net.h5", exact=True) == []
    read = read_netx(tmp_path / "net.h5")
    np.testing.assert_array_equal(read[2]["bias"], program.layers[1].bias_mant * 2)   # mant << 7 = bias << 6
    assert np.all(read[4]["bias"] == -1)


def test_what_netx_cannot_express_is_a_clear_error_and_writes_nothing(tmp_path):
    program, _ = converted_program()
    path = tmp_path / "net.h5"
    path.write_bytes(b"old")
    with pytest.raises(NeuroError, match=r"netx cannot express .*layer 0 .*weight_exp = .*exact=False"):
        write_netx(program, path, exact=True)
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_gaps_name_each_field():
    layer = LoihiLayer(graph.Dense(np.array([[255, -4]])), weight_exp=-2, bias_mant=5, v_init=7, name="L")
    gaps = netx_gaps(LoihiProgram([layer], program_snn([layer], (2,)), []))
    assert [gap.split(",")[0] for gap in gaps] == ["L: weight_exp = -2", "L: a bias is not a multiple of 2^6",
                                                   "L: v starts at 7"]
    assert layer.weights.max() == 254   # mixed-sign 8-bit weights are even on the chip: within netx's [-256, 254]
    inhibitory = LoihiLayer(graph.Dense(np.array([[0, -255]])), name="I")
    assert netx_gaps(LoihiProgram([inhibitory], program_snn([inhibitory], (2,)), []))[0].startswith("I: odd inhibitory")


def test_bad_input_shape_and_bad_file(tmp_path):
    program = netx_exact_program()
    with pytest.raises(NeuroError, match=r"input_shape \(1, 8, 8\) differs"):
        write_netx(program, tmp_path / "net.h5", (1, 8, 8))
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(NeuroError, match="cannot read"):
        read_netx(tmp_path / "text.h5")
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    with pytest.raises(NeuroError, match="not a netx file"):
        read_netx(tmp_path / "empty.h5")


# --- Lava processes built from the file -----------------------------------------------------------------------------

def _lava_chain_from_file(path, stock_netx: bool) -> list[dict]:
    """``lava_chain`` layers from a netx file, convs unrolled into Dense matrices (neurons in (C, H, W) order).

    ``stock_netx``: only netx's own fields, as its reader maps them (weight exponent 0, bias_exp 6, v from 0);
    otherwise the exact values under each layer's neuro/ group."""
    from test_loihi_lava import _unrolled   # here, not at the top: that module skips itself where Lava is absent

    chain, shape = [], None
    for entry in read_netx(path):
        if entry["type"] == "input":
            shape = tuple(entry["shape"])
        elif entry["type"] == "flatten":
            shape = (int(np.prod(shape)),)
        else:
            if entry["type"] == "conv":
                conv = graph.Conv2d(entry["weight"], None, tuple(entry["stride"]), tuple(entry["padding"]),
                                    entry["groups"])
                w, out_shape = _unrolled(conv, shape), conv.output_shape(shape)
            else:
                w, out_shape = entry["weight"].astype(np.int64), tuple(entry["shape"])
            per_channel = int(np.prod(out_shape[1:])) if len(out_shape) == 3 else 1
            neuron, extras = entry["neuron"], entry["neuro"]
            if stock_netx:
                synapse = dict(num_weight_bits=8, weight_exp=0, v_init=0, bias_exp=NETX_BIAS_EXP,
                               bias_mant=np.repeat(entry.get("bias", 0), per_channel).astype(np.int64))
            else:
                synapse = dict(num_weight_bits=extras["numWeightBits"], weight_exp=extras["weightExp"],
                               v_init=np.repeat(extras["vInit"], per_channel), bias_mant=np.repeat(extras["biasMant"], per_channel),
                               bias_exp=np.repeat(extras["biasExp"], per_channel))
            chain.append(dict(weights=w, du=neuron["iDecay"] - 1, dv=neuron["vDecay"], vth=neuron["vThMant"],
                              **synapse))
            shape = out_shape
    return chain


def _emulator_output(program: LoihiProgram, sources: np.ndarray) -> np.ndarray:
    """Output spikes (N, n_out, T) of the emulator for input trains ``sources`` (N, n_in, T), inputs in (C, H, W)."""
    n, _, T = sources.shape
    hwc = sources.reshape(n, *IN_SHAPE, T).transpose(0, 2, 3, 1, 4).reshape(n, -1, T)
    result = Engine(program.snn, program.backend()).run(
        np.zeros((n, *IN_SHAPE), np.float32), np.zeros(n, np.int64), T, encoding=Playback(hwc.transpose(0, 2, 1)),
        record_steps=True, progress=False)
    return result.traces[-1]["spikes"].reshape(n, T, -1).transpose(0, 2, 1).astype(bool)


def _assert_lava_matches(program, path, sources, stock_netx):
    from test_loihi_lava import lava_chain

    ours = _emulator_output(program, sources)
    chain = _lava_chain_from_file(path, stock_netx)
    for k, source in enumerate(sources):
        lava_out = lava_chain(source, chain)[-1][0]
        np.testing.assert_array_equal(ours[k], lava_out, err_msg=f"input {k}")
    assert ours.any()


@pytest.mark.lava
def test_lava_from_file_matches_emulator_on_a_converted_cnn(tmp_path):
    """The compiled CNN, rebuilt in Lava from the file's weights, geometry and neuro/ values: same output spikes
    as the emulator on three rate-coded images."""
    program, images = converted_program()
    write_netx(program, tmp_path / "net.h5")
    rng = np.random.default_rng(0)
    T = 30
    sources = (rng.random((3, images[0].size, T)) < images[:3].reshape(3, -1, 1)).astype(np.int64)
    _assert_lava_matches(program, tmp_path / "net.h5", sources, stock_netx=False)


@pytest.mark.lava
def test_lava_from_netx_fields_alone_matches_emulator(tmp_path):
    """A program netx expresses exactly, rebuilt from netx's own fields the way its reader maps them (weight
    exponent 0, bias_exp 6): same output spikes as the emulator on three random inputs."""
    program = netx_exact_program()
    write_netx(program, tmp_path / "net.h5", exact=True)
    rng = np.random.default_rng(1)
    sources = (rng.random((3, int(np.prod(IN_SHAPE)), 25)) < 0.3).astype(np.int64)
    _assert_lava_matches(program, tmp_path / "net.h5", sources, stock_netx=True)
