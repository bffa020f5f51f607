"""Importers (neuro.ann): ONNX, PyTorch and Keras models give the same outputs as their own runtimes."""

import json
import os
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from neuro.ann import from_keras, from_onnx, from_torch, load_model
from neuro.errors import NeuroError
from neuro.graph import QCFS, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Network, ReLU, Softmax

KERAS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "keras"  # ../shared beside the repo
needs_keras_files = pytest.mark.skipif(not KERAS_DIR.is_dir(), reason=f"Keras model files not found in {KERAS_DIR}")
KERAS_FILES = {  # file: (conv channels, dense units) as in the models README
    "mnist_cnn_kimthangg.h5": ((32, 64, 64), (64, 10)),
    "mnist_cnn_gnudisme.h5": ((32, 64, 128), (128, 10)),
}
KERAS_LAYERS = [Conv2d, ReLU, MaxPool2d, Conv2d, ReLU, MaxPool2d, Conv2d, ReLU, Flatten, Dense, ReLU, Dense, Softmax]

TINY_CNN = '''
import torch.nn as nn

class TinyCNN(nn.Module):
    """Conv with stride/padding/groups, BN, pools, a nested Sequential, dropout and softmax."""
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.ReLU()),
            nn.AvgPool2d(3, stride=1, padding=1), nn.AvgPool2d(2), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 10), nn.Softmax(1))

    def forward(self, x):
        return self.net(x)
'''


def _export(module, shape, path):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, *shape),), str(path), dynamo=False)


@pytest.fixture
def tiny_cnn(tmp_path, monkeypatch):
    """A TinyCNN in eval mode with non-trivial BatchNorm statistics; its class is importable as tinycnn."""
    torch = pytest.importorskip("torch", reason="torch extra not installed")
    (tmp_path / "tinycnn.py").write_text(TINY_CNN)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tinycnn", None)
    from tinycnn import TinyCNN
    torch.manual_seed(0)
    model = TinyCNN()
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def _torch_out(model, x):
    import torch
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_onnx_matches_onnxruntime_and_torch(tiny_cnn, tmp_path):
    import onnxruntime as ort
    path = tmp_path / "tiny.onnx"
    _export(tiny_cnn, (3, 16, 16), path)
    net = from_onnx(path)
    assert [type(layer) for layer in net.layers] == [Conv2d, ReLU, Conv2d, ReLU, AvgPool2d, AvgPool2d, MaxPool2d,
                                                     Flatten, Dense, ReLU, Dense, Softmax]
    assert net.input_shape == (3, 16, 16) and net.output_shape == (10,)
    x = np.random.default_rng(0).random((16, 3, 16, 16), dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
    assert np.abs(net.forward(x) - ref).max() < 1e-4
    assert np.abs(net.forward(x) - _torch_out(tiny_cnn, x)).max() < 1e-4
    assert np.array_equal(load_model(path).forward(x), net.forward(x))


def test_from_torch_matches_torch(tiny_cnn):
    net = from_torch(tiny_cnn, (3, 16, 16))
    x = np.random.default_rng(1).random((16, 3, 16, 16), dtype=np.float32)
    assert np.abs(net.forward(x) - _torch_out(tiny_cnn, x)).max() < 1e-4
    assert net.name == "TinyCNN" and not tiny_cnn.training


def test_torch_checkpoints(tiny_cnn, tmp_path):
    import torch
    x = np.random.default_rng(2).random((4, 3, 16, 16), dtype=np.float32)
    ref = _torch_out(tiny_cnn, x)
    torch.save(tiny_cnn.state_dict(), tmp_path / "state.pt")
    net = load_model(tmp_path / "state.pt", torch_class="tinycnn:TinyCNN")  # input shape: class attribute
    assert np.abs(net.forward(x) - ref).max() < 1e-4
    torch.save(tiny_cnn, tmp_path / "whole.pth")
    net = load_model(tmp_path / "whole.pth", torch_input_shape=(3, 16, 16))
    assert np.abs(net.forward(x) - ref).max() < 1e-4
    with pytest.raises(NeuroError, match="not a whole module"):
        load_model(tmp_path / "state.pt")
    with pytest.raises(NeuroError, match="cannot build torch_class"):
        load_model(tmp_path / "state.pt", torch_class="tinycnn:NoSuchClass")


def test_torch_unsupported_module_and_missing_torch(monkeypatch):
    torch = pytest.importorskip("torch", reason="torch extra not installed")
    with pytest.raises(NeuroError, match=r"unsupported torch module Tanh at '1'"):
        from_torch(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh()), (1, 8, 8))
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(NeuroError, match=r"pip install -e '\.\[torch\]'"):
        from_torch(None, (1, 8, 8))


