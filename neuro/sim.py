"""The time-stepped engine: runs an SNN on a batch of images for T steps and counts what it does.

Each op of the SNN becomes a stage with preallocated buffers. The engine runs time in tiles of
``time_batch`` steps (1 by default: step by step): a tile's encoded input flows through the stages
layer by layer, each stage taking the tile's L steps at once. A feed-forward layer's input for the
whole tile is known once the layer before has run, so synaptic stages compute all L x batch rows in
one product, and neuron stages scan their state over the tile one step at a time (the models' own
``step``, so chip timing such as Loihi's synaptic delay or TrueNorth's axon delays stays as it is).
Synaptic stages pick the event-driven (scatter) path when the fraction of non-zero inputs over the
tile is below ``event_threshold`` and the dense path (im2col + BLAS) otherwise.

Memory: neuron state is (batch, neurons) and every stage holds a buffer of one tile, L x batch rows of
its output: 4 bytes x L x batch x (sum of the stages' output sizes), plus a conv's fixed scratch (at most
``IM2COL_BYTES`` of unrolled input, or one image's event lists). It grows with the tile length L but
not with T; nothing is kept per step unless recorded.

The seam for chip models is the ``Backend``: it turns each ``Synapses`` op into the weights the
chip uses (e.g. quantised integers held in float32, exact below 2^24) and each ``Neurons`` op into
a ``NeuronModel`` that owns the neuron state and its update. The float backend is the default. A
synapse op with a ``stage(in_shape, out_shape, perm)`` method brings its own stage (``reset(batch)``,
``step(x, counts, out)`` writing the step's currents into ``out``), for a chip whose synapse format is not a
conv or dense op; the engine runs it over a tile one step after the other.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from neuro import encode, graph, kernels
from neuro.errors import NeuroError
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses

DEFAULT_EVENT_THRESHOLD = 0.03  # below this fraction of non-zero inputs the event path wins (bench_engine.py: crossover 2-5 %)
IM2COL_BYTES = 1 << 19  # a conv's dense path unrolls this much input at a time (at least one image), kept in cache


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
    """A conv, dense or average-pool op; inputs and outputs flat, images channel-last.

    Stateless, so a tile's L steps x batch images are computed as L x batch rows at once.
    """

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

    def reset(self, batch, tile=1):
        self.out = np.empty((batch * tile, self.out_size), np.float32)
        if self.kind == "conv" and self.pool is None:  # scratch of a fixed size, whatever the batch and tile
            h, w, c, oh, ow = self.geom[:5]
            self.scratch = (np.empty(h * w + 1, np.int64), np.empty(h * w * c, np.int64),
                            np.empty(h * w * c, np.float32), np.empty(len(self.bias), np.float32))
            if self.groups == 1:
                width = self.ksize[0] * self.ksize[1] * c
                self.images_per_block = min(batch * tile, max(1, IM2COL_BYTES // (4 * oh * ow * width)))
                self.cols = np.empty((self.images_per_block * oh * ow, width), np.float32)

    def step(self, x, counts: LayerCounts):
        return self.tile(x[None], [counts])[0]

    def tile(self, x, counts: list[LayerCounts]):
        """x (L, batch, n): L steps' inputs; counts: one LayerCounts per step. Returns (L, batch, out)."""
        nnz = sum(self._count(xt, c) for xt, c in zip(x, counts))
        event = nnz < self.event_threshold * x.size or (self.kind == "conv" and self.groups > 1)
        for c in counts:
            c.event_steps += event
            c.dense_steps += not event
        return self._compute(x.reshape(-1, x.shape[2]), event).reshape(*x.shape[:2], -1)

    def _count(self, x, counts: LayerCounts) -> int:
        """Add one step's synaptic work to ``counts``; returns the step's non-zero inputs."""
        nnz, synops, graded = kernels.activity(x, self.fanout)
        counts.synops += synops
        if graded:
            counts.effective_macs += synops
        else:
            counts.effective_acs += synops
        counts.dense += self.connections * x.shape[0]
        return nnz

    def _compute(self, x, event: bool):
        """The op on rows x (rows, n) by the event-driven or the dense path, into the first rows of ``out``."""
        rows = len(x)
        out = self.out[:rows]
        if self.pool is not None:  # a gather over each window: cheap on either path
            kernels.avg_pool(x, out, *self.geom[:5], *self.pool.kernel, *self.geom[5:])
        elif self.kind == "dense" and event:
            kernels.dense_scatter(x, self.wt, self.bias, out)
        elif self.kind == "dense":
            np.matmul(x, self.wt, out=out)
            out += self.bias
        elif event:
            kernels.conv_event(x, self.wr, self.bias, out, *self.geom, self.cin_g, *self.scratch)
        else:  # im2col + BLAS, a block of images at a time
            positions = self.geom[3] * self.geom[4]
            out2d = out.reshape(-1, self.wm.shape[1])
            for start in range(0, rows, self.images_per_block):
                stop = min(start + self.images_per_block, rows)
                cols = self.cols[:(stop - start) * positions]
                kernels.im2col(x[start:stop], cols, *self.geom[:5], *self.ksize, *self.geom[5:])
                np.matmul(cols, self.wm, out=out2d[start * positions:stop * positions])
            out2d += self.bias
        return out


class NeuronStage:
    """A population: the model's state is (batch, n); its ``step`` is scanned over a tile's steps."""

    def __init__(self, model: NeuronModel, n):
        self.model, self.n = model, n

    def reset(self, batch, tile=1):
        self.model.reset(batch, self.n)
        self.out = np.zeros((tile, batch, self.n), np.float32)

    def tile(self, x, counts: list[LayerCounts], after_step):
        """Currents x (L, batch, n) -> spikes (L, batch, n); ``after_step(t)`` once step t is done (the model
        then holds its state after that step)."""
        for t, c in enumerate(counts):
            c.spikes += self.model.step(x[t], self.out[t])
            after_step(t)
        return self.out[:len(counts)]


class GateStage:
    def __init__(self, op: MaxPoolGate, in_shape, out_shape):
        (c, h, w), (_, oh, ow) = in_shape, out_shape
        self.geom = (h, w, c, oh, ow, *op.kernel, *op.stride)
        self.n_in, self.n_out = c * h * w, c * oh * ow

    def reset(self, batch, tile=1):
        self.counts = np.zeros((batch, self.n_in), np.float32)
        self.out = np.zeros((tile, batch, self.n_out), np.float32)

    def tile(self, x, counts):
        for t in range(len(counts)):  # the gate keeps spike counts: one step after the other
            kernels.maxpool_gate(x[t], self.counts, self.out[t], *self.geom)
        return self.out[:len(counts)]


class PassStage:
    """Flatten: the flat channel-last buffer stays as it is (the next Dense is permuted instead)."""

    def reset(self, batch, tile=1):
        pass

    def tile(self, x, counts):
        return x


class ScannedStage:
    """A chip's own synapse stage (``reset(batch)``, ``step(x, counts, out)``) run over a tile step by step, writing
    each step's currents straight into the tile's buffer."""

    def __init__(self, stage, out_size):
        self.stage, self.out_size = stage, out_size

    def reset(self, batch, tile=1):
        self.stage.reset(batch)
        self.out = np.empty((tile, batch, self.out_size), np.float32)

    def tile(self, x, counts):
        for t, c in enumerate(counts):
            self.stage.step(x[t], c, self.out[t])
        return self.out[:len(counts)]


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
    """The engine's thread count when none is given: ``$NEURO_THREADS`` if set (a sweep's workers set it so
    that they do not oversubscribe the cores), else one per CPU (results do not depend on it)."""
    given = os.environ.get("NEURO_THREADS", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise NeuroError(f"NEURO_THREADS is {given!r}: set it to a whole number of threads, 1 or more, or unset it")
        return int(given)
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
                    stage = ScannedStage(syn.stage(in_shape, out_shape, pending_perm), int(np.prod(out_shape)))
                    pending_perm = None
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
            progress: bool = True, time_batch: int | None = None) -> SimResult:
        """Simulate ``images`` (N, C, H, W) for ``timesteps`` steps each; accuracy after every step.

        ``encoding``: "current", "rate", or an object with ``for_batch(images, start)`` like
        ``encode.Encoder`` (e.g. a recorded spike train); rate spikes depend on the seed and each
        image's index only, not on the batch size or thread count. ``record_counts`` keeps each neuron's total spikes;
        ``record_steps`` keeps every step's spikes and membrane potential (memory grows with T).
        ``time_batch``: steps per tile, each stage running a tile's steps at once (None: 1, step by step); memory
        grows with it (module docstring). Chip backends give the same bits; float results differ at most where
        the order of a float sum does (a product over more rows, or the other synaptic path for a tile).
        """
        self.snn.check_input(images)
        if timesteps < 1:
            raise NeuroError(f"timesteps must be at least 1, got {timesteps}")
        if batch_size < 1:
            raise NeuroError(f"batch_size must be at least 1, got {batch_size}")
        if time_batch is not None and (isinstance(time_batch, bool) or not isinstance(time_batch, (int, np.integer))
                                       or time_batch < 1):
            raise NeuroError(f"time_batch must be a whole number of steps of 1 or more (or None), got {time_batch!r}")
        if len(images) != len(labels):
            raise NeuroError(f"{len(images)} images but {len(labels)} labels")
        encoder = encode.Encoder(encoding, seed) if isinstance(encoding, str) else encoding
        labels = np.asarray(labels)
        n = len(images)
        tile = min(int(time_batch or 1), timesteps)
        sizes = [int(np.prod(s)) for s in self.neuron_shapes]
        rec = _Recording(n, timesteps, sizes, record_counts, record_steps, self.stages)
        by_step = np.zeros((len(self.workers), timesteps, len(self.names), len(LAYER_COUNT_FIELDS)))
        correct = np.zeros((len(self.workers), timesteps), np.int64)
        predictions = np.zeros(n, np.int64)
        from threadpoolctl import threadpool_limits   # here, not at import: `neuro chips` stays fast
        from tqdm.auto import tqdm

        bar = tqdm(total=n * timesteps, unit="img-step", disable=not progress, leave=False, desc=f"simulate T={timesteps}")

        def work(w: int, rows: slice):
            inputs = encoder.for_batch(images[rows], rows.start)
            predictions[rows] = self._run_slice(self.workers[w], labels[rows], timesteps, tile, inputs, by_step[w],
                                                correct[w], rec, rows, bar)

        with bar, ThreadPoolExecutor(len(self.workers)) as pool, threadpool_limits(1, user_api="blas"):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                bounds = np.linspace(start, stop, len(self.workers) + 1).astype(int)
                jobs = [pool.submit(work, w, slice(a, b)) for w, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
                        if b > a]
                for job in jobs:
                    job.result()
        by_step = by_step.sum(axis=0)
        layers = [LayerCounts(name, getattr(stage, "n", 0)) for name, stage in zip(self.names, self.stages)]
        for layer, totals in zip(layers, by_step.sum(axis=0)):
            for f, v in zip(LAYER_COUNT_FIELDS, totals):
                setattr(layer, f, type(getattr(layer, f))(v))
        result = SimResult(n, timesteps, correct.sum(axis=0), layers, predictions, counts_by_step=by_step)
        return rec.finish(result, self.neuron_shapes)

    def _run_slice(self, stages, labels, timesteps, tile, inputs, by_step, correct, rec, rows, bar):
        """Run one slice of images through ``stages`` for all steps, ``tile`` steps at a time; fills ``by_step``
        (step, layer, field) and ``correct``; returns the final predictions."""
        batch = len(labels)
        static_first = inputs.static and isinstance(stages[0], SynapseStage)
        for k, stage in enumerate(stages):  # a static first layer is computed once, for one step
            stage.reset(batch, 1 if k == 0 and static_first else tile)
        neuron_stages = [s for s in stages if isinstance(s, NeuronStage)]
        output = neuron_stages[-1]
        out_counts = np.zeros((batch, output.n), np.float32) if self.snn.readout == "spikes" else None
        x_in = None if inputs.static else np.empty((tile, batch, int(np.prod(self.snn.input_shape))), np.float32)
        first_work = None  # the first stage's counts of one step, reused while its input is static
        pred, t0 = None, 0

        def after_step(j, stage, t):  # population j has done step t of the tile
            nonlocal pred
            rec.add(j, stage.out[t], stage.model.v, rows, t0 + t)
            if stage is output:
                if out_counts is not None:
                    out_counts[:] += stage.out[t]
                pred = self._predict(output, out_counts)
                correct[t0 + t] += int((pred == labels).sum())
                bar.update(batch)

        hooks = {id(s): functools.partial(after_step, j, s) for j, s in enumerate(neuron_stages)}
        for t0 in range(0, timesteps, tile):
            steps = min(tile, timesteps - t0)
            counts = [[LayerCounts(name) for name in self.names] for _ in range(steps)]  # [step][layer]
            if inputs.static:
                x = _repeat(inputs.step(), steps)
            else:
                for t in range(steps):
                    x_in[t] = inputs.step()
                x = x_in[:steps]
            for k, stage in enumerate(stages):
                layer = [c[k] for c in counts]
                if k == 0 and static_first:
                    if first_work is None:
                        stage.step(x[0], layer[0])
                        first_work = {f: getattr(layer[0], f) for f in _WORK_FIELDS}
                        layer = layer[1:]
                    for c in layer:  # same input every step: reuse the current, count the work
                        for f, v in first_work.items():
                            setattr(c, f, v)
                    x = _repeat(stage.out, steps)
                elif isinstance(stage, NeuronStage):
                    x = stage.tile(x, layer, hooks[id(stage)])
                else:
                    x = stage.tile(x, layer)
            for t, step_counts in enumerate(counts):
                by_step[t0 + t] += [[getattr(c, f) for f in LAYER_COUNT_FIELDS] for c in step_counts]
        return pred

    def _predict(self, output: NeuronStage, out_counts) -> np.ndarray:
        v = output.model.potential()
        if out_counts is None:
            return v.argmax(axis=1)
        return (out_counts + 0.25 * np.clip(v, -1, 1)).argmax(axis=1)  # counts first, V breaks ties


