TITLE = 'Initial hidden state h0 ignored'
AFFECTS = ('lstm_forward',)
SECTION = '3.4, exercise lstm_forward'
HINT = (
    'The first step must start from the h0 you are given, not from zeros; only the initial '
    'cell state is zero. Tests with a zero h0 cannot see this mistake.'
)

import numpy as np


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, Wx, Wh, b)
    a_x = x @ Wx + b                            # (N, T, 4H)
    gates = np.empty((N, T, 4 * H), dtype)      # activated [i | f | g | o] of every step
    c = np.empty((N, T, H), dtype)
    h = np.empty((N, T, H), dtype)
    prev_h, prev_c = np.zeros((N, H), dtype), np.zeros((N, H), dtype)
    for t in range(T):
        a = a_x[:, t] + prev_h @ Wh             # (N, 4H)
        i = sigmoid(a[:, 0 * H:1 * H])
        f = sigmoid(a[:, 1 * H:2 * H])
        g = np.tanh(a[:, 2 * H:3 * H])
        o = sigmoid(a[:, 3 * H:4 * H])
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        c[:, t] = f * prev_c + i * g
        h[:, t] = o * np.tanh(c[:, t])
        prev_h, prev_c = h[:, t], c[:, t]
    cache = (x, h0, Wx, Wh, gates, c, h)
    return h, cache
