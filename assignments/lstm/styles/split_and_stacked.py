TITLE = 'Gates cut with np.split, a sequence cache of stacked arrays, weight gradients summed per step'

import numpy as np


def lstm_gates(x, prev_h, Wx, Wh, b):
    a = np.dot(x, Wx) + np.dot(prev_h, Wh) + b
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    return sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    c = np.zeros((N, T, H))
    gates = np.zeros((N, T, 4, H))
    h_prev, c_prev = h0.copy(), np.zeros((N, H))
    for t in range(T):
        i, f, g, o = lstm_gates(x[:, t], h_prev, Wx, Wh, b)
        c_prev = f * c_prev + i * g
        h_prev = o * np.tanh(c_prev)
        gates[:, t] = np.stack([i, f, g, o], axis=1)
        c[:, t], h[:, t] = c_prev, h_prev
    return h, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "gates": gates, "c": c, "h": h}


def lstm_backward(dh, cache):
    x, h0, Wx, Wh = cache["x"], cache["h0"], cache["Wx"], cache["Wh"]
    gates, c, h = cache["gates"], cache["c"], cache["h"]
    N, T, H = h.shape
    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)
    dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        i, f, g, o = gates[:, t, 0], gates[:, t, 1], gates[:, t, 2], gates[:, t, 3]
        c_prev = c[:, t - 1] if t > 0 else np.zeros((N, H))
        h_prev = h[:, t - 1] if t > 0 else h0
        dh_t = dh[:, t] + dh_next
        tanh_c = np.tanh(c[:, t])
        dc = dc_next + dh_t * o * (1 - tanh_c ** 2)
        da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dc * i * (1 - g ** 2), dh_t * tanh_c * o * (1 - o)], axis=1)
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        dWh += h_prev.T @ da
        db += da.sum(axis=0)
        dh_next = da @ Wh.T
        dc_next = dc * f
    return dx, dh_next, dWx, dWh, db
