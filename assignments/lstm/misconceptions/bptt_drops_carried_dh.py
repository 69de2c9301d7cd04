TITLE = 'Gradient from the next step not added to dh[:, t]'
AFFECTS = ('lstm_backward',)
SECTION = '3.4, exercise lstm_backward'
HINT = (
    'h_t is used twice: by the loss at step t and by step t+1. The gradient on h_t is the sum'
    ' of the upstream dh at step t and the gradient carried back from step t+1.'
)

import numpy as np


def lstm_backward(dh, cache):
    x, h0, Wx, Wh, gates, c, h = cache
    N, T, H = h.shape
    da = np.empty_like(gates)                    # (N, T, 4H)
    dprev_h = np.zeros_like(h0, dtype=gates.dtype)
    dprev_c = np.zeros_like(dprev_h)
    zeros = np.zeros_like(dprev_h)
    for t in reversed(range(T)):
        i, f, g, o = np.split(gates[:, t], 4, axis=1)
        prev_c = c[:, t - 1] if t > 0 else zeros
        tanh_c = np.tanh(c[:, t])
        dnext_h = dh[:, t]                 # from the output and from step t + 1
        dc = dprev_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
        da[:, t] = np.concatenate([
            dc * g * i * (1.0 - i),
            dc * prev_c * f * (1.0 - f),
            dc * i * (1.0 - g * g),
            dnext_h * tanh_c * o * (1.0 - o),
        ], axis=1)
        dprev_c = dc * f
        dprev_h = da[:, t] @ Wh.T
    prev_h = np.concatenate([h0[:, None], h[:, :-1]], axis=1)   # (N, T, H): input h of each step
    da_rows = da.reshape(N * T, 4 * H)
    dx = da @ Wx.T
    dWx = x.reshape(N * T, -1).T @ da_rows
    dWh = prev_h.reshape(N * T, H).T @ da_rows
    db = da_rows.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db
