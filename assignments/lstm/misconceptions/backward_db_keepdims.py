TITLE = 'db summed with keepdims: a (1, 4H) row instead of (4H,)'
AFFECTS = ('lstm_step_backward', 'lstm_backward')
SECTION = '3.4, exercise lstm_step_backward'
HINT = (
    'b has shape (4H,), and its gradient must have the same shape. Summing over the batch '
    'with keepdims leaves a row of shape (1, 4H), which broadcasting would silently spread '
    'over later updates.'
)

import numpy as np


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c * tanh_c)   # next_h = o * tanh(next_c)
    da = np.concatenate([
        dc * g * i * (1.0 - i),              # next_c = f * prev_c + i * g; i = sigmoid(a_i)
        dc * prev_c * f * (1.0 - f),         # f = sigmoid(a_f)
        dc * i * (1.0 - g * g),              # g = tanh(a_g)
        dnext_h * tanh_c * o * (1.0 - o),    # next_h = o * tanh(next_c); o = sigmoid(a_o)
    ], axis=1)                               # (N, 4H) gradient of the pre-activations
    dprev_c = dc * f
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0, keepdims=True)
    return dx, dprev_h, dprev_c, dWx, dWh, db


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
    db = da_rows.sum(axis=0, keepdims=True)
    return dx, dprev_h, dWx, dWh, db
