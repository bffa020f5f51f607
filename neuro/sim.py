"""The time-stepped engine: runs an SNN on a batch of images for T steps and counts what it does.

Each op of the SNN becomes a stage with preallocated buffers. Per step the encoded input flows
through the stages; synaptic stages pick the event-driven (scatter) path when the fraction of
non-zero inputs is below ``event_threshold`` and the dense path (im2col + BLAS) otherwise.
State is (batch, neurons), so memory is flat in T; nothing is kept per step unless recorded.

The seam for chip models is the ``Backend``: it turns each ``Synapses`` op into the weights the
chip uses (e.g. quantised integers held in float32, exact below 2^24) and each ``Neurons`` op into
a ``NeuronModel`` that owns the neuron state and its update. The float backend is the default. A
synapse op with a ``stage(in_shape, out_shape, perm)`` method brings its own stage (``reset(batch)``,
``step(x, counts) -> out``), for a chip whose synapse format is not a conv or dense op.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from neuro import encode, graph, kernels
from neuro.errors import NeuroError
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses

DEFAULT_EVENT_THRESHOLD = 0.03  # below this fraction of non-zero inputs the event path wins (bench_engine.py: crossover 2-5 %)


# --- neuron models and backends (the chip seam) ----------------------------------------------------

class NeuronModel:
    """State and update of one population; chip models subclass this with their integer dynamics.

    ``reset`` creates the membrane potential ``self.v`` (batch, n) in the model's own units and dtype.
    """

    def reset(self, batch: int, n: int) -> None:
        raise NotImplementedError

    def step(self, current: np.ndarray, spikes: np.ndarray) -> int:
        """Integrate ``current`` (batch, n), write 0/1 into ``spikes``, return the number of spikes."""
        raise NotImplementedError

    def potential(self) -> np.ndarray:
        """Membrane potential (batch, n) in units of the threshold, for readout."""
        raise NotImplementedError


class FloatNeurons(NeuronModel):
    """float32 integrate-and-fire / leaky neurons of a ``Neurons`` op."""

    def __init__(self, op: Neurons):
        self.op = op

    def reset(self, batch, n):
        self.v = np.full((batch, n), self.op.v_init * self.op.threshold, np.float32)

    def step(self, current, spikes):
        op = self.op
        if not op.spiking:
            if op.leak:
                self.v *= np.float32(1.0 - op.leak)
            self.v += current
            return 0
        return kernels.integrate_fire(current, self.v, spikes, np.float32(op.threshold),
                                      np.float32(1.0 - op.leak), op.reset == "subtract")

    def potential(self):
        return self.v / np.float32(self.op.threshold)


class Backend:
    """Float SNN semantics; a chip backend overrides these two hooks."""

    name = "float"

    def synapse_op(self, op):
        return op

    def neuron_model(self, op: Neurons) -> NeuronModel:
        return FloatNeurons(op)


# --- stages -------------------------------------------------------------------------------------------

@dataclass
class LayerCounts:
    """Totals over all images and steps of one op (divide by n_images for per-image figures)."""

    name: str
    neurons: int = 0
    spikes: float = 0.0
    synops: float = 0.0           # non-zero inputs x their fan-out (synaptic events)
    effective_acs: float = 0.0    # NeuroBench: synops driven by binary inputs
    effective_macs: float = 0.0   # NeuroBench: synops driven by graded (non-binary) inputs
    dense: float = 0.0            # NeuroBench: every connection, every step
    event_steps: int = 0          # steps that took the event-driven path
    dense_steps: int = 0
    hops: float = 0.0             # mesh hops of the spikes this op receives (chips that route on a mesh)


LAYER_COUNT_FIELDS = ("spikes", "synops", "effective_acs", "effective_macs", "dense", "event_steps", "dense_steps",
                      "hops")


class SynapseStage:
    """A conv, dense or average-pool op; inputs and outputs flat, images channel-last."""

    def __init__(self, op, in_shape, out_shape, perm, event_threshold):
        self.event_threshold = event_threshold
        self.out_size = int(np.prod(out_shape))
        self.pool = op if isinstance(op, graph.AvgPool2d) else None
        if self.pool is not None:
            op = op.as_conv(in_shape[0])  # for its fan-out and connection counts
        self.bias = op.bias.astype(np.float32)
        if isinstance(op, graph.Dense):
            w = op.weight if perm is None else op.weight[:, perm]
            self.kind = "dense"
            self.wt = np.ascontiguousarray(w.T, np.float32)  # (in, out)
            self.fanout = (self.wt != 0).sum(axis=1).astype(np.float64)
            self.connections = w.size
        else:
            (c, h, w_), (o, oh, ow) = in_shape, out_shape
            cin_g, kh, kw = op.weight.shape[1:]
            og = o // op.groups
            self.kind = "conv"
            # wr[c, ky, kx, j] = W[group(c) * og + j, c mod cin_g, ky, kx]
            wg = op.weight.reshape(op.groups, og, cin_g, kh, kw)
            self.wr = np.ascontiguousarray(wg.transpose(0, 2, 3, 4, 1).reshape(c, kh, kw, og), np.float32)
            self.geom = (h, w_, c, oh, ow, *op.stride, *op.padding)
            self.cin_g, self.groups, self.ksize = cin_g, op.groups, (kh, kw)
            if op.groups == 1:  # dense path: im2col rows (ky, kx, c) x wm
                self.wm = np.ascontiguousarray(self.wr.transpose(1, 2, 0, 3).reshape(kh * kw * c, o))
            self.fanout = kernels.conv_fanout(self.wr, h, w_, oh, ow, *op.stride, *op.padding)
            self.connections = oh * ow * o * cin_g * kh * kw

    def reset(self, batch):
        self.out = np.empty((batch, self.out_size), np.float32)
        if self.kind == "conv" and self.pool is None:
            h, w, c, oh, ow = self.geom[:5]
            self.scratch = (np.empty((batch, h * w + 1), np.int64), np.empty((batch, h * w * c), np.int64),
                            np.empty((batch, h * w * c), np.float32), np.empty((batch, len(self.bias)), np.float32))
            if self.groups == 1:
                self.cols = np.empty((batch * oh * ow, self.ksize[0] * self.ksize[1] * c), np.float32)

    def step(self, x, counts: LayerCounts):
        nnz, synops, graded = kernels.activity(x, self.fanout)
        counts.synops += synops
        if graded:
            counts.effective_macs += synops
        else:
            counts.effective_acs += synops
        counts.dense += self.connections * x.shape[0]
        event = nnz < self.event_threshold * x.size or (self.kind == "conv" and self.groups > 1)
        counts.event_steps += event
        counts.dense_steps += not event
        if self.pool is not None:  # a gather over each window: cheap on either path
            kernels.avg_pool(x, self.out, *self.geom[:5], *self.pool.kernel, *self.geom[5:])
        elif self.kind == "dense" and event:
            kernels.dense_scatter(x, self.wt, self.bias, self.out)
        elif self.kind == "dense":
            np.matmul(x, self.wt, out=self.out)
            self.out += self.bias
        elif event:
            kernels.conv_event(x, self.wr, self.bias, self.out, *self.geom, self.cin_g, *self.scratch)
        else:
            kernels.im2col(x, self.cols, *self.geom[:5], *self.ksize, *self.geom[5:])
            out2d = self.out.reshape(-1, self.wm.shape[1])
            np.matmul(self.cols, self.wm, out=out2d)
            out2d += self.bias
        return self.out


class NeuronStage:
    def __init__(self, model: NeuronModel, n):
        self.model, self.n = model, n

    def reset(self, batch):
        self.model.reset(batch, self.n)
        self.out = np.zeros((batch, self.n), np.float32)

    def step(self, x, counts: LayerCounts):
        counts.spikes += self.model.step(x, self.out)
        return self.out


class GateStage:
    def __init__(self, op: MaxPoolGate, in_shape, out_shape):
        (c, h, w), (_, oh, ow) = in_shape, out_shape
        self.geom = (h, w, c, oh, ow, *op.kernel, *op.stride)
        self.n_in, self.n_out = c * h * w, c * oh * ow

    def reset(self, batch):
        self.counts = np.zeros((batch, self.n_in), np.float32)
        self.out = np.zeros((batch, self.n_out), np.float32)

    def step(self, x, counts: LayerCounts):
        kernels.maxpool_gate(x, self.counts, self.out, *self.geom)
        return self.out


class PassStage:
    """Flatten: the flat channel-last buffer stays as it is (the next Dense is permuted instead)."""

    def reset(self, batch):
        pass

    def step(self, x, counts):
        return x


def _to_chw(arr: np.ndarray, shape) -> np.ndarray:
    """Engine layout (..., H*W*C) -> (..., C, H, W) for images, (..., N) otherwise."""
    if len(shape) != 3:
        return arr.reshape(*arr.shape[:-1], *shape)
    c, h, w = shape
    lead = arr.shape[:-1]
    return np.moveaxis(arr.reshape(*lead, h, w, c), -1, len(lead))


def _chw_to_hwc(shape) -> np.ndarray:
    """perm with x_hwc = x_chw[perm] for a (C, H, W) tensor."""
    return np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).reshape(-1)


# --- results ------------------------------------------------------------------------------------------

@dataclass
class SimResult:
    n_images: int
    timesteps: int
    correct_by_step: np.ndarray                 # (T,) images classified correctly after step t+1
    layers: list[LayerCounts]
    predictions: np.ndarray                     # class after the last step
    spike_counts: list[np.ndarray] | None = None  # per Neurons op: (n_images, *shape) total spikes
    traces: list[dict] | None = None  # per Neurons op: spikes and v, (n_images, T, *shape) each
    counts_by_step: np.ndarray | None = None    # (T, layers, LAYER_COUNT_FIELDS): each step's counts, all images

    @property
    def accuracy_by_step(self) -> np.ndarray:
        return self.correct_by_step / max(self.n_images, 1)

    @property
    def accuracy(self) -> float:
        return float(self.accuracy_by_step[-1])

    def per_image(self, key: str) -> float:
        """Total of a LayerCounts field over layers, per image."""
        return float(sum(getattr(c, key) for c in self.layers)) / max(self.n_images, 1)

    def until(self, steps: int) -> SimResult:
        """This run cut after its first ``steps`` steps: accuracy and every layer's counts up to that step, as if
        the run had been ``steps`` long (chips cost an inference of ``steps`` steps from it). Predictions,
        per-neuron counts and traces stay those of the whole run."""
        if self.counts_by_step is None:
            raise NeuroError("this result has no per-step counts: run it again with this version's engine")
        if not 1 <= steps <= self.timesteps:
            raise NeuroError(f"steps is {steps}: give 1..{self.timesteps}, the steps this run has")
        totals = self.counts_by_step[:steps].sum(axis=0)
        layers = [LayerCounts(c.name, c.neurons, **{f: type(getattr(c, f))(v) for f, v in zip(LAYER_COUNT_FIELDS, row)})
                  for c, row in zip(self.layers, totals)]
        return SimResult(self.n_images, steps, self.correct_by_step[:steps], layers, self.predictions,
                         self.spike_counts, self.traces, self.counts_by_step[:steps])


# --- the engine ---------------------------------------------------------------------------------------

def default_threads() -> int:
    """The engine's thread count when none is given: one per CPU (results do not depend on it)."""
    return os.cpu_count() or 1


