TITLE = 'Weight gradients not summed over time'
AFFECTS = ('lstm_backward',)
SECTION = '3.4, exercise lstm_backward'
HINT = (
    'The same Wx, Wh and b are used at every time step, so their gradients are the sum of the'
    ' contributions of all steps. Overwriting them in the loop keeps only one step.'
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
        dnext_h = dh[:, t] + dprev_h                 # from the output and from step t + 1
        dc = dprev_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
        da[:, t] = np.concatenate([
            dc * g * i * (1.0 - i),
            dc * prev_c * f * (1.0 - f),
            dc * i * (1.0 - g * g),
            dnext_h * tanh_c * o * (1.0 - o),
        ], axis=1)
        dprev_c = dc * f
        dprev_h = da[:, t] @ Wh.T
        prev_h = h0 if t == 0 else h[:, t - 1]
        dWx = x[:, t].T @ da[:, t]
        dWh = prev_h.T @ da[:, t]
        db = da[:, t].sum(axis=0)
    dx = da @ Wx.T
    return dx, dprev_h, dWx, dWh, db
