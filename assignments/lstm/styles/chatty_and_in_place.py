TITLE = 'Prints, warnings and in-place updates of its own copies; masked sigmoid; math.sqrt norm'

import numpy as np


def sigmoid(x):
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def lstm_gates(x, prev_h, Wx, Wh, b):
    import warnings
    print("lstm_gates: x", x.shape, "prev_h", prev_h.shape)
    if x.shape[1] == prev_h.shape[1]:
        warnings.warn("D == H: are you sure the weights are the right way round?")
    H = Wh.shape[0]
    a = x @ Wx
    a += prev_h @ Wh
    a += b
    a[:, :2 * H] = sigmoid(a[:, :2 * H])
    a[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
    a[:, 3 * H:] = sigmoid(a[:, 3 * H:])
    return a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]


def lstm_step_backward(dnext_h, dnext_c, cache):
    import sys
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    print("step backward, batch of", x.shape[0], file=sys.stderr)
    dc = dnext_c.copy()
    dc += dnext_h * o * (1 - tanh_c * tanh_c)
    da = np.empty((x.shape[0], 4 * i.shape[1]))
    H = i.shape[1]
    da[:, :H] = dc * g
    da[:, :H] *= i * (1 - i)
    da[:, H:2 * H] = dc * prev_c * f * (1 - f)
    da[:, 2 * H:3 * H] = dc * i * (1 - g * g)
    da[:, 3 * H:] = dnext_h * tanh_c * o * (1 - o)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(0)


def lstm_backward(dh, cache):
    x, h0, Wx, Wh, gates, c, h = cache
    N, T, H = h.shape
    dh = dh.copy()
    da = np.zeros((N, T, 4 * H))
    dc_next = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        i, f, g, o = (gates[:, t, k * H:(k + 1) * H] for k in range(4))
        c_prev = c[:, t - 1] if t else np.zeros((N, H))
        tc = np.tanh(c[:, t])
        dc = dc_next + dh[:, t] * o * (1 - tc ** 2)
        da[:, t] = np.hstack([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                              dc * i * (1 - g ** 2), dh[:, t] * tc * o * (1 - o)])
        dc_next = dc * f
        if t > 0:
            dh[:, t - 1] += da[:, t] @ Wh.T
    h_in = np.concatenate([h0[:, None, :], h[:, :-1, :]], axis=1)
    dWx = np.einsum("ntd,ntk->dk", x, da)
    dWh = np.einsum("nth,ntk->hk", h_in, da)
    return np.einsum("ntk,dk->ntd", da, Wx), da[:, 0] @ Wh.T, dWx, dWh, da.sum(axis=(0, 1))


def clip_grad_norm(grads, max_norm):
    import math
    import warnings
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    print(f"grad norm {total:.3f} (max {max_norm})")
    if total > max_norm:
        warnings.warn("clipping gradients")
        scale = max_norm / (total + 1e-6)
        return {k: v * scale for k, v in grads.items()}, total
    return dict(grads), total