class Engine:
    """Compiles an SNN into stages once; ``run`` simulates any number of images in batches.

    Each batch is split into ``threads`` slices that run concurrently, each on its own copy of the
    stages (the kernels release the GIL): threads never wait for each other inside a step, which
    keeps the engine fast on a busy machine too. BLAS runs single-threaded meanwhile.
    """

    def __init__(self, snn: SNN, backend: Backend | None = None, event_threshold: float = DEFAULT_EVENT_THRESHOLD,
                 threads: int | None = None):
        self.snn, self.backend, self.event_threshold = snn, backend or Backend(), event_threshold
        self.shapes = snn.shapes()
        if len(self.shapes[-1]) != 1:
            raise NeuroError(f"the SNN's output has shape {self.shapes[-1]}: it must be a flat class vector")
        self.threads = max(1, threads or default_threads())
        self.workers = [self._build_stages() for _ in range(self.threads)]
        self.stages = self.workers[0]
        self.names = [f"{i}:{type(getattr(op, 'op', op)).__name__}" for i, op in enumerate(snn.ops)]
        self.neuron_shapes = [self.shapes[i + 1] for i, op in enumerate(snn.ops) if isinstance(op, Neurons)]

    def _build_stages(self) -> list:
        stages, pending_perm = [], None  # pending_perm: set by a Flatten of an image, consumed by the next Dense
        for i, op in enumerate(self.snn.ops):
            in_shape, out_shape = self.shapes[i], self.shapes[i + 1]
            if isinstance(op, Synapses):
                syn = self.backend.synapse_op(op.op)
                if hasattr(syn, "stage"):  # a chip's own synapse format brings its stage (same step contract)
                    stage, pending_perm = syn.stage(in_shape, out_shape, pending_perm), None
                else:
                    stage = SynapseStage(syn, in_shape, out_shape, pending_perm, self.event_threshold)
                    if isinstance(syn, graph.Dense):
                        pending_perm = None
            elif isinstance(op, Neurons):
                stage = NeuronStage(self.backend.neuron_model(op), int(np.prod(out_shape)))
            elif isinstance(op, MaxPoolGate):
                stage = GateStage(op, in_shape, out_shape)
            elif isinstance(op, graph.Flatten):
                stage = PassStage()
                if len(in_shape) == 3:
                    pending_perm = _chw_to_hwc(in_shape)
            else:
                raise NeuroError(f"op {i} ({type(op).__name__}) is not supported by the engine")
            stages.append(stage)
        return stages

    def run(self, images: np.ndarray, labels: np.ndarray, timesteps: int, *, encoding="current",
            seed: int = 0, batch_size: int = 256, record_counts: bool = False, record_steps: bool = False,
            progress: bool = True) -> SimResult:
        """Simulate ``images`` (N, C, H, W) for ``timesteps`` steps each; accuracy after every step.

        ``encoding``: "current", "rate", or an object with ``for_batch(images, start)`` like
        ``encode.Encoder`` (e.g. a recorded spike train); rate spikes depend on the seed and each
        image's index only, not on the batch size or thread count. ``record_counts`` keeps each neuron's total spikes;
        ``record_steps`` keeps every step's spikes and membrane potential (memory grows with T).
        """
        self.snn.check_input(images)
        if timesteps < 1:
            raise NeuroError(f"timesteps must be at least 1, got {timesteps}")
        if batch_size < 1:
            raise NeuroError(f"batch_size must be at least 1, got {batch_size}")
        if len(images) != len(labels):
            raise NeuroError(f"{len(images)} images but {len(labels)} labels")
        encoder = encode.Encoder(encoding, seed) if isinstance(encoding, str) else encoding
        labels = np.asarray(labels)
        n = len(images)
        sizes = [int(np.prod(s)) for s in self.neuron_shapes]
        rec = _Recording(n, timesteps, sizes, record_counts, record_steps, self.stages)
        counts = [[LayerCounts(name) for name in self.names] for _ in self.workers]
        by_step = np.zeros((len(self.workers), timesteps, len(self.names), len(LAYER_COUNT_FIELDS)))
        correct = np.zeros((len(self.workers), timesteps), np.int64)
        predictions = np.zeros(n, np.int64)
        bar = tqdm(total=n * timesteps, unit="img-step", disable=not progress, leave=False, desc=f"simulate T={timesteps}")

        def work(w: int, rows: slice):
            inputs = encoder.for_batch(images[rows], rows.start)
            predictions[rows] = self._run_slice(self.workers[w], images[rows], labels[rows], timesteps, inputs,
                                                counts[w], by_step[w], correct[w], rec, rows, bar)

        with bar, ThreadPoolExecutor(len(self.workers)) as pool, threadpool_limits(1, user_api="blas"):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                bounds = np.linspace(start, stop, len(self.workers) + 1).astype(int)
                jobs = [pool.submit(work, w, slice(a, b)) for w, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
                        if b > a]
                for job in jobs:
                    job.result()
        layers = [LayerCounts(name) for name in self.names]
        for layer, per_worker in zip(layers, zip(*counts)):
            for f in LAYER_COUNT_FIELDS:
                setattr(layer, f, sum(getattr(c, f) for c in per_worker))
        for layer, stage in zip(layers, self.stages):
            layer.neurons = getattr(stage, "n", 0)
        result = SimResult(n, timesteps, correct.sum(axis=0), layers, predictions, counts_by_step=by_step.sum(axis=0))
        return rec.finish(result, self.neuron_shapes)

    def _run_slice(self, stages, batch, labels, timesteps, inputs, counts, by_step, correct, rec, rows, bar):
        """Run one slice of images through ``stages`` for all steps; returns the final predictions."""
        for stage in stages:
            stage.reset(len(batch))
        neuron_stages = [s for s in stages if isinstance(s, NeuronStage)]
        output = neuron_stages[-1]
        out_counts = np.zeros((len(batch), output.n), np.float32) if self.snn.readout == "spikes" else None
        static_first = inputs.static and isinstance(stages[0], SynapseStage)
        first_step_work = None  # the first stage's counts of one step, reused while its input is static
        before_step = _snapshot(counts)
        for t in range(timesteps):
            x = inputs.step()
            for k, (stage, c) in enumerate(zip(stages, counts)):
                if k == 0 and static_first and t > 0:
                    _add_work(c, first_step_work)  # same input every step: reuse the current, count the work
                    x = stage.out
                else:
                    before = _work(c)
                    x = stage.step(x, c)
                    if k == 0:
                        first_step_work = _work(c) - before
            after_step = _snapshot(counts)
            by_step[t] += after_step - before_step
            before_step = after_step
            rec.add(neuron_stages, rows, t)
            if out_counts is not None:
                out_counts += output.out
            pred = self._predict(output, out_counts)
            correct[t] += int((pred == labels).sum())
            bar.update(len(batch))
        return pred

    def _predict(self, output: NeuronStage, out_counts) -> np.ndarray:
        v = output.model.potential()
        if out_counts is None:
            return v.argmax(axis=1)
        return (out_counts + 0.25 * np.clip(v, -1, 1)).argmax(axis=1)  # counts first, V breaks ties


