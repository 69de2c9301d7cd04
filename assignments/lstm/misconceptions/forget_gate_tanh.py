TITLE = 'Forget gate squashed with tanh'
AFFECTS = ('lstm_gates',)
SECTION = '3.3, equation for f_t'
HINT = (
    'The forget gate decides what fraction of the old memory to keep, so it must lie between '
    '0 and 1: it uses the sigmoid, not tanh. With tanh it can go negative and flip the sign '
    'of the cell state.'
)

import numpy as np


def lstm_gates(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b                    # (N, 4H) pre-activations
    i = sigmoid(a[:, 0 * H:1 * H])
    f = np.tanh(a[:, 1 * H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:4 * H])
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
        f = np.tanh(a[:, 1 * H:2 * H])
        g = np.tanh(a[:, 2 * H:3 * H])
        o = sigmoid(a[:, 3 * H:4 * H])
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        c[:, t] = f * prev_c + i * g
        h[:, t] = o * np.tanh(c[:, t])
        prev_h, prev_c = h[:, t], c[:, t]
    cache = (x, h0, Wx, Wh, gates, c, h)
    return h, cache
