"""neuro.baselines.estimate: work counts, the GPU and CPU estimates, their held-out published checks, and
neuro.published."""

import dataclasses
import math

import pytest

import chips
from neuro import ann, graph, published, report
from neuro.baselines import estimate as est
from neuro.errors import NeuroError

from conftest import REFERENCE_ONNX

BATCHES = (1, 16, 256, 4096)


@pytest.fixture(scope="module")
def cnn_work():
    return est.network_work(ann.load_model(REFERENCE_ONNX))


def ordered(r: est.Range) -> bool:
    return r.low <= r.point <= r.high and all(math.isfinite(v) and v >= 0 for v in r)


def test_mnist_cnn_flops_match_a_hand_count(cnn_work):
    net = ann.load_model(REFERENCE_ONNX)
    # conv 1->16 5x5 on 28x28 -> 16x24x24; avgpool 2 -> 16x12x12; conv 16->32 5x5 -> 32x8x8; avgpool 2 -> 32x4x4;
    # dense 512->128, dense 128->10
    macs = 16 * 24 * 24 * 1 * 25 + 32 * 8 * 8 * 16 * 25 + 512 * 128 + 128 * 10
    pool_ops = 2 * (16 * 12 * 12 * 4 + 32 * 4 * 4 * 4)
    assert est.total_flops(cnn_work) == 2 * macs + pool_ops
    params = sum(l.weight.size + l.bias.size for l in net.layers if isinstance(l, (graph.Conv2d, graph.Dense)))
    assert est.weight_bytes(cnn_work) == 4 * params
    assert sum(w.kernels for w in cnn_work) == 6  # 2 conv + 2 pool + 2 dense; ReLUs fused, Flatten a view
    assert cnn_work[0].in_bytes == 4 * 28 * 28 and cnn_work[0].out_bytes == 4 * 16 * 24 * 24


def test_shapes_only_layers_agree_with_network_work():
    w = graph.Conv2d(graph.np.zeros((8, 3, 3, 3)), stride=2, padding=1)
    net = graph.Network((3, 32, 32), [w, graph.ReLU(), graph.Flatten(), graph.Dense(graph.np.zeros((10, 8 * 16 * 16)))])
    from_net = est.network_work(net)
    conv, shape = est.conv_work("c", (3, 32, 32), 8, 3, 2, 1)
    assert shape == (8, 16, 16)
    assert (conv.flops, conv.weight_bytes, conv.in_bytes, conv.out_bytes) == \
        (from_net[0].flops, from_net[0].weight_bytes, from_net[0].in_bytes, from_net[0].out_bytes)
    dense = est.dense_work("d", 8 * 16 * 16, 10)
    assert (dense.flops, dense.weight_bytes) == (from_net[-1].flops, from_net[-1].weight_bytes)


def test_resnet50_is_about_4_1_gmacs_and_25_5_m_parameters():
    work = est.resnet50_work()
    assert 4.0e9 < est.total_flops([w for w in work if w.kind in ("conv", "dense")]) / 2 < 4.2e9
    assert 25.0e6 < est.weight_bytes(work) / 4 < 26.0e6  # He et al. 2016: ~25.5 M parameters
    assert sum(w.kind == "conv" for w in work) == 53 and work[-1].out_bytes == 4 * 1000
    assert est.weight_bytes(est.resnet50_work(bytes_per_value=1)) * 4 == est.weight_bytes(work)


@pytest.mark.parametrize("check", est.CHECKS, ids=lambda c: c.name)
def test_published_checks_within_their_stated_bound(check):
    assert check.within, f"{check.name}: ratio {check.ratio:.2f} outside 1/{check.bound}..{check.bound}"
    assert ordered(check.estimate)
    assert check.published > 0 and check.source


def test_checks_within_2x_unless_a_miss_is_stated():
    for c in est.CHECKS:
        assert c.bound == 2.0 or "stated miss" in c.note, c.name
    assert "estimate / published = " in est.ratio_note(est.CHECKS[-1])


def test_blouw_energy_compares_dynamic_with_dynamic():
    b1 = est.estimate_gpu(est.blouw_mlp_work(), "Quadro-K4000", 1, runtime="tf1-session")
    check = next(c for c in est.CHECKS if c.name == "Blouw K4000 batch 1 dynamic energy")
    assert check.estimate == b1.dynamic_energy_per_image_j
    assert b1.dynamic_energy_per_image_j.point < b1.energy_per_image_j.point


@pytest.mark.parametrize("gpu", list(est.GPUS))
def test_every_output_is_ordered_and_batches_work(gpu, cnn_work):
    for work, precision in ((cnn_work, "fp32"), (est.resnet50_work(), "fp32")):
        for b in BATCHES:
            e = est.estimate_gpu(work, gpu, b, precision)
            for r in (e.images_per_s, e.latency_s, e.energy_per_image_j, e.dynamic_energy_per_image_j, e.power_w):
                assert ordered(r), (gpu, b, r)
            assert e.provenance == "estimated" and e.batch == b and e.formula
            spec = est.GPUS[gpu]
            assert spec.idle_w <= e.power_w.low and e.power_w.high <= spec.tdp_w


