"""numba kernels of the engine's hot loop, serial and GIL-free: the engine runs slices of a batch in
threads (neuro.sim.Engine). Images are flat (batch, H*W*C) in channel-last order so the
innermost loops run over contiguous output channels.

The event-driven kernels touch only non-zero inputs, so their work is proportional to activity; the
dense path is im2col + BLAS (see neuro.sim).
"""

from __future__ import annotations

import numpy as np

from neuro.jit import njit


@njit(nogil=True, fastmath=True, cache=True)
def active_inputs(xb, HW, C, start, chan, vals):
    """Compress one image's non-zero inputs into per-position lists (CSR): start, channel, value."""
    k = 0
    for q in range(HW):
        start[q] = k
        for c in range(C):
            v = xb[q * C + c]
            if v != 0:
                chan[k], vals[k] = c, v
                k += 1
    start[HW] = k


@njit(nogil=True, fastmath=True, cache=True)
def _conv_gather_image(xb, wflat, bias, ob, H, W, C, OH, OW, kh, kw, sy, sx, py, px, cin_g, start, chan, vals, acc):
    active_inputs(xb, H * W, C, start, chan, vals)
    og = wflat.shape[1]
    for oy in range(OH):
        for ox in range(OW):
            acc[:] = bias
            for ky in range(kh):
                iy = oy * sy + ky - py
                if iy < 0 or iy >= H:
                    continue
                for kx in range(kw):
                    ix = ox * sx + kx - px
                    if ix < 0 or ix >= W:
                        continue
                    q = iy * W + ix
                    for k in range(start[q], start[q + 1]):
                        c, v = chan[k], vals[k]
                        wrow = wflat[(c * kh + ky) * kw + kx]
                        g0 = (c // cin_g) * og
                        for j in range(og):
                            acc[g0 + j] += v * wrow[j]
            ob[oy * OW + ox] = acc


@njit(nogil=True, cache=True)
def conv_event(x, wr, bias, out, H, W, C, OH, OW, sy, sx, py, px, cin_g, start, chan, vals, acc):
    """out[b] = bias + conv(x[b]) touching only non-zero inputs: the event-driven path.

    Output-stationary: each output position sums over the active inputs in its window (kept in
    per-position lists), so its accumulator stays in cache; wr is (C, kh, kw, O/groups). start, chan,
    vals, acc are scratch buffers for one image at a time: (H*W + 1,), (H*W*C,) twice, (O,).
    """
    kh, kw, og = wr.shape[1], wr.shape[2], wr.shape[3]
    wflat = wr.reshape(C * kh * kw, og)
    out3 = out.reshape(x.shape[0], OH * OW, bias.shape[0])
    for b in range(x.shape[0]):
        _conv_gather_image(x[b], wflat, bias, out3[b], H, W, C, OH, OW, kh, kw, sy, sx, py, px, cin_g,
                           start, chan, vals, acc)


@njit(nogil=True, cache=True)
def avg_pool(x, out, H, W, C, OH, OW, kh, kw, sy, sx, py, px):
    """Mean over each window, padding counted as zeros (graph.AvgPool2d).

    Each output row is summed from 0 tap by tap (ky, then kx) through contiguous row slices, which numba
    vectorises (20-35x faster than indexing the flat image, same sums in the same order: docs/results.md)."""
    scale = np.float32(1.0 / (kh * kw))
    n = OW * C
    for b in range(x.shape[0]):
        xb, ob = x[b], out[b]
        for oy in range(OH):
            orow = ob[oy * n:(oy + 1) * n]
            orow[:] = 0.0
            for ky in range(kh):
                iy = oy * sy + ky - py
                if iy < 0 or iy >= H:
                    continue
                irow = xb[iy * W * C:(iy + 1) * W * C]
                for kx in range(kw):
                    for ox in range(OW):
                        ix = ox * sx + kx - px
                        if ix >= 0 and ix < W:
                            src, dst = irow[ix * C:(ix + 1) * C], orow[ox * C:(ox + 1) * C]
                            for c in range(C):
                                dst[c] += src[c]
            for j in range(n):
                orow[j] *= scale


@njit(nogil=True, cache=True)
def im2col(x, cols, H, W, C, OH, OW, kh, kw, sy, sx, py, px):
    """cols[b*OH*OW + p, (ky*kw + kx)*C + c] = x_padded[b, oy*sy + ky, ox*sx + kx, c].

    A window inside the image copies one contiguous run of kw*C inputs per kernel row (channel-last), the
    edges tap by tap (3-11x faster than copying tap by tap throughout: docs/results.md)."""
    n = kw * C
    for b in range(x.shape[0]):
        xb = x[b]
        for oy in range(OH):
            for ox in range(OW):
                row = cols[b * OH * OW + oy * OW + ox]
                x0 = ox * sx - px
                inside = x0 >= 0 and x0 + kw <= W
                for ky in range(kh):
                    iy = oy * sy + ky - py
                    seg = row[ky * n:(ky + 1) * n]
                    if iy < 0 or iy >= H:
                        seg[:] = 0.0
                    elif inside:
                        src = xb[(iy * W + x0) * C:(iy * W + x0) * C + n]
                        for j in range(n):
                            seg[j] = src[j]
                    else:
                        for kx in range(kw):
                            ix = x0 + kx
                            for c in range(C):
                                seg[kx * C + c] = xb[(iy * W + ix) * C + c] if 0 <= ix < W else 0.0


@njit(nogil=True, cache=True)
def dense_scatter(x, wt, bias, out):
    """out[b] = bias + sum over non-zero x[b, i] of x[b, i] * wt[i] (wt is W transposed, (in, out))."""
    n_in, n_out = wt.shape
    for b in range(x.shape[0]):
        ob = out[b]
        for o in range(n_out):
            ob[o] = bias[o]
        xb = x[b]
        for i in range(n_in):
            v = xb[i]
            if v != 0:
                for o in range(n_out):
                    ob[o] += v * wt[i, o]


@njit(nogil=True, fastmath=True, cache=True)
def activity(x, fanout):
    """(non-zero inputs, synaptic ops = sum of their fan-outs, inputs that are neither 0 nor 1)."""
    batch, n = x.shape
    nnz, synops, graded = np.zeros(batch, np.int64), np.zeros(batch), np.zeros(batch, np.int64)
    for b in range(batch):
        xb = x[b]
        a, s, g = 0, 0.0, 0
        for i in range(n):  # branch-free so it vectorises
            nonzero = xb[i] != 0
            a += nonzero
            s += fanout[i] * nonzero
            g += nonzero & (xb[i] != 1)
        nnz[b], synops[b], graded[b] = a, s, g
    return nnz.sum(), synops.sum(), graded.sum()


@njit(nogil=True, cache=True)
def integrate_fire(current, v, spikes, threshold, decay, subtract):
    """V <- decay V + I; spike where V >= threshold, then V -= threshold (subtract) or V = 0. Returns spikes."""
    total = 0
    for b in range(v.shape[0]):
        for i in range(v.shape[1]):
            vv = v[b, i] * decay + current[b, i]
            if vv >= threshold:
                spikes[b, i] = 1.0
                vv = vv - threshold if subtract else 0.0
                total += 1
            else:
                spikes[b, i] = 0.0
            v[b, i] = vv
    return total


@njit(nogil=True, cache=True)
def maxpool_gate(x, counts, out, H, W, C, OH, OW, kh, kw, sy, sx):
    """Accumulate input spike counts, then each window passes the input with the highest count (first wins)."""
    for b in range(x.shape[0]):
        cb, xb, ob = counts[b], x[b], out[b]
        for i in range(xb.shape[0]):
            cb[i] += xb[i]
        for oy in range(OH):
            for ox in range(OW):
                for c in range(C):
                    best, best_i = -1.0, 0
                    for ky in range(kh):
                        for kx in range(kw):
                            i = ((oy * sy + ky) * W + ox * sx + kx) * C + c
                            if cb[i] > best:
                                best, best_i = cb[i], i
                    ob[(oy * OW + ox) * C + c] = xb[best_i]


def conv_fanout(wr: np.ndarray, H, W, OH, OW, sy, sx, py, px) -> np.ndarray:
    """Synapses leaving each input (H*W*C, channel-last) of a conv: valid kernel taps x non-zero weights."""
    return conv_tap_fanout((wr != 0).sum(axis=3), H, W, OH, OW, sy, sx, py, px)


def conv_tap_fanout(taps: np.ndarray, H, W, OH, OW, sy, sx, py, px) -> np.ndarray:
    """Sum over the valid kernel taps reaching each input (H*W*C, channel-last) of ``taps`` (C, kh, kw)."""
    kh, kw = taps.shape[1], taps.shape[2]

    def valid(n_in, n_out, s, p, k):
        t = np.arange(n_in)[None, :] + p - np.arange(k)[:, None]
        return ((t >= 0) & (t % s == 0) & (t // s < n_out)).astype(np.float64)  # (k, n_in)

    f = np.einsum("ay,bx,cab->yxc", valid(H, OH, sy, py, kh), valid(W, OW, sx, px, kw), taps.astype(np.float64))
    return f.reshape(-1)
