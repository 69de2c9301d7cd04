"""Building blocks around the recurrence: vanilla RNN, GRU, output layer and losses.

Conventions (the same as the LSTM exercises):
    N batch size, T time steps, D input size, H hidden size, M (or V) output size.
    x (N, D) for one step, (N, T, D) for a sequence; h (N, T, H).
    Wx (D, H), Wh (H, H), b (H,) for the vanilla RNN.
Every function works in the floating dtype of its inputs and never modifies them.
"""
import numpy as np


def _check_rnn_shapes(x, prev_h, Wx, Wh, b):
    D, H = Wx.shape
    if x.shape[-1] != D or prev_h.shape[-1] != H or Wh.shape != (H, H) or b.shape != (H,):
        raise ValueError(f"shapes do not fit: x {x.shape}, h {prev_h.shape}, Wx {Wx.shape}, "
                         f"Wh {Wh.shape}, b {b.shape} (want x (..., D), h (N, H), Wx (D, H), "
                         f"Wh (H, H), b (H,))")


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step of a vanilla RNN: next_h = tanh(x @ Wx + prev_h @ Wh + b).

    x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,)
    returns next_h (N, H) and the cache rnn_step_backward needs.
    """
    _check_rnn_shapes(x, prev_h, Wx, Wh, b)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Backward pass of rnn_step_forward.

    dnext_h (N, H): upstream gradient on next_h.
    returns dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h * next_h)        # tanh'(a) = 1 - tanh(a)^2
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Vanilla RNN over a sequence: h[:, t] = tanh(x[:, t] @ Wx + h[:, t-1] @ Wh + b).

    x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,)
    returns h (N, T, H) and the cache rnn_backward needs.
    The input projection x @ Wx + b is one product for all steps, outside the loop.
    """
    if x.ndim != 3:
        raise ValueError(f"x must be (N, T, D), got {x.shape}")
    _check_rnn_shapes(x, h0, Wx, Wh, b)
    N, T, _ = x.shape
    a_x = x @ Wx + b                               # (N, T, H)
    h = np.empty(a_x.shape, np.result_type(a_x, h0, Wh))
    prev_h = h0
    for t in range(T):
        h[:, t] = np.tanh(a_x[:, t] + prev_h @ Wh)
        prev_h = h[:, t]
    return h, (x, h0, Wx, Wh, h)


