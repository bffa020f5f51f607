"""Reliability: the same seed gives the same numbers whatever the threads, batch size or machine."""

import numpy as np
import pytest

import chips
from conftest import small_converted_cnn
from neuro import graph
from neuro.convert import layer_scales
from neuro.encode import Encoder
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS, Engine

# what the network did, per image; event_steps and dense_steps count the engine's own steps per slice
ACTIVITY = [LAYER_COUNT_FIELDS.index(f) for f in LAYER_COUNT_FIELDS if f not in ("event_steps", "dense_steps")]


@pytest.mark.parametrize("chip", ["float", *chips.available()])
def test_rate_coded_run_is_independent_of_threads_and_batch_size(chip):
    snn, _ = small_converted_cnn()
    rng = np.random.default_rng(3)
    images, labels = rng.random((40, 1, 10, 10)).astype(np.float32), rng.integers(0, 3, 40)
    program = None if chip == "float" else chips.get(chip)(snn)
    runs = {}
    for threads in (1, 2):
        engine = Engine(program.snn, program.backend(), threads=threads) if program else Engine(snn, threads=threads)
        for batch in (7, 256):
            runs[threads, batch] = engine.run(images, labels, 12, encoding="rate", seed=5, batch_size=batch,
                                              progress=False)
    first = runs[1, 256]
    assert first.counts_by_step.sum() > 0 and 0 < first.accuracy < 1
    for r in runs.values():
        np.testing.assert_array_equal(r.accuracy_by_step, first.accuracy_by_step)
        np.testing.assert_array_equal(r.counts_by_step[..., ACTIVITY], first.counts_by_step[..., ACTIVITY])
        np.testing.assert_array_equal(r.predictions, first.predictions)


def test_rate_spikes_of_an_image_depend_on_its_index_not_its_batch():
    images = np.random.default_rng(0).random((6, 1, 4, 4)).astype(np.float32)
    whole = Encoder("rate", 9).for_batch(images, 0)
    tail = Encoder("rate", 9).for_batch(images[4:], 4)
    for _ in range(3):
        np.testing.assert_array_equal(whole.step()[4:], tail.step())
    other_seed = Encoder("rate", 10).for_batch(images[4:], 4).step()
    assert not np.array_equal(other_seed, Encoder("rate", 9).for_batch(images[4:], 4).step())


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_encoder_rejects_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(NeuroError, match="seed must be an integer of 0 or more"):
        Encoder("rate", seed)


def test_conversion_statistics_run_on_one_blas_thread(monkeypatch):
    # a multithreaded BLAS splits sums by its thread count: the scales moved by a ULP between machines
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(1)
    net = graph.Network((64,), [graph.Dense(rng.normal(0, 0.2, (32, 64))), graph.ReLU(),
                                graph.Dense(rng.normal(0, 0.2, (10, 32)))])
    forward, seen = net.forward, []

    def spy(x, collect=False):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return forward(x, collect=collect)

    monkeypatch.setattr(net, "forward", spy)
    layer_scales(net, rng.random((50, 64)).astype(np.float32), 99.9)
    assert seen and set(seen) == {1}
