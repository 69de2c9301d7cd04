TITLE = 'Upstream cell gradient dnext_c dropped'
AFFECTS = ('lstm_step_backward', 'lstm_backward')
SECTION = '3.4, exercise lstm_step_backward'
HINT = (
    'The cell state reaches the loss two ways: through h_t = o_t * tanh(c_t) and directly '
    "through the next step's cell. The gradient on c_t is the sum of both, so dnext_c must be"
    ' added, not forgotten.'
)

import numpy as np


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    dc = dnext_h * o * (1.0 - tanh_c * tanh_c)   # next_h = o * tanh(next_c)
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
    db = da.sum(axis=0)
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
        dc = dnext_h * o * (1.0 - tanh_c * tanh_c)
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