class _Recording:
    """Optional per-neuron spike totals and per-step traces, filled slice by slice, step by step."""

    def __init__(self, n, timesteps, sizes, counts: bool, steps: bool, stages):
        self.totals = [np.zeros((n, m), np.float32) for m in sizes] if counts else None
        self.steps = None
        if steps:
            neuron_stages = [s for s in stages if isinstance(s, NeuronStage)]
            for stage in neuron_stages:
                stage.reset(1)  # to learn each model's voltage dtype
            self.steps = [(np.zeros((n, timesteps, m), np.uint8), np.zeros((n, timesteps, m), s.model.v.dtype))
                          for m, s in zip(sizes, neuron_stages)]

    def add(self, j: int, spikes, v, rows, t):
        """Population ``j``'s spikes and V after step ``t``."""
        if self.totals is not None:
            self.totals[j][rows] += spikes
        if self.steps is not None:
            sp, vs = self.steps[j]
            sp[rows, t] = spikes
            vs[rows, t] = v

    def finish(self, result: SimResult, shapes) -> SimResult:
        if self.totals is not None:
            result.spike_counts = [_to_chw(t, s) for t, s in zip(self.totals, shapes)]
        if self.steps is not None:
            result.traces = [dict(spikes=_to_chw(sp, s), v=_to_chw(v, s)) for (sp, v), s in zip(self.steps, shapes)]
        return result


_WORK_FIELDS = ("synops", "effective_acs", "effective_macs", "dense")


def _repeat(x: np.ndarray, steps: int) -> np.ndarray:
    """(steps, *x.shape): ``x`` at every step, without copying."""
    return np.lib.stride_tricks.as_strided(x, (steps, *x.shape), (0, *x.strides))


def simulate(snn: SNN, images, labels, timesteps, **kwargs) -> SimResult:
    """One-call form of ``Engine(snn).run(...)``."""
    engine_kwargs = {k: kwargs.pop(k) for k in ("backend", "event_threshold", "threads") if k in kwargs}
    return Engine(snn, **engine_kwargs).run(images, labels, timesteps, **kwargs)
