TITLE = 'Hidden state missing the tanh of the cell'
AFFECTS = ('lstm_step_forward',)
SECTION = '3.3, equation for h_t'
HINT = (
    'The hidden state is the output gate times the squashed memory, h_t = o_t * tanh(c_t). '
    'The cell state itself is unbounded; forgetting the tanh lets h grow without limit.'
)

import numpy as np


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    i, f, g, o = lstm_gates(x, prev_h, Wx, Wh, b)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * next_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)
    return next_h, next_c, cache


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
        g = np.tanh(a[:, 2 * H:3 * H])
        o = sigmoid(a[:, 3 * H:4 * H])
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        c[:, t] = f * prev_c + i * g
        h[:, t] = o * c[:, t]
        prev_h, prev_c = h[:, t], c[:, t]
    cache = (x, h0, Wx, Wh, gates, c, h)
    return h, cache