def rnn_backward(dh, cache):
    """Backpropagation through time for rnn_forward.

    dh (N, T, H): upstream gradient on every hidden state.
    returns the gradients of sum(dh * h): dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x, h0, Wx, Wh, h = cache
    N, T, H = h.shape
    da = np.empty_like(h)                          # gradient of the pre-activations, (N, T, H)
    dprev_h = np.zeros((N, H), h.dtype)
    for t in reversed(range(T)):
        da[:, t] = (dh[:, t] + dprev_h) * (1.0 - h[:, t] * h[:, t])
        dprev_h = da[:, t] @ Wh.T
    prev_h = np.concatenate([h0[:, None], h[:, :-1]], axis=1)   # input state of every step
    rows = da.reshape(N * T, H)
    dx = da @ Wx.T
    dWx = x.reshape(N * T, -1).T @ rows
    dWh = prev_h.reshape(N * T, H).T @ rows
    return dx, dprev_h, dWx, dWh, rows.sum(axis=0)


def _logistic(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def gru_forward(x, h0, Wx, Wh, b):
    """A GRU in Cho et al.'s form (Section 3.5) over a whole sequence.

    x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H), b (3H,): the 3H columns are the blocks
    [z | r | n] (update gate, reset gate, candidate). At every step
        z = sigmoid(x_t Wx_z + h Wh_z + b_z),  r = sigmoid(x_t Wx_r + h Wh_r + b_r)
        n = tanh(x_t Wx_n + (r * h) Wh_n + b_n),  h_t = (1 - z) * n + z * h
    returns h (N, T, H) and the cache gru_backward needs.
    """
    N, T, _ = x.shape
    H = h0.shape[1]
    a_x = x @ Wx + b                                  # (N, T, 3H): the input's part, all steps
    h = np.empty((N, T, H), np.result_type(x, h0, Wx))
    gates = np.empty((N, T, 3 * H), h.dtype)          # z, r, n of every step
    prev = h0
    for t in range(T):
        zr = _logistic(a_x[:, t, :2 * H] + prev @ Wh[:, :2 * H])
        z, r = zr[:, :H], zr[:, H:]
        n = np.tanh(a_x[:, t, 2 * H:] + (r * prev) @ Wh[:, 2 * H:])
        prev = (1.0 - z) * n + z * prev
        gates[:, t, :2 * H], gates[:, t, 2 * H:], h[:, t] = zr, n, prev
    return h, (x, h0, Wx, Wh, gates, h)


def gru_backward(dh, cache):
    """Backpropagation through time for gru_forward: the gradients of sum(dh * h),
    (dx, dh0, dWx, dWh, db)."""
    x, h0, Wx, Wh, gates, h = cache
    N, T, H = h.shape
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(3 * H)
    carried = np.zeros_like(h0)
    for t in reversed(range(T)):
        prev = h[:, t - 1] if t > 0 else h0
        z, r, n = gates[:, t, :H], gates[:, t, H:2 * H], gates[:, t, 2 * H:]
        d = dh[:, t] + carried                        # the gradient on h_t
        da_n = d * (1.0 - z) * (1.0 - n * n)
        drh = da_n @ Wh[:, 2 * H:].T                  # on r * prev
        da_z = d * (prev - n) * z * (1.0 - z)
        da_r = drh * prev * r * (1.0 - r)
        da_zr = np.concatenate([da_z, da_r], axis=1)
        da = np.concatenate([da_zr, da_n], axis=1)
        carried = d * z + drh * r + da_zr @ Wh[:, :2 * H].T
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        dWh[:, :2 * H] += prev.T @ da_zr
        dWh[:, 2 * H:] += (r * prev).T @ da_n
        db += da.sum(axis=0)
    return dx, carried, dWx, dWh, db


def temporal_affine_forward(h, W, b):
    """The same affine map at every step: out[:, t] = h[:, t] @ W + b.

    h (N, T, H), W (H, M), b (M,)  ->  out (N, T, M), cache
    """
    if h.ndim != 3 or W.shape[0] != h.shape[2] or b.shape != (W.shape[1],):
        raise ValueError(f"want h (N, T, H), W (H, M), b (M,); got {h.shape}, {W.shape}, {b.shape}")
    return h @ W + b, (h, W)


def temporal_affine_backward(dout, cache):
    """Backward pass of temporal_affine_forward.

    dout (N, T, M)  ->  dh (N, T, H), dW (H, M), db (M,)
    """
    h, W = cache
    N, T, H = h.shape
    rows = dout.reshape(N * T, -1)
    return dout @ W.T, h.reshape(N * T, H).T @ rows, rows.sum(axis=0)


def softmax_cross_entropy(logits, y, mask=None):
    """Mean cross-entropy of a softmax over the last axis, and its gradient.

    logits (N, T, V) floats; y (N, T) integer classes in [0, V); mask (N, T) booleans or
    None (all positions count). The loss is the mean over the positions where mask is true:
        loss = -sum_{n,t: mask} log softmax(logits[n, t])[y[n, t]] / count
    returns (loss as a float, dlogits (N, T, V)); masked-out positions get zero gradient.
    """
    if logits.ndim != 3 or y.shape != logits.shape[:2]:
        raise ValueError(f"want logits (N, T, V) and y (N, T); got {logits.shape} and {y.shape}")
    m = np.ones(y.shape, bool) if mask is None else np.asarray(mask, bool)
    count = max(int(m.sum()), 1)
    shifted = logits - logits.max(axis=-1, keepdims=True)        # softmax is shift invariant
    log_z = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    log_p = shifted - log_z                                      # log-probabilities (N, T, V)
    picked = np.take_along_axis(log_p, y[..., None].astype(np.intp), axis=-1)[..., 0]
    loss = -float(np.sum(picked[m])) / count
    dlogits = np.exp(log_p)                                      # softmax
    np.put_along_axis(dlogits, y[..., None].astype(np.intp),
                      np.take_along_axis(dlogits, y[..., None].astype(np.intp), axis=-1) - 1.0, axis=-1)
    dlogits *= m[..., None] / count
    return loss, dlogits


def mse_loss(pred, target):
    """Mean squared error over all elements: loss = mean((pred - target)^2).

    pred, target: the same shape.  returns (loss as a float, dpred = 2 (pred - target) / size).
    """
    if np.shape(pred) != np.shape(target):
        raise ValueError(f"pred {np.shape(pred)} and target {np.shape(target)} differ in shape")
    diff = pred - target
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff
