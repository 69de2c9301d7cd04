TITLE = 'lstm_step_backward changes its input dnext_c'
AFFECTS = ('lstm_step_backward',)
SECTION = '3.4, exercise lstm_step_backward'
HINT = (
    'Your values are right, but your function adds into the array dnext_c it was given, so '
    "the caller's array changes. Work on a new array (for example write the sum as a new "
    'expression) instead of updating an argument in place.'
)

import numpy as np


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    dc = dnext_c
    dc += dnext_h * o * (1.0 - tanh_c * tanh_c)   # next_h = o * tanh(next_c)
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
