"""The reference LSTM (solutions/lstm.py) against PyTorch, mpmath and finite differences.

torch.nn.LSTM keeps gates in the order [i | f | g | o] with weight_ih (4H, D), weight_hh (4H, H)
and two biases; the contract's layout is Wx = weight_ih.T, Wh = weight_hh.T, b = b_ih + b_hh.
Everything here is float64 and must agree to 1e-12 relative (measured: ~1e-15).
"""
import warnings

import mpmath
import numpy as np
import pytest
import torch

from seqlab.gradcheck import numerical_gradient, relative_error
from solutions import lstm

TOL = 1e-12
SHAPES = [  # N, T, D, H
    (1, 1, 1, 1), (1, 5, 3, 4), (4, 1, 6, 2), (3, 7, 2, 5), (5, 4, 8, 3), (2, 12, 5, 5), (6, 3, 1, 7),
]


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b.detach().numpy() if isinstance(b, torch.Tensor) else b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return relative_error(a, b)


def make(rng, N, T, D, H, scale=1.0, h0_zero=False):
    x = rng.normal(size=(N, T, D))
    h0 = np.zeros((N, H)) if h0_zero else rng.normal(size=(N, H))
    Wx = rng.normal(scale=scale, size=(D, 4 * H))
    Wh = rng.normal(scale=scale, size=(H, 4 * H))
    b = rng.normal(scale=scale, size=4 * H)
    return x, h0, Wx, Wh, b


def torch_lstm(x, h0, Wx, Wh, b):
    D, H = Wx.shape[0], Wh.shape[0]
    net = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(Wx.T))
        net.weight_hh_l0.copy_(torch.from_numpy(Wh.T))
        net.bias_ih_l0.copy_(torch.from_numpy(b))
        net.bias_hh_l0.zero_()
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0[None], requires_grad=True)
    out, _ = net(tx, (th0, torch.zeros_like(th0)))
    return net, tx, th0, out


@pytest.mark.parametrize("scale", [0.5, 6.0], ids=["normal", "saturated"])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_torch_lstm(shape, scale):
    rng = np.random.default_rng([*shape, int(scale * 10)])
    x, h0, Wx, Wh, b = make(rng, *shape, scale=scale)
    dh = rng.normal(size=shape[:2] + (shape[3],))
    h, cache = lstm.lstm_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = lstm.lstm_backward(dh, cache)
    net, tx, th0, out = torch_lstm(x, h0, Wx, Wh, b)
    (out * torch.from_numpy(dh)).sum().backward()
    assert rel(h, out) < TOL
    assert rel(dx, tx.grad) < TOL
    assert rel(dh0, th0.grad[0]) < TOL
    assert rel(dWx, net.weight_ih_l0.grad.T) < TOL
    assert rel(dWh, net.weight_hh_l0.grad.T) < TOL
    assert rel(db, net.bias_ih_l0.grad) < TOL
    assert rel(db, net.bias_hh_l0.grad) < TOL
    if scale > 1:   # the saturated case really saturates some gates
        i, f, g, o = lstm.lstm_gates(x[:, 0], h0, Wx, Wh, b)
        assert np.mean(np.abs(g) > 0.999) > 0.1


def test_zero_h0_and_gate_order_detected():
    """A model whose gate blocks are permuted must not pass: the test is sensitive to order."""
    rng = np.random.default_rng(1)
    x, h0, Wx, Wh, b = make(rng, 3, 4, 2, 3, h0_zero=True)
    h, _ = lstm.lstm_forward(x, h0, Wx, Wh, b)
    _, _, _, out = torch_lstm(x, h0, Wx, Wh, b)
    assert rel(h, out) < TOL
    H = 3
    perm = np.r_[H:2 * H, 0:H, 2 * H:4 * H]        # swap i and f
    _, _, _, out_swapped = torch_lstm(x, h0, Wx[:, perm], Wh[:, perm], b[perm])
    assert rel(h, out_swapped) > 1e-3


def torch_cell(x, prev_h, prev_c, Wx, Wh, b):
    D, H = Wx.shape[0], Wh.shape[0]
    cell = torch.nn.LSTMCell(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(Wx.T))
        cell.weight_hh.copy_(torch.from_numpy(Wh.T))
        cell.bias_ih.copy_(torch.from_numpy(b))
        cell.bias_hh.zero_()
    ts = [torch.tensor(a, requires_grad=True) for a in (x, prev_h, prev_c)]
    hn, cn = cell(ts[0], (ts[1], ts[2]))
    return cell, ts, hn, cn


@pytest.mark.parametrize("scale", [0.5, 6.0])
@pytest.mark.parametrize("N,D,H", [(1, 1, 1), (3, 2, 5), (4, 7, 3)])
def test_step_matches_torch_cell(N, D, H, scale):
    rng = np.random.default_rng([N, D, H, int(scale)])
    x, prev_h, prev_c = rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(N, H))
    Wx, Wh, b = (rng.normal(scale=scale, size=s) for s in [(D, 4 * H), (H, 4 * H), (4 * H,)])
    dnext_h, dnext_c = rng.normal(size=(N, H)), rng.normal(size=(N, H))
    next_h, next_c, cache = lstm.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm.lstm_step_backward(dnext_h, dnext_c, cache)
    cell, (tx, th, tc), hn, cn = torch_cell(x, prev_h, prev_c, Wx, Wh, b)
    ((hn * torch.from_numpy(dnext_h)).sum() + (cn * torch.from_numpy(dnext_c)).sum()).backward()
    assert rel(next_h, hn) < TOL and rel(next_c, cn) < TOL
    for ours, theirs in [(dx, tx.grad), (dprev_h, th.grad), (dprev_c, tc.grad), (dWx, cell.weight_ih.grad.T),
                         (dWh, cell.weight_hh.grad.T), (db, cell.bias_ih.grad)]:
        assert rel(ours, theirs) < TOL


def test_step_backward_dnext_c_path_alone():
    """Gradient arriving only on next_c (dnext_h = 0) still reaches every input."""
    rng = np.random.default_rng(7)
    N, D, H = 3, 4, 2
    x, prev_h, prev_c = rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(N, H))
    Wx, Wh, b = rng.normal(size=(D, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    dnext_c = rng.normal(size=(N, H))
    _, _, cache = lstm.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    grads = lstm.lstm_step_backward(np.zeros((N, H)), dnext_c, cache)
    cell, (tx, th, tc), hn, cn = torch_cell(x, prev_h, prev_c, Wx, Wh, b)
    (cn * torch.from_numpy(dnext_c)).sum().backward()
    for ours, theirs in zip(grads, [tx.grad, th.grad, tc.grad, cell.weight_ih.grad.T, cell.weight_hh.grad.T,
                                    cell.bias_ih.grad]):
        assert rel(ours, theirs) < TOL


def test_gates_match_manual_torch():
    rng = np.random.default_rng(3)
    N, D, H = 4, 3, 5
    x, prev_h = rng.normal(size=(N, D)), rng.normal(size=(N, H))
    Wx, Wh, b = rng.normal(size=(D, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    a = torch.from_numpy(x) @ torch.from_numpy(Wx) + torch.from_numpy(prev_h) @ torch.from_numpy(Wh) \
        + torch.from_numpy(b)
    ai, af, ag, ao = a.chunk(4, dim=1)
    want = [torch.sigmoid(ai), torch.sigmoid(af), torch.tanh(ag), torch.sigmoid(ao)]
    got = lstm.lstm_gates(x, prev_h, Wx, Wh, b)
    assert len(got) == 4
    for g, w in zip(got, want):
        assert rel(g, w) < TOL


SIGMOID_GRID = np.concatenate([np.linspace(-1e4, 1e4, 20001), np.linspace(-40, 40, 8001),
                               [-1e4, 1e4, -745.2, 745.2, -709.8, 709.8, 0.0, -0.0, 1e-300, -1e-300, 5e-324]])


def test_sigmoid_exact_against_mpmath():
    """Within 2 ulp of the exact value (measured max: 2 ulp near x = -36, where e / (1 + e)
    inherits exp's own rounding), i.e. relative error <= 2**-51; exact where the result is subnormal."""
    mpmath.mp.prec = 200
    got = lstm.sigmoid(SIGMOID_GRID)
    exact = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in SIGMOID_GRID])
    normal = exact >= np.finfo(np.float64).tiny
    assert np.all(np.abs(got[normal] - exact[normal]) <= 2 * np.spacing(exact[normal]))
    assert np.max(np.abs(got[normal] - exact[normal]) / exact[normal]) <= 2.0 ** -51
    assert np.all(np.abs(got[~normal] - exact[~normal]) <= 5e-324)


def test_sigmoid_silent_shapes_and_dtype():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is exact enough
            out = lstm.sigmoid(SIGMOID_GRID)
            lstm.sigmoid(SIGMOID_GRID.astype(np.float32))
    assert np.all((out >= 0) & (out <= 1))
    assert lstm.sigmoid(np.zeros((2, 3, 4))).shape == (2, 3, 4)
    assert float(lstm.sigmoid(np.float64(0.0))) == 0.5
    assert lstm.sigmoid(np.zeros(3, np.float32)).dtype == np.float32


def torch_clip(grads, max_norm):
    ts = []
    for g in grads.values():
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g)
        ts.append(p)
    total = torch.nn.utils.clip_grad_norm_(ts, max_norm)
    return [p.grad.numpy() for p in ts], float(total)


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 5.0, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(11)
    grads = {"Wx": rng.normal(size=(3, 8)), "Wh": rng.normal(size=(2, 8)), "b": rng.normal(size=8)}
    before = {k: v.copy() for k, v in grads.items()}
    ids = {k: id(v) for k, v in grads.items()}
    clipped, total = lstm.clip_grad_norm(grads, max_norm)
    want, want_total = torch_clip(grads, max_norm)
    assert isinstance(total, float)
    assert abs(total - want_total) <= TOL * want_total
    assert set(clipped) == set(grads) and clipped is not grads
    for (name, g), w in zip(clipped.items(), want):
        assert rel(g, w) < TOL
        assert g is not grads[name]
    for k in grads:
        assert id(grads[k]) == ids[k] and np.array_equal(grads[k], before[k])
    if max_norm > total:
        for k in grads:
            assert np.array_equal(clipped[k], grads[k])
    else:
        norm_after = np.sqrt(sum(np.sum(g ** 2) for g in clipped.values()))
        assert norm_after == pytest.approx(max_norm, rel=1e-5)


def all_calls(rng):
    N, T, D, H = 2, 3, 4, 3
    x, h0, Wx, Wh, b = make(rng, N, T, D, H)
    prev_c = rng.normal(size=(N, H))
    _, _, step_cache = lstm.lstm_step_forward(x[:, 0], h0, prev_c, Wx, Wh, b)
    _, cache = lstm.lstm_forward(x, h0, Wx, Wh, b)
    return [
        (lstm.sigmoid, (rng.normal(size=(3, 4)),)),
        (lstm.lstm_gates, (x[:, 0].copy(), h0, Wx, Wh, b)),
        (lstm.lstm_step_forward, (x[:, 0].copy(), h0, prev_c, Wx, Wh, b)),
        (lstm.lstm_forward, (x, h0, Wx, Wh, b)),
        (lstm.lstm_step_backward, (rng.normal(size=(N, H)), rng.normal(size=(N, H)), step_cache)),
        (lstm.lstm_backward, (rng.normal(size=(N, T, H)), cache)),
        (lstm.clip_grad_norm, ({"a": rng.normal(size=(2, 2)), "b": rng.normal(size=3)}, 0.5)),
    ]


def snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(snapshot(v) for v in value)
    return value


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(u, v) for u, v in zip(a, b))
    return a == b