@pytest.mark.parametrize("gpu", list(est.GPUS))
def test_bigger_batch_more_images_per_s_less_energy_per_image(gpu, cnn_work):
    runs = [est.estimate_gpu(cnn_work, gpu, b) for b in BATCHES]
    for a, b in zip(runs, runs[1:]):
        assert b.images_per_s.point > a.images_per_s.point
        assert b.energy_per_image_j.point < a.energy_per_image_j.point


def test_batch_beyond_memory_runs_in_chunks():
    e = est.estimate_gpu(est.resnet50_work(), "Quadro-K4000", 4096)
    assert any("chunks" in n for n in e.notes)
    fits = est.max_batch_in_memory(est.resnet50_work(), "Quadro-K4000")
    assert 1 <= fits < 4096
    assert not any("chunks" in n for n in est.estimate_gpu(est.resnet50_work(), "H100-SXM", 256).notes)


def test_higher_power_means_higher_energy(cnn_work):
    base = est.GPUS["H100-SXM"]
    hot = dataclasses.replace(base, name="H100-hot", tdp_w=2 * base.tdp_w)
    a, b = est.estimate_gpu(cnn_work, base, 16), est.estimate_gpu(cnn_work, hot, 16)
    assert b.latency_s == a.latency_s and b.energy_per_image_j.point > a.energy_per_image_j.point
    lo, hi = est.estimate_cpu(1e-3, 1, "AMD EPYC"), est.estimate_cpu(1e-3, 4, "AMD EPYC")
    assert hi.energy_per_image_j.point == pytest.approx(4 * lo.energy_per_image_j.point)


def test_faster_gpu_is_faster_on_resnet50():
    work = est.resnet50_work()
    speeds = [est.estimate_gpu(work, g, 256).images_per_s.point for g in ("Quadro-K4000", "Jetson-AGX-Orin",
                                                                          "A100-SXM", "H100-SXM")]
    assert speeds == sorted(speeds)


def test_cpu_estimate_records_model_and_threads():
    e = est.estimate_cpu(2e-4, 2, "AMD EPYC")
    assert ordered(e.energy_per_image_j) and ordered(e.power_w)
    assert "AMD EPYC" in e.device and "threads=2" in e.notes and "cpu_model='AMD EPYC'" in e.notes
    assert e.energy_per_image_j.point == pytest.approx(2e-4 * 2 * est.CPU_POWER["AMD EPYC"].per_core_w.point)
    parts = est.EPYC_PARTS
    assert e.power_w.high == pytest.approx(2 * max(p.tdp_w / p.cores for p in parts))
    unknown = est.estimate_cpu(2e-4, 2, "Some Vendor CPU")
    assert unknown.power_w.high / unknown.power_w.low > e.power_w.high / e.power_w.low  # wider default range
    assert est.cpu_power("AMD EPYC 7763 64-Core Processor").family == "AMD EPYC"


@pytest.mark.parametrize("call, fix", [
    (lambda w: est.estimate_gpu(w, "H100-SXM", 0), "batch=1"),
    (lambda w: est.estimate_gpu(w, "H100-SXM", 2.5), "batch=1"),
    (lambda w: est.estimate_gpu(w, "RTX-9999", 1), "use one of"),
    (lambda w: est.estimate_gpu(w, "Quadro-K4000", 1, precision="int8"), "use precision one of"),
    (lambda w: est.estimate_gpu(w, "H100-SXM", 1, runtime="jit"), "use one of"),
    (lambda w: est.estimate_gpu([], "H100-SXM", 1), "describe it"),
    (lambda w: est.estimate_cpu(0.0, 1, "AMD EPYC"), "pass the"),
    (lambda w: est.estimate_cpu(1e-3, 0, "AMD EPYC"), "pass the"),
])
def test_bad_input_is_a_one_line_error_naming_the_fix(call, fix, cnn_work):
    with pytest.raises(NeuroError) as e:
        call(cnn_work)
    assert fix in str(e.value) and "\n" not in str(e.value)


def test_published_points_are_complete_and_reach_the_report():
    systems = " ".join(p.system for p in published.OTHER_CHIPS)
    assert "TPU v1" in systems and "FINN" in systems and "MLPerf Tiny" in systems
    everything = published.OTHER_CHIPS + published.GPU_POINTS + chips.published_points()   # chips: their own points
    assert set(everything) <= set(report.published_points())
    assert any("Esser" in p.source for p in everything) and any("Blouw" in p.source for p in everything)
    for p in everything:
        assert p.source and (p.accuracy is None or 0 < p.accuracy <= 1)
        assert p.energy_j is None or p.energy_j > 0
        assert p.fps is None or 0 < p.fps[0] <= p.fps[1]
