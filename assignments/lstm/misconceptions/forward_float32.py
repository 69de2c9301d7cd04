TITLE = 'Forward pass computed in float32'
AFFECTS = ('lstm_forward',)
SECTION = '3.4, exercise lstm_forward'
HINT = (
    'Casting to float32 loses about half the digits: the hidden states no longer match to '
    'float64 precision and gradient checks become noise. Keep the dtype of the inputs.'
)

import numpy as np


def lstm_forward(x, h0, Wx, Wh, b):
    x, h0, Wx, Wh, b = (np.asarray(v, dtype=np.float32) for v in (x, h0, Wx, Wh, b))
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
        h[:, t] = o * np.tanh(c[:, t])
        prev_h, prev_c = h[:, t], c[:, t]
    cache = (x, h0, Wx, Wh, gates, c, h)
    return h, cache