def test_no_function_modifies_its_inputs():
    for fn, args in all_calls(np.random.default_rng(5)):
        before = snapshot(args)
        fn(*args)
        fn(*args)       # twice: a cache consumed by a backward call must still be intact
        assert same(args, before), fn.__name__


def test_float32_inputs():
    """The reference computes in its inputs' dtype: float32 in, float32 out, close to float64.

    Measured relative differences to the float64 result: ~1e-7 (forward) and ~1e-6 (gradients).
    """
    rng = np.random.default_rng(9)
    args64 = make(rng, 3, 6, 4, 5)
    args32 = [a.astype(np.float32) for a in args64]
    dh = rng.normal(size=(3, 6, 5))
    h64, c64 = lstm.lstm_forward(*args64)
    h32, c32 = lstm.lstm_forward(*args32)
    assert h32.dtype == np.float32
    assert relative_error(h32, h64) < 1e-5
    g64 = lstm.lstm_backward(dh, c64)
    g32 = lstm.lstm_backward(dh.astype(np.float32), c32)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        assert relative_error(a, b) < 1e-4
    for a, b in zip(lstm.lstm_gates(args32[0][:, 0], *args32[1:]), lstm.lstm_gates(args64[0][:, 0], *args64[1:])):
        assert a.dtype == np.float32 and relative_error(a, b) < 1e-5


def test_step_backward_numerical_gradients():
    rng = np.random.default_rng(21)
    N, D, H = 3, 4, 5
    x, prev_h, prev_c = rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(N, H))
    Wx, Wh, b = rng.normal(size=(D, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    dnext_h, dnext_c = rng.normal(size=(N, H)), rng.normal(size=(N, H))
    inputs = [x, prev_h, prev_c, Wx, Wh, b]
    _, _, cache = lstm.lstm_step_forward(*inputs)
    analytic = lstm.lstm_step_backward(dnext_h, dnext_c, cache)
    for k, arg in enumerate(inputs):
        def f(a, k=k):
            args = list(inputs)
            args[k] = a
            next_h, next_c, _ = lstm.lstm_step_forward(*args)
            return np.concatenate([next_h, next_c])
        num = numerical_gradient(f, arg, np.concatenate([dnext_h, dnext_c]))
        assert relative_error(analytic[k], num) < 1e-7, k


def test_backward_numerical_gradients():
    rng = np.random.default_rng(22)
    x, h0, Wx, Wh, b = inputs = make(rng, 2, 5, 3, 4)
    dh = rng.normal(size=(2, 5, 4))
    _, cache = lstm.lstm_forward(*inputs)
    analytic = lstm.lstm_backward(dh, cache)
    for k, arg in enumerate(inputs):
        def f(a, k=k):
            args = list(inputs)
            args[k] = a
            return lstm.lstm_forward(*args)[0]
        num = numerical_gradient(f, arg, dh)
        assert relative_error(analytic[k], num) < 1e-7, k
