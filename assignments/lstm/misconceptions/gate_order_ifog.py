TITLE = 'Gates read in the order [i | f | o | g]'
AFFECTS = ('lstm_gates',)
SECTION = '3.3, gate layout [i | f | g | o]'
HINT = (
    "The four blocks of the pre-activation are input, forget, candidate, output (PyTorch's "
    'order): the candidate g is the third block and the output gate o the fourth. Your code '
    'takes them the other way round, consistently, so your gradients agree with your own '
    "forward pass but not with the chapter's weights."
)

import numpy as np


def lstm_gates(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b                    # (N, 4H) pre-activations
    i = sigmoid(a[:, 0 * H:1 * H])
    f = sigmoid(a[:, 1 * H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:4 * H])
    return i, f, g, o


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, Wx, Wh, b)
    a_x = x @ Wx + b                            # (N, T, 4H)
    gates = np.empty((N, T, 4 * H), dtype)      # activated [i | f | g | o] of every step
    c = np.empty((N, T, H), dtype)
    h = np.empty((N, T, H), dtype)
    prev_h, prev_c = h0, np.zeros((N, H), dtype)
    for t in range(T):
        a = a_x[:, t] + prev_h @ Wh             # (N, 4H)
        i = sigmoid(a[:, 0 * H:1 * H])
        f = sigmoid(a[:, 1 * H:2 * H])
        o = sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:4 * H])
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        c[:, t] = f * prev_c + i * g
        h[:, t] = o * np.tanh(c[:, t])
        prev_h, prev_c = h[:, t], c[:, t]
    cache = (x, h0, Wx, Wh, gates, c, h)
    return h, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c * tanh_c)   # next_h = o * tanh(next_c)
    da = np.concatenate([
        dc * g * i * (1.0 - i),              # next_c = f * prev_c + i * g; i = sigmoid(a_i)
        dc * prev_c * f * (1.0 - f),         # f = sigmoid(a_f)
        dnext_h * tanh_c * o * (1.0 - o),    # o comes third
        dc * i * (1.0 - g * g),              # g comes last
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
        dc = dprev_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
        da[:, t] = np.concatenate([
            dc * g * i * (1.0 - i),
            dc * prev_c * f * (1.0 - f),
            dnext_h * tanh_c * o * (1.0 - o),
            dc * i * (1.0 - g * g),
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
