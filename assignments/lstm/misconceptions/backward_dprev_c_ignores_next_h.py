TITLE = 'Gradient to the previous cell ignores the path through h'
AFFECTS = ('lstm_step_backward',)
SECTION = '3.4, exercise lstm_step_backward'
HINT = (
    'The previous cell reaches the loss through all of c_t, and c_t feeds both c_{t+1} and '
    'h_t. So the gradient on c_{t-1} is f_t times the whole gradient on c_t, the direct part '
    'plus the part through h_t = o_t * tanh(c_t), the same total the gates use.'
)

# Only the step is rewritten: in a time loop the same rule carries back only what was carried in,
# which starts at zero, so lstm_backward would behave exactly like backward_drops_dnext_c.

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
    dprev_c = dnext_c * f                   # only the direct part of the gradient on next_c
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db