# ---- Keras -------------------------------------------------------------------------------------

@needs_keras_files
@pytest.mark.parametrize("name", KERAS_FILES)
def test_keras_files_import(name):
    net = load_model(KERAS_DIR / name)
    assert [type(layer) for layer in net.layers] == KERAS_LAYERS
    convs, dense = KERAS_FILES[name]
    assert tuple(l.weight.shape[0] for l in net.layers if isinstance(l, Conv2d)) == convs
    assert tuple(l.weight.shape[0] for l in net.layers if isinstance(l, Dense)) == dense
    assert net.input_shape == (1, 28, 28)
    assert net.shapes()[1:9:3] == [(convs[0], 26, 26), (convs[1], 11, 11), (convs[2], 3, 3)]
    assert net.shapes()[9] == (convs[2] * 9,) and net.output_shape == (10,)


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as e:  # not installed, or its backend is not
        pytest.skip(f"keras is not importable ({type(e).__name__}: {e}): pip install keras torch")
    return keras


@pytest.fixture(scope="module")
def mnist_test():
    if not os.environ.get("NEURO_DATA") or not Path(os.environ["NEURO_DATA"], "mnist").is_dir():
        pytest.skip("MNIST not found: set NEURO_DATA to a directory holding mnist/ (e.g. ../shared/datasets)")
    from neuro.datasets import load
    return load("mnist", split="test", download=False)


@needs_keras_files
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside keras' torch backend
@pytest.mark.parametrize("name", KERAS_FILES)
def test_keras_matches_keras_on_mnist(name, keras, mnist_test):
    """Logits within 1e-4 of Keras itself on all 10,000 test images, and exactly the same accuracy."""
    x, labels = mnist_test
    logits, probs = _keras_logits_and_probs(keras, KERAS_DIR / name, x)
    net = from_keras(KERAS_DIR / name)
    assert isinstance(net.layers[-1], Softmax)
    our_logits = Network(net.input_shape, net.layers[:-1]).forward(x)
    out = net.layers[-1].forward(our_logits)
    assert np.abs(our_logits - logits).max() < 1e-4
    assert np.abs(out - probs).max() < 1e-4
    ours, theirs = float((out.argmax(1) == labels).mean()), float((probs.argmax(1) == labels).mean())
    print(f"{name}: accuracy neuro {ours:.4f}, keras {theirs:.4f}")
    assert ours == theirs > 0.98


def _keras_logits_and_probs(keras, path, x_nchw):
    model = keras.models.load_model(path, compile=False)
    model.layers[-1].activation = keras.activations.linear  # the fused softmax, applied below
    logits = model.predict(x_nchw.transpose(0, 2, 3, 1), batch_size=1000, verbose=0)
    return logits, keras.ops.convert_to_numpy(keras.activations.softmax(keras.ops.convert_to_tensor(logits)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_functional_chain(keras, tmp_path):
    """A Functional model with 'same' padding, strides, BN, average pooling and separate activations."""
    L = keras.layers
    inp = keras.Input((12, 12, 2))
    h = L.Conv2D(6, 3, padding="same", use_bias=False)(inp)
    h = L.BatchNormalization()(h)
    h = L.ReLU()(h)
    h = L.Conv2D(4, 3, strides=2, activation="relu")(h)
    h = L.AveragePooling2D(2)(h)
    h = L.Dropout(0.2)(L.Flatten()(h))
    h = L.Activation("softmax")(L.Dense(5)(h))
    model = keras.Model(inp, h)
    rng = np.random.default_rng(3)
    bn = model.layers[2]
    bn.set_weights([rng.uniform(0.5, 1.5, 6), rng.uniform(-1, 1, 6), rng.uniform(-1, 1, 6), rng.uniform(0.5, 2, 6)])
    model.save(tmp_path / "func.h5")
    net = from_keras(tmp_path / "func.h5")
    assert [type(layer) for layer in net.layers] == [Conv2d, ReLU, Conv2d, ReLU, AvgPool2d, Flatten, Dense, Softmax]
    x = rng.random((8, 2, 12, 12), dtype=np.float32)
    ref = model.predict(x.transpose(0, 2, 3, 1), verbose=0)
    assert np.abs(net.forward(x) - ref).max() < 1e-4

    skip = L.Add()([inp, L.Conv2D(2, 3, padding="same")(inp)])
    keras.Model(inp, L.Flatten()(skip)).save(tmp_path / "residual.h5")
    with pytest.raises(NeuroError, match="not a simple chain"):
        from_keras(tmp_path / "residual.h5")


def _rewrite_keras(src, dst, keras2=False, edit=None):
    """Copy a Keras 3 .h5, optionally in Keras 2's layout (``kernel:0`` names, ``batch_input_shape``)."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        config = json.loads(f.attrs["model_config"])
        for lc in config["config"]["layers"]:
            if keras2 and "batch_shape" in lc["config"]:
                lc["config"]["batch_input_shape"] = lc["config"].pop("batch_shape")
            if edit:
                edit(lc)
        g.attrs["model_config"] = json.dumps(config)
        g.attrs["keras_version"] = "2.15.0" if keras2 else f.attrs["keras_version"]
        src_w, dst_w = f["model_weights"], g.create_group("model_weights")
        dst_w.attrs["layer_names"] = src_w.attrs["layer_names"]
        for layer in src_w.attrs["layer_names"]:
            names = [str(n) for n in src_w[layer].attrs["weight_names"]]
            new = [f"{layer}/{n.split('/')[-1]}:0" if keras2 else n for n in names]
            grp = dst_w.create_group(layer)
            grp.attrs["weight_names"] = new
            for n, m in zip(names, new):
                grp[m] = src_w[layer][n][()]


@needs_keras_files
def test_keras2_layout_gives_the_same_network(tmp_path):
    src = KERAS_DIR / "mnist_cnn_gnudisme.h5"
    _rewrite_keras(src, tmp_path / "k2.h5", keras2=True)
    x = np.random.default_rng(4).random((4, 1, 28, 28), dtype=np.float32)
    assert np.array_equal(from_keras(tmp_path / "k2.h5").forward(x), from_keras(src).forward(x))


@needs_keras_files
def test_keras_same_padding_with_stride_is_refused(tmp_path):
    def edit(lc):
        if lc["class_name"] == "Conv2D":
            lc["config"].update(padding="same", strides=[2, 2])
    _rewrite_keras(KERAS_DIR / "mnist_cnn_gnudisme.h5", tmp_path / "same.h5", edit=edit)
    with pytest.raises(NeuroError, match=r"Conv2D 'conv2d'.*padding='same'.*stride 1"):
        from_keras(tmp_path / "same.h5")


# ---- bad inputs ----------------------------------------------------------------------------------

def _onnx_model(nodes, inits, in_shape, out_shape, path):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph), path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(NeuroError, match="not found: .*nope.onnx"):
        load_model(tmp_path / "nope.onnx")


def test_unknown_suffix(tmp_path):
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(NeuroError, match=r"'\.pb'.*\.onnx, \.h5, \.hdf5, \.pt, \.pth"):
        load_model(tmp_path / "model.pb")


def test_corrupt_onnx(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(5).bytes(4096))
    with pytest.raises(NeuroError, match="cannot read ONNX file .*corrupt.onnx"):
        load_model(path)


def test_onnx_unsupported_op(tmp_path):
    lstm = helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="my_lstm", hidden_size=2)
    path = _onnx_model([lstm], {"W": np.zeros((1, 8, 4)), "R": np.zeros((1, 8, 2))}, [5, 1, 4], [5, 1, 1, 2],
                       tmp_path / "lstm.onnx")
    with pytest.raises(NeuroError, match=r"unsupported op LSTM at node 'my_lstm'; supported ops: Conv, Gemm"):
        from_onnx(path)


def test_onnx_nan_weights(tmp_path):
    w = np.ones((3, 4))
    w[1, 2] = np.nan
    path = _onnx_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)], {"W": w, "b": np.zeros(3)},
                       [1, 4], [1, 3], tmp_path / "nan.onnx")
    with pytest.raises(NeuroError, match="NaN"):
        load_model(path)


def test_onnx_asymmetric_padding_and_branches(tmp_path):
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="c", pads=[0, 0, 1, 1])
    path = _onnx_model([conv], {"W": np.ones((2, 1, 3, 3))}, [1, 1, 8, 8], [1, 2, 7, 7], tmp_path / "pad.onnx")
    with pytest.raises(NeuroError, match=r"node 'c' \(Conv\): asymmetric padding"):
        from_onnx(path)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"), helper.make_node("Add", ["x", "r"], ["y"], name="add")]
    path = _onnx_model(nodes, {}, [1, 4], [1, 4], tmp_path / "branch.onnx")
    with pytest.raises(NeuroError, match=r"not a simple chain: node 'add' \(Add\)"):
        from_onnx(path)


@needs_keras_files
def test_keras_lambda_layer():
    with pytest.raises(NeuroError, match=r"unsupported Keras layer Lambda 'lambda_x'"):
        load_model(KERAS_DIR / "bad_lambda_layer.h5")


def test_onnx_gemm_attributes_and_matmul_add(tmp_path):
    """Gemm with alpha/beta and transB=0, then MatMul + Add, against onnxruntime."""
    import onnxruntime as ort
    rng = np.random.default_rng(6)
    inits = {"A": rng.normal(size=(4, 6)), "c": rng.normal(size=6), "M": rng.normal(size=(6, 3)),
             "d": rng.normal(size=3)}
    nodes = [helper.make_node("Gemm", ["x", "A", "c"], ["h"], alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "M"], ["m"]),
             helper.make_node("Add", ["d", "m"], ["y"])]
    path = _onnx_model(nodes, inits, [1, 4], [1, 3], tmp_path / "gemm.onnx")
    x = rng.random((1, 4), dtype=np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(from_onnx(path).forward(x) - ref).max() < 1e-5
    assert [type(layer) for layer in from_onnx(path).layers] == [Dense, ReLU, Dense]
    assert isinstance(from_onnx(onnx.load(path)), Network)


# ---- QCFS: the standard-op sequence the CIFAR-10 script exports ------------------------------------

def _qcfs_model(path, up=4 / 1.5, half=0.5, clip=(0.0, 4.0), down=1.5 / 4, ops=("Mul", "Add", "Floor", "Clip", "Mul"),
                first="Gemm"):
    """x (1, 4) -> [Gemm] -> the QCFS node sequence ``ops`` (constants up, half, clip, down) -> Gemm -> y."""
    rng = np.random.default_rng(8)
    inits = {"W": rng.normal(0, 1, (6, 4)), "b": rng.normal(0, 0.3, 6), "V": rng.normal(0, 1, (3, 6)),
             "up": up, "half": half, "lo": clip[0], "hi": clip[1], "down": down}
    inputs = {"Mul": ["up"], "Add": ["half"], "Floor": [], "Clip": ["lo", "hi"], "Relu": []}
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["h0"], transB=1)] if first == "Gemm" else []
    cur = "h0" if first == "Gemm" else "x"
    for k, op in enumerate(ops):
        const = ["down"] if op == "Mul" and k else inputs[op]
        nodes.append(helper.make_node(op, [cur, *const], [f"q{k}"], name=f"q{k}"))
        cur = f"q{k}"
    nodes.append(helper.make_node("Gemm", [cur, "V"], ["y"], transB=1))
    return _onnx_model(nodes, inits, ["n", 4], ["n", 3], path)


def test_onnx_qcfs_sequence_imports_as_one_layer_matching_onnxruntime(tmp_path):
    import onnxruntime as ort
    path = _qcfs_model(tmp_path / "qcfs.onnx")
    net = from_onnx(path)
    assert [type(layer) for layer in net.layers] == [Dense, QCFS, Dense]
    assert net.layers[1].levels == 4 and net.layers[1].threshold == pytest.approx(1.5, rel=1e-6)
    x = np.random.default_rng(9).normal(0, 1, (500, 4)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(net.forward(x), ref, rtol=1e-6, atol=1e-6)
    # the layer is the formula lambda / L * clip(floor(z L / lambda + 1/2), 0, L), levels 0, 1.5/4, ..., 1.5 all used
    z = net.layers[0].forward(x)
    y = net.layers[1].forward(z)
    np.testing.assert_allclose(y, 1.5 / 4 * np.clip(np.floor(z * 4 / 1.5 + 0.5), 0, 4), rtol=1e-6)
    assert set(np.round(y.ravel() * 4 / 1.5).astype(int)) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("kwargs, message", [
    (dict(ops=("Floor",)), r"node 'q0' \(Floor\) is not part of a QCFS activation"),
    (dict(ops=("Mul", "Add", "Floor", "Relu", "Mul")), r"starts Mul, Add, Floor, Relu, Mul after a Dense"),
    (dict(first=None), r"starts Mul, Add, Floor, Clip, Mul at the input"),
    (dict(half=0.4), r"constants Mul 2.66667, Add 0.4, Clip\(0, 4\), Mul 0.375 are not a QCFS activation"),
    (dict(down=0.5), r"the two Mul factors must be reciprocals"),
    (dict(clip=(0.0, 2.5)), r"Clip\(0, 2.5\)"),
    (dict(up=np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])), r"needs one scalar constant per Mul"),
])
def test_onnx_malformed_qcfs_sequence_is_a_one_line_error(tmp_path, kwargs, message):
    with pytest.raises(NeuroError, match=message) as e:
        from_onnx(_qcfs_model(tmp_path / "bad.onnx", **kwargs))
    assert "\n" not in str(e.value) and "supported only as the QCFS activation after a Conv/Gemm" in str(e.value)
