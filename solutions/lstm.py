"""Reference LSTM in numpy: the graded functions of Section 3.4.

Shapes (CONTRACT section 1):
    N batch size, T sequence length, D input size, H hidden size.
    x        (N, D) for one step, (N, T, D) for a sequence
    prev_h   (N, H)      prev_c (N, H)      h0 (N, H)
    Wx       (D, 4H)     Wh     (H, 4H)     b  (4H,)
    h, dh    (N, T, H)

The 4H columns of Wx, Wh and b hold the gates in PyTorch's order [i | f | g | o]:

    a      = x @ Wx + prev_h @ Wh + b                      pre-activations, (N, 4H)
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o)      input, forget, output gates
    g      = tanh(a_g)                                     candidate cell state
    next_c = f * prev_c + i * g
    next_h = o * tanh(next_c)

Every function works in the floating dtype of its inputs (float64 by default,
float32 accepted) and never modifies its arguments.
"""
import numpy as np


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), elementwise, for any shape.

    Written so that exp never overflows: with e = exp(-|x|) in (0, 1],
    sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
    Both branches are exact to rounding and neither warns anywhere.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + e)
    return np.where(x >= 0, r, e * r)


def lstm_gates(x, prev_h, Wx, Wh, b):
    """The four gates of one LSTM step.

    x (N, D), prev_h (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    returns (i, f, g, o), each (N, H): input, forget and output gates in (0, 1)
    and the candidate g in (-1, 1).
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b                    # (N, 4H) pre-activations
    i = sigmoid(a[:, 0 * H:1 * H])
    f = sigmoid(a[:, 1 * H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:4 * H])
    return i, f, g, o


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM time step.

    x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    returns next_h (N, H), next_c (N, H) and the cache lstm_step_backward needs.
    """
    i, f, g, o = lstm_gates(x, prev_h, Wx, Wh, b)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward pass of one LSTM time step.

    dnext_h (N, H), dnext_c (N, H): upstream gradients on next_h and next_c.
    cache: what lstm_step_forward returned.
    returns dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c * tanh_c)   # next_h = o * tanh(next_c)
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


def lstm_forward(x, h0, Wx, Wh, b):
    """LSTM over a whole sequence, starting from hidden state h0 and a zero cell state.

    x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    returns h (N, T, H), the hidden state of every step, and the cache lstm_backward needs.

    The input projection x @ Wx + b does not depend on the recurrence, so it is one
    matrix product for all T steps; only prev_h @ Wh stays inside the time loop.
    The gates use sigmoid(z) = (1 + tanh(z / 2)) / 2: one tanh instead of sigmoid's exp, abs,
    division and select, about 20 % faster here, and within about 1e-16 of the exact value,
    which is all a gate needs. (Exercise 1's sigmoid must also be exact relative to values
    as tiny as 1e-300, hence its other formula.)
    """
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
        act = gates[:, t]                       # (N, 4H) view: activations written in place
        act[:, :2 * H] = 0.5 + 0.5 * np.tanh(0.5 * a[:, :2 * H])  # i, f = sigmoid(a_i), sigmoid(a_f)
        act[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])          # g
        act[:, 3 * H:] = 0.5 + 0.5 * np.tanh(0.5 * a[:, 3 * H:])  # o = sigmoid(a_o)
        i, f, g, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
        c[:, t] = f * prev_c + i * g
        h[:, t] = o * np.tanh(c[:, t])
        prev_h, prev_c = h[:, t], c[:, t]
    cache = (x, h0, Wx, Wh, gates, c, h)
    return h, cache


def lstm_backward(dh, cache):
    """Backpropagation through time for lstm_forward.

    dh (N, T, H): upstream gradient on every hidden state; cache: what lstm_forward returned.
    returns the gradients of sum(dh * h): dx (N, T, D), dh0 (N, H), dWx (D, 4H),
    dWh (H, 4H), db (4H,).

    The time loop carries only the recurrent gradients dprev_h and dprev_c; the
    pre-activation gradients of all steps are kept, and the gradients of x, Wx, Wh
    and b are then one matrix product (or sum) each over all N * T rows.
    """
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
        da_t = da[:, t]                              # (N, 4H), written in place
        da_t[:, 0 * H:1 * H] = dc * g * i * (1.0 - i)
        da_t[:, 1 * H:2 * H] = dc * prev_c * f * (1.0 - f)
        da_t[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        da_t[:, 3 * H:4 * H] = dnext_h * tanh_c * o * (1.0 - o)
        dprev_c = dc * f
        dprev_h = da_t @ Wh.T
    prev_h = np.concatenate([h0[:, None], h[:, :-1]], axis=1)   # (N, T, H): input h of each step
    da_rows = da.reshape(N * T, 4 * H)
    dx = da @ Wx.T
    dWx = x.reshape(N * T, -1).T @ da_rows
    dWh = prev_h.reshape(N * T, H).T @ da_rows
    db = da_rows.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def clip_grad_norm(grads, max_norm):
    """Rescale a set of gradients so that their joint L2 norm is at most max_norm.

    grads: dict name -> array; max_norm: positive float.
    returns (clipped, total_norm): clipped is a new dict of new arrays; total_norm is the
    L2 norm of all arrays together, as a float. When total_norm > max_norm every array is
    multiplied by max_norm / (total_norm + 1e-6), as torch.nn.utils.clip_grad_norm_ does.
    """
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    scale = max_norm / (total_norm + 1e-6) if total_norm > max_norm else 1.0
    clipped = {name: np.asarray(g) * scale for name, g in grads.items()}
    return clipped, total_norm
