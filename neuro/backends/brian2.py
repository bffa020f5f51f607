"""The float SNN in Brian2: a cross-check of ``neuro.sim`` by an independent simulator.

Every ``Neurons`` op becomes a ``NeuronGroup`` (variables ``v`` and a constant current ``b``), every
chain of linear ops between two populations (Conv2d/Dense/AvgPool2d, graph.Flatten) one ``Synapses``
object with ``on_pre: v_post += w`` whose explicit (pre, post, w) list is the composed linear map;
its bias becomes part of ``b``. The linear ops before the first population act on the constant
input current (encoding "current"), so that population's ``b`` is W x + b of each image. All images
run at once as separate blocks of neurons. Neuron index = flat (C, H, W) index within an image.

Brian2 would deliver spikes of population l to l+1 one step later; the engine propagates within a
step. So, with dt = 1 ms = one step: every population does ``v = (1 - leak) v + b`` in the
``groups`` slot; in the ``thresholds`` slot the thresholder of population k runs at order 2k and
the pathway from k into k+1 at order 2k + 1 (delay 0: spikes pushed and delivered in one call);
resets run in the ``resets`` slot. Arithmetic is float64: the counts equal the engine's wherever
its float32 sums are exact (e.g. dyadic weights, thresholds and pixels of small magnitude).
"""

from __future__ import annotations

import numpy as np

from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses


def _brian2():
    try:
        import brian2
    except ImportError:
        raise NeuroError("brian2 is not installed: install the extra with `pip install neuro[brian2]`") from None
    return brian2


def connections(op, in_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pre, post, w, bias) of a Conv2d/Dense/AvgPool2d: out = bias + sum of w x[pre] into out[post].

    Indices are flat (C, H, W) indices; ``bias`` has one entry per output.
    """
    if isinstance(op, graph.AvgPool2d):
        op = op.as_conv(in_shape[0])
    weight, bias = op.weight.astype(np.float64), op.bias.astype(np.float64)
    if isinstance(op, graph.Dense):
        post, pre = np.nonzero(weight)
        return pre, post, weight[post, pre], bias
    (_, h, w), (o_ch, oh, ow) = in_shape, op.output_shape(in_shape)
    _, cin_g, kh, kw = weight.shape
    o, c, ky, kx, oy, ox = np.ix_(*(np.arange(n) for n in (o_ch, cin_g, kh, kw, oh, ow)))
    iy, ix = oy * op.stride[0] + ky - op.padding[0], ox * op.stride[1] + kx - op.padding[1]
    ch = (o // (o_ch // op.groups)) * cin_g + c
    wt = weight[o, c, ky, kx]
    keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) & (wt != 0)
    pre, post, wt = np.broadcast_arrays((ch * h + iy) * w + ix, (o * oh + oy) * ow + ox, wt)
    return pre[keep], post[keep], wt[keep], np.repeat(bias, oh * ow)


def compose(first, second, n_out: int):
    """(pre, post, w, bias) of ``second`` after ``first`` (both as from ``connections``), duplicates summed."""
    p1, q1, w1, b1 = first
    p2, q2, w2, b2 = second
    by_pre = np.argsort(p2, kind="stable")
    fan = np.bincount(p2, minlength=len(b1))
    starts = np.concatenate(([0], np.cumsum(fan)[:-1]))
    reps = fan[q1]
    i1 = np.repeat(np.arange(len(q1)), reps)
    within = np.arange(len(i1)) - np.repeat(np.cumsum(reps) - reps, reps)
    i2 = by_pre[starts[q1[i1]] + within]
    key, inverse = np.unique(p1[i1].astype(np.int64) * n_out + q2[i2], return_inverse=True)
    w = np.bincount(inverse, weights=w1[i1] * w2[i2], minlength=len(key))
    bias = b2 + np.bincount(q2, weights=w2 * b1[p2], minlength=n_out)
    keep = w != 0
    return key[keep] // n_out, key[keep] % n_out, w[keep], bias


def build(snn: SNN, images: np.ndarray):
    """A Brian2 ``Network`` of ``snn`` for ``images`` (N, C, H, W) with constant-current input.

    Returns the network and, per ``Neurons`` op, its SpikeMonitor (None for a non-spiking population).
    """
    b2 = _brian2()
    snn.check_input(images)
    for i, op in enumerate(snn.ops):
        if isinstance(op, MaxPoolGate):
            raise NeuroError(f"op {i} (MaxPoolGate) is not supported by the Brian2 backend: "
                             "use average pooling to cross-check with Brian2")
        if isinstance(op, Neurons) and not op.spiking and i != len(snn.ops) - 1:
            raise NeuroError(f"op {i} is a non-spiking Neurons op inside the network: "
                             "only the output population may be non-spiking")
    n_img, dt = len(images), 1 * b2.ms
    shapes = snn.shapes()
    x = np.asarray(images, np.float32)  # the input current until the first population
    pending = None  # (pre, post, w, bias) from the last population to the current point
    groups, monitors, objects = [], [], []
    for i, op in enumerate(snn.ops):
        in_shape, n = shapes[i], int(np.prod(shapes[i + 1]))
        if isinstance(op, Synapses):
            if pending is None:
                x = op.op.forward(x)
            else:
                pending = compose(pending, connections(op.op, in_shape), n)
        elif isinstance(op, graph.Flatten):
            if pending is None:
                x = x.reshape(n_img, -1)
        else:
            k = len(groups)
            group = b2.NeuronGroup(
                n_img * n, "v : 1\nb : 1 (constant)", dt=dt,
                threshold="v >= theta" if op.spiking else None,
                reset=("v -= theta" if op.reset == "subtract" else "v = 0") if op.spiking else None,
                namespace={"theta": float(op.threshold), "decay": 1.0 - float(op.leak)})
            group.v = op.v_init * op.threshold
            group.run_regularly("v = decay * v + b", when="groups")
            if pending is None:
                group.b = np.asarray(x, np.float64).reshape(-1)
            else:
                pre, post, w, bias = pending
                group.b = np.tile(bias, n_img)
                src_n = int(groups[-1].N) // n_img
                blocks = np.arange(n_img)[:, None]
                syn = b2.Synapses(groups[-1], group, "w : 1 (constant)", on_pre="v_post += w", delay=0 * b2.ms,
                                  dt=dt)
                syn.connect(i=(pre + blocks * src_n).ravel(), j=(post + blocks * n).ravel())
                syn.w = np.tile(w, n_img)
                syn.pre.when, syn.pre.order = "thresholds", 2 * k - 1
                objects.append(syn)
            if op.spiking:
                group.thresholder["spike"].when, group.thresholder["spike"].order = "thresholds", 2 * k
                monitors.append(b2.SpikeMonitor(group, record=False, when="end"))
            else:
                monitors.append(None)
            groups.append(group)
            pending = (np.arange(n), np.arange(n), np.ones(n), np.zeros(n))
    net = b2.Network(*groups, *objects, *(m for m in monitors if m is not None))
    return net, monitors


def spike_counts(snn: SNN, images: np.ndarray, timesteps: int) -> list[np.ndarray]:
    """Total spikes per neuron of every ``Neurons`` op, (N, *shape) each: ``SimResult.spike_counts`` in Brian2."""
    b2 = _brian2()
    if timesteps < 1:
        raise NeuroError(f"timesteps must be at least 1, got {timesteps}")
    net, monitors = build(snn, images)
    target = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    try:
        net.run(timesteps * b2.ms)
    finally:
        b2.prefs.codegen.target = target
    shapes = [s for s, op in zip(snn.shapes()[1:], snn.ops) if isinstance(op, Neurons)]
    return [np.zeros((len(images), *s), np.int64) if m is None
            else np.asarray(m.count, np.int64).reshape(len(images), *s) for m, s in zip(monitors, shapes)]
