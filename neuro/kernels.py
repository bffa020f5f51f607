"""numba kernels of the engine's hot loop. Images are flat (batch, H*W*C) in channel-last order so the
innermost loops run over contiguous output channels.

Scatter kernels are the event-driven path: each non-zero input adds its weights to the outputs it
reaches, so the work is proportional to activity. The dense path is im2col + BLAS (see neuro.sim).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def conv_scatter(x, wr, bias, out, H, W, C, OH, OW, sy, sx, py, px, cin_g):
    """out[b] = bias + conv(x[b]) by scattering each non-zero input through wr (C, kh, kw, O/groups)."""
    kh, kw, og = wr.shape[1], wr.shape[2], wr.shape[3]
    O = bias.shape[0]
    for b in prange(x.shape[0]):
        ob = out[b]
        for p in range(OH * OW):
            for o in range(O):
                ob[p * O + o] = bias[o]
        xb = x[b]
        for iy in range(H):
            for ix in range(W):
                base_in = (iy * W + ix) * C
                for c in range(C):
                    val = xb[base_in + c]
                    if val == 0:
                        continue
                    g0 = (c // cin_g) * og
                    for ky in range(kh):
                        ty = iy + py - ky
                        if ty < 0:
                            break
                        if ty % sy != 0 or ty // sy >= OH:
                            continue
                        oy = ty // sy
                        for kx in range(kw):
                            tx = ix + px - kx
                            if tx < 0:
                                break
                            if tx % sx != 0 or tx // sx >= OW:
                                continue
                            base = (oy * OW + tx // sx) * O + g0
                            for j in range(og):
                                ob[base + j] += val * wr[c, ky, kx, j]


@njit(parallel=True, cache=True)
def im2col(x, cols, H, W, C, OH, OW, kh, kw, sy, sx, py, px):
    """cols[b*OH*OW + p, (ky*kw + kx)*C + c] = x_padded[b, oy*sy + ky, ox*sx + kx, c]."""
    for b in prange(x.shape[0]):
        xb = x[b]
        for oy in range(OH):
            for ox in range(OW):
                row = cols[b * OH * OW + oy * OW + ox]
                for ky in range(kh):
                    iy = oy * sy + ky - py
                    for kx in range(kw):
                        ix = ox * sx + kx - px
                        base = (ky * kw + kx) * C
                        if 0 <= iy < H and 0 <= ix < W:
                            src = (iy * W + ix) * C
                            for c in range(C):
                                row[base + c] = xb[src + c]
                        else:
                            for c in range(C):
                                row[base + c] = 0.0


@njit(parallel=True, cache=True)
def dense_scatter(x, wt, bias, out):
    """out[b] = bias + sum over non-zero x[b, i] of x[b, i] * wt[i] (wt is W transposed, (in, out))."""
    n_in, n_out = wt.shape
    for b in prange(x.shape[0]):
        ob = out[b]
        for o in range(n_out):
            ob[o] = bias[o]
        xb = x[b]
        for i in range(n_in):
            v = xb[i]
            if v != 0:
                for o in range(n_out):
                    ob[o] += v * wt[i, o]


@njit(parallel=True, cache=True)
def activity(x, fanout):
    """(non-zero inputs, synaptic ops = sum of their fan-outs, inputs that are neither 0 nor 1)."""
    nnz, synops, graded = 0, 0.0, 0
    for b in prange(x.shape[0]):
        xb = x[b]
        for i in range(xb.shape[0]):
            v = xb[i]
            if v != 0:
                nnz += 1
                synops += fanout[i]
                if v != 1:
                    graded += 1
    return nnz, synops, graded


@njit(parallel=True, cache=True)
def integrate_fire(current, v, spikes, threshold, decay, subtract):
    """V <- decay V + I; spike where V >= threshold, then V -= threshold (subtract) or V = 0. Returns spikes."""
    total = 0
    for b in prange(v.shape[0]):
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


@njit(parallel=True, cache=True)
def maxpool_gate(x, counts, out, H, W, C, OH, OW, kh, kw, sy, sx):
    """Accumulate input spike counts, then each window passes the input with the highest count (first wins)."""
    for b in prange(x.shape[0]):
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
    kh, kw = wr.shape[1], wr.shape[2]

    def valid(n_in, n_out, s, p, k):
        t = np.arange(n_in)[None, :] + p - np.arange(k)[:, None]
        return ((t >= 0) & (t % s == 0) & (t // s < n_out)).astype(np.float64)  # (k, n_in)

    nz = (wr != 0).sum(axis=3).astype(np.float64)  # (C, kh, kw)
    f = np.einsum("ay,bx,cab->yxc", valid(H, OH, sy, py, kh), valid(W, OW, sx, px, kw), nz)
    return f.reshape(-1)
