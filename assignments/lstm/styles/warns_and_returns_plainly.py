TITLE = ('Its own warnings (a UserWarning, a RuntimeWarning), a NumPy warning in a debug print, gates as a '
         'list, a float from a 0-d sigmoid, the grads dict itself when nothing is clipped')

import numpy as np


def sigmoid(x):
    import warnings
    warnings.warn("sigmoid: using the stable formula")
    e = np.exp(-np.abs(x))
    r = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return float(r) if np.ndim(r) == 0 else r


def lstm_gates(x, prev_h, Wx, Wh, b):
    import warnings
    H = Wh.shape[0]
    a = x @ Wx + prev_h @ Wh + b
    if np.abs(a).max() > 5:
        warnings.warn("some gates are saturated", RuntimeWarning)
    return [sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])]


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, c, caches = np.zeros((N, T, h0.shape[1])), np.zeros_like(h0), []
    prev_h = h0
    for t in range(T):
        prev_h, c, cache = lstm_step_forward(x[:, t], prev_h, c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    print("mean log of h (NaN where h < 0):", np.log(h).mean())
    return h, caches


def lstm_backward(dh, cache):
    N, T, H = dh.shape
    dx = [None] * T
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    dWx, dWh, db = 0.0, 0.0, 0.0
    for t in reversed(range(T)):
        dx[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return np.stack(dx, axis=1), dprev_h, dWx, dWh, db


def clip_grad_norm(grads, max_norm):
    total_norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    if total_norm <= max_norm:
        return grads, total_norm
    scale = max_norm / (total_norm + 1e-6)
    return {k: g * scale for k, g in grads.items()}, total_norm
