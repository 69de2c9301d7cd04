"""seqlab's layers, losses and Adam against PyTorch, float64, to 1e-12 relative."""
import numpy as np
import pytest
import torch

from seqlab import layers
from seqlab.gradcheck import relative_error
from seqlab.optim import Adam

TOL = 1e-12


def t(a, grad=True):
    return torch.tensor(a, requires_grad=grad)


def rel(a, b):
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    assert np.shape(a) == np.shape(b), (np.shape(a), np.shape(b))
    return relative_error(a, b)


def torch_rnn(x, h0, Wx, Wh, b):
    D, H = Wx.shape
    net = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(Wx.T))
        net.weight_hh_l0.copy_(torch.from_numpy(Wh.T))
        net.bias_ih_l0.copy_(torch.from_numpy(b))
        net.bias_hh_l0.zero_()
    tx, th0 = t(x), t(h0[None])
    out, _ = net(tx, th0)
    return net, tx, th0, out


@pytest.mark.parametrize("N,T,D,H", [(1, 1, 1, 1), (3, 6, 2, 5), (4, 1, 5, 3), (2, 9, 4, 4)])
@pytest.mark.parametrize("scale", [0.5, 4.0])
def test_rnn_matches_torch(N, T, D, H, scale):
    rng = np.random.default_rng([N, T, D, H, int(scale)])
    x, h0 = rng.normal(size=(N, T, D)), rng.normal(size=(N, H))
    Wx, Wh, b = (rng.normal(scale=scale, size=s) for s in [(D, H), (H, H), (H,)])
    dh = rng.normal(size=(N, T, H))
    h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = layers.rnn_backward(dh, cache)
    net, tx, th0, out = torch_rnn(x, h0, Wx, Wh, b)
    (out * torch.from_numpy(dh)).sum().backward()
    assert rel(h, out) < TOL
    assert rel(dx, tx.grad) < TOL and rel(dh0, th0.grad[0]) < TOL
    assert rel(dWx, net.weight_ih_l0.grad.T) < TOL and rel(dWh, net.weight_hh_l0.grad.T) < TOL
    assert rel(db, net.bias_ih_l0.grad) < TOL


def test_rnn_step_matches_torch_cell():
    rng = np.random.default_rng(2)
    N, D, H = 3, 4, 5
    x, prev_h = rng.normal(size=(N, D)), rng.normal(size=(N, H))
    Wx, Wh, b = rng.normal(size=(D, H)), rng.normal(size=(H, H)), rng.normal(size=H)
    dnext = rng.normal(size=(N, H))
    next_h, cache = layers.rnn_step_forward(x, prev_h, Wx, Wh, b)
    grads = layers.rnn_step_backward(dnext, cache)
    cell = torch.nn.RNNCell(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(Wx.T))
        cell.weight_hh.copy_(torch.from_numpy(Wh.T))
        cell.bias_ih.copy_(torch.from_numpy(b))
        cell.bias_hh.zero_()
    tx, th = t(x), t(prev_h)
    out = cell(tx, th)
    (out * torch.from_numpy(dnext)).sum().backward()
    assert rel(next_h, out) < TOL
    for ours, theirs in zip(grads, [tx.grad, th.grad, cell.weight_ih.grad.T, cell.weight_hh.grad.T, cell.bias_ih.grad]):
        assert rel(ours, theirs) < TOL


def test_temporal_affine_matches_torch():
    rng = np.random.default_rng(3)
    h, W, b, dout = rng.normal(size=(2, 5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(2, 5, 3))
    out, cache = layers.temporal_affine_forward(h, W, b)
    dh, dW, db = layers.temporal_affine_backward(dout, cache)
    th, tW, tb = t(h), t(W), t(b)
    tout = th @ tW + tb
    (tout * torch.from_numpy(dout)).sum().backward()
    assert rel(out, tout) < TOL
    assert rel(dh, th.grad) < TOL and rel(dW, tW.grad) < TOL and rel(db, tb.grad) < TOL


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_cross_entropy_matches_torch(masked):
    rng = np.random.default_rng(4)
    N, T, V = 3, 5, 7
    logits = rng.normal(scale=5.0, size=(N, T, V))
    logits[0, 0, 0] = 800.0                      # would overflow a naive exp
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.6 if masked else None
    loss, dlogits = layers.softmax_cross_entropy(logits, y, mask)
    tl = t(logits)
    per = torch.nn.functional.cross_entropy(tl.reshape(-1, V), torch.from_numpy(y).reshape(-1), reduction="none")
    m = torch.ones(N * T, dtype=torch.float64) if mask is None else torch.from_numpy(mask.reshape(-1)).double()
    tloss = (per * m).sum() / m.sum()
    tloss.backward()
    assert isinstance(loss, float)
    assert abs(loss - tloss.item()) <= TOL * abs(tloss.item())
    assert rel(dlogits, tl.grad) < TOL
    if masked:
        assert np.all(dlogits[~mask] == 0)


def test_mse_matches_torch():
    rng = np.random.default_rng(5)
    pred, target = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    loss, dpred = layers.mse_loss(pred, target)
    tp = t(pred)
    tloss = torch.nn.functional.mse_loss(tp, torch.from_numpy(target))
    tloss.backward()
    assert isinstance(loss, float) and abs(loss - tloss.item()) <= TOL * tloss.item()
    assert rel(dpred, tp.grad) < TOL


@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}])
def test_adam_matches_torch(kwargs):
    rng = np.random.default_rng(6)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    names = {"lr": "lr", "beta1": None, "beta2": None, "eps": "eps"}
    topts = {k: v for k, v in kwargs.items() if names[k]}
    if "beta1" in kwargs:
        topts["betas"] = (kwargs["beta1"], kwargs["beta2"])
    ours, theirs = Adam(**kwargs), torch.optim.Adam(tparams.values(), **topts)
    for step in range(10):
        grads = {k: rng.normal(size=v.shape) * (step + 1) for k, v in params.items()}
        keep = {k: g.copy() for k, g in grads.items()}
        ours.step(params, grads)
        for k, g in grads.items():
            tparams[k].grad = torch.tensor(g)
            assert np.array_equal(g, keep[k])     # gradients are not touched
        theirs.step()
        for k in params:
            assert rel(params[k], tparams[k]) < TOL


def test_layers_keep_float32_and_inputs():
    rng = np.random.default_rng(8)
    x, h0 = rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32)
    Wx, Wh, b = (rng.normal(size=s).astype(np.float32) for s in [(4, 5), (5, 5), (5,)])
    before = [a.copy() for a in (x, h0, Wx, Wh, b)]
    h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
    grads = layers.rnn_backward(np.ones_like(h), cache)
    assert h.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert all(np.array_equal(a, c) for a, c in zip((x, h0, Wx, Wh, b), before))
    logits = rng.normal(size=(2, 3, 4)).astype(np.float32)
    keep = logits.copy()
    _, d = layers.softmax_cross_entropy(logits, np.zeros((2, 3), int))
    assert d.dtype == np.float32 and np.array_equal(logits, keep)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError):
        layers.rnn_forward(np.zeros((2, 3, 4)), np.zeros((2, 5)), np.zeros((3, 5)), np.zeros((5, 5)), np.zeros(5))
    with pytest.raises(ValueError):
        layers.mse_loss(np.zeros((2, 1)), np.zeros(2))
    with pytest.raises(ValueError):
        layers.softmax_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 4), int))
