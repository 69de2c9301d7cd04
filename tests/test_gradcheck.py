"""seqlab.gradcheck itself, then centered-difference checks of every seqlab backward pass."""
import numpy as np
import pytest

from seqlab import layers
from seqlab.gradcheck import numerical_gradient, relative_error
from seqlab.models import SequenceModel, init_params
from solutions import lstm


def test_numerical_gradient_of_known_function():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    df = rng.normal(size=(3, 4))
    keep = x.copy()
    calls = []

    def f(a):
        calls.append(1)
        return np.sin(a) * a ** 2

    grad = numerical_gradient(f, x, df)
    exact = df * (np.cos(keep) * keep ** 2 + 2 * keep * np.sin(keep))
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert relative_error(grad, exact) < 1e-9
    assert np.array_equal(x, keep)                 # restored exactly
    assert len(calls) == 2 * x.size                # two evaluations per entry


def test_numerical_gradient_output_shape_differs_from_input():
    x = np.array([1.0, 2.0, 3.0])
    grad = numerical_gradient(lambda a: np.outer(a, a), x, np.ones((3, 3)))
    assert relative_error(grad, 2 * np.full(3, x.sum())) < 1e-9


def test_relative_error():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0], [3.0]) == pytest.approx(0.5)
    assert relative_error([1.0, 100.0], [1.1, 100.0]) == pytest.approx(0.1 / 200)
    assert isinstance(relative_error(np.ones(2), np.ones(2)), float)
    with pytest.raises(ValueError):
        relative_error(np.ones(2), np.ones(3))


def check(forward, backward_grads, inputs, dout, tol=1e-7):
    """Every analytic gradient against the numerical gradient of sum(forward(*inputs) * dout)."""
    for k, arg in enumerate(inputs):
        if arg is None:
            continue

        def f(a, k=k):
            args = list(inputs)
            args[k] = a
            return forward(*args)
        num = numerical_gradient(f, arg, dout)
        assert relative_error(backward_grads[k], num) < tol, k


def test_rnn_step_backward():
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=s) for s in [(3, 4), (3, 5), (4, 5), (5, 5), (5,)]]
    dnext = rng.normal(size=(3, 5))
    _, cache = layers.rnn_step_forward(*inputs)
    check(lambda *a: layers.rnn_step_forward(*a)[0], layers.rnn_step_backward(dnext, cache), inputs, dnext)


def test_rnn_backward():
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=s) for s in [(2, 6, 3), (2, 4), (3, 4), (4, 4), (4,)]]
    dh = rng.normal(size=(2, 6, 4))
    _, cache = layers.rnn_forward(*inputs)
    check(lambda *a: layers.rnn_forward(*a)[0], layers.rnn_backward(dh, cache), inputs, dh)


def test_temporal_affine_backward():
    rng = np.random.default_rng(3)
    inputs = [rng.normal(size=s) for s in [(2, 3, 4), (4, 5), (5,)]]
    dout = rng.normal(size=(2, 3, 5))
    _, cache = layers.temporal_affine_forward(*inputs)
    check(lambda *a: layers.temporal_affine_forward(*a)[0], layers.temporal_affine_backward(dout, cache),
          inputs, dout)


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_cross_entropy_gradient(masked):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 5))
    y = rng.integers(0, 5, size=(2, 3))
    mask = np.array([[True, False, True], [False, True, True]]) if masked else None
    _, dlogits = layers.softmax_cross_entropy(logits, y, mask)
    check(lambda a: np.array(layers.softmax_cross_entropy(a, y, mask)[0]), [dlogits], [logits], 1.0)


def test_mse_gradient():
    rng = np.random.default_rng(5)
    pred, target = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    _, dpred = layers.mse_loss(pred, target)
    check(lambda a: np.array(layers.mse_loss(a, target)[0]), [dpred], [pred], 1.0)


@pytest.mark.parametrize("readout,gates", [("last", 4), ("every", 4), ("last", 1), ("every", 1)])
def test_sequence_model_gradients(readout, gates):
    rng = np.random.default_rng(6)
    D, H, M = 3, 4, 2 if readout == "last" else 5
    params = init_params(D, H, M, gates, rng)
    params = {k: v + rng.normal(scale=0.1, size=v.shape) for k, v in params.items()}
    fwd, bwd = (lstm.lstm_forward, lstm.lstm_backward) if gates == 4 else (layers.rnn_forward, layers.rnn_backward)
    model = SequenceModel(params, fwd, bwd, readout=readout)
    x = rng.normal(size=(3, 5, D))
    y = rng.normal(size=(3, M)) if readout == "last" else rng.integers(0, M, size=(3, 5))
    _, grads = model.loss_and_grads(x, y)
    assert set(grads) == set(params)
    for name in params:
        num = numerical_gradient(lambda a: np.array(model.loss_and_grads(x, y)[0]), params[name], 1.0)
        assert relative_error(grads[name], num) < 1e-7, name