class _Recording:
    """Optional per-neuron spike totals and per-step traces, filled slice by slice."""

    def __init__(self, n, timesteps, sizes, counts: bool, steps: bool, stages):
        self.totals = [np.zeros((n, m), np.float32) for m in sizes] if counts else None
        self.steps = None
        if steps:
            neuron_stages = [s for s in stages if isinstance(s, NeuronStage)]
            for stage in neuron_stages:
                stage.reset(1)  # to learn each model's voltage dtype
            self.steps = [(np.zeros((n, timesteps, m), np.uint8), np.zeros((n, timesteps, m), s.model.v.dtype))
                          for m, s in zip(sizes, neuron_stages)]

    def add(self, neuron_stages, rows, t):
        if self.totals is not None:
            for tot, s in zip(self.totals, neuron_stages):
                tot[rows] += s.out
        if self.steps is not None:
            for (sp, v), s in zip(self.steps, neuron_stages):
                sp[rows, t] = s.out
                v[rows, t] = s.model.v

    def finish(self, result: SimResult, shapes) -> SimResult:
        if self.totals is not None:
            result.spike_counts = [_to_chw(t, s) for t, s in zip(self.totals, shapes)]
        if self.steps is not None:
            result.traces = [dict(spikes=_to_chw(sp, s), v=_to_chw(v, s)) for (sp, v), s in zip(self.steps, shapes)]
        return result


_WORK_FIELDS = ("synops", "effective_acs", "effective_macs", "dense")


def _snapshot(counts: list[LayerCounts]) -> np.ndarray:
    """(layers, LAYER_COUNT_FIELDS) of the running totals, for per-step differences."""
    return np.array([[getattr(c, f) for f in LAYER_COUNT_FIELDS] for c in counts], np.float64)


def _work(counts: LayerCounts) -> np.ndarray:
    return np.array([getattr(counts, f) for f in _WORK_FIELDS])


def _add_work(counts: LayerCounts, work: np.ndarray) -> None:
    for f, w in zip(_WORK_FIELDS, work):
        setattr(counts, f, getattr(counts, f) + float(w))


def simulate(snn: SNN, images, labels, timesteps, **kwargs) -> SimResult:
    """One-call form of ``Engine(snn).run(...)``."""
    engine_kwargs = {k: kwargs.pop(k) for k in ("backend", "event_threshold", "threads") if k in kwargs}
    return Engine(snn, **engine_kwargs).run(images, labels, timesteps, **kwargs)
