TITLE = 'dh0 returned as the zeros it was initialised to'
AFFECTS = ('lstm_backward',)
SECTION = '3.4, exercise lstm_backward'
HINT = (
    'The gradient on h0 is what the loop carries back past the first step, the last gradient '
    'on the previous hidden state it computes. An array of zeros made before the loop and '
    'never assigned afterwards returns nothing of it.'
)

import numpy as np


def lstm_backward(dh, cache):
    x, h0, Wx, Wh, gates, c, h = cache
    N, T, H = h.shape
    da = np.empty_like(gates)                    # (N, T, 4H)
    dh0 = np.zeros_like(h0, dtype=gates.dtype)
    dprev_h = np.zeros_like(h0, dtype=gates.dtype)
    dprev_c = np.zeros_like(dprev_h)
    zeros = np.zeros_like(dprev_h)
    for t in reversed(range(T)):
        i, f, g, o = np.split(gates[:, t], 4, axis=1)
        prev_c = c[:, t - 1] if t > 0 else zeros
        tanh_c = np.tanh(c[:, t])
        dnext_h = dh[:, t] + dprev_h                 # from the output and from step t + 1
        dc = dprev_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
        da_t = da[:, t]                              # (N, 4H), written in place
        da_t[:, 0 * H:1 * H] = dc * g * i * (1.0 - i)
        da_t[:, 1 * H:2 * H] = dc * prev_c * f * (1.0 - f)
        da_t[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        da_t[:, 3 * H:4 * H] = dnext_h * tanh_c * o * (1.0 - o)
        dprev_c = dc * f
        dprev_h = da_t @ Wh.T
    prev_h = np.concatenate([h0[:, None], h[:, :-1]], axis=1)   # (N, T, H): input h of each step
    da_rows = da.reshape(N * T, 4 * H)
    dx = da @ Wx.T
    dWx = x.reshape(N * T, -1).T @ da_rows
    dWh = prev_h.reshape(N * T, H).T @ da_rows
    db = da_rows.sum(axis=0)
    return dx, dh0, dWx, dWh, db
