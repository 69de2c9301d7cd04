"""A small recurrent model whose recurrence is injected, and a training loop.

The same SequenceModel runs the reference LSTM, the vanilla RNN of seqlab.layers and
the student's own lstm_forward/lstm_backward:

    h, cache = forward(x, h0, Wx, Wh, b)           x (N, T, D), h0 = 0 (N, H), h (N, T, H)
    readout "last":  pred = h[:, -1] @ W_out + b_out         (N, M), mean squared error vs y (N, M)
    readout "every": logits = h @ W_out + b_out              (N, T, M), cross-entropy vs y (N, T)
"""
import numpy as np

from . import layers


def init_params(D, H, M, gates, rng):
    """Initial parameters for a recurrence with `gates` blocks of H columns and an output layer.

    D input size, H hidden size, M output size; gates=4 for an LSTM ([i | f | g | o]),
    gates=1 for a vanilla RNN; rng: numpy.random.Generator.
    Weights are uniform in [-1/sqrt(H), 1/sqrt(H)] as in torch.nn.LSTM; biases start at 0
    except the LSTM's forget gate, which starts at 1 so the cell remembers by default.
    returns dict Wx (D, gates*H), Wh (H, gates*H), b (gates*H,), W_out (H, M), b_out (M,).
    """
    k = 1.0 / np.sqrt(H)
    b = np.zeros(gates * H)
    if gates == 4:
        b[H:2 * H] = 1.0
    return {
        "Wx": rng.uniform(-k, k, (D, gates * H)),
        "Wh": rng.uniform(-k, k, (H, gates * H)),
        "b": b,
        "W_out": rng.uniform(-k, k, (H, M)),
        "b_out": np.zeros(M),
    }


class SequenceModel:
    """Recurrence (forward, backward) + affine readout, parameters in a dict.

    params: dict from init_params (used, and updated by an optimiser, in place).
    forward(x, h0, Wx, Wh, b) -> (h, cache); backward(dh, cache) -> (dx, dh0, dWx, dWh, db).
    readout: "last" (regression from the final hidden state) or "every" (classes at every step).
    """

    def __init__(self, params, forward, backward, readout="last"):
        if readout not in ("last", "every"):
            raise ValueError(f"readout must be 'last' or 'every', not {readout!r}")
        self.params, self.forward, self.backward, self.readout = params, forward, backward, readout

    def _hidden(self, x):
        p = self.params
        h0 = np.zeros((x.shape[0], p["Wh"].shape[0]), np.result_type(x, p["Wh"]))
        return self.forward(x, h0, p["Wx"], p["Wh"], p["b"])

    def predict(self, x):
        """(N, M) predictions from the last hidden state, or (N, T, M) logits at every step."""
        h, _ = self._hidden(x)
        p = self.params
        if self.readout == "last":
            return h[:, -1] @ p["W_out"] + p["b_out"]
        return h @ p["W_out"] + p["b_out"]

    def loss_and_grads(self, x, y):
        """Loss on a batch and the gradient of every parameter (dict with the params' keys)."""
        p = self.params
        h, cache = self._hidden(x)
        if self.readout == "last":
            last = h[:, -1]                                   # (N, H)
            loss, dpred = layers.mse_loss(last @ p["W_out"] + p["b_out"], y)
            dh = np.zeros_like(h)
            dh[:, -1] = dpred @ p["W_out"].T
            dW_out, db_out = last.T @ dpred, dpred.sum(axis=0)
        else:
            logits, aff_cache = layers.temporal_affine_forward(h, p["W_out"], p["b_out"])
            loss, dlogits = layers.softmax_cross_entropy(logits, y)
            dh, dW_out, db_out = layers.temporal_affine_backward(dlogits, aff_cache)
        _, _, dWx, dWh, db = self.backward(dh, cache)
        return loss, {"Wx": dWx, "Wh": dWh, "b": db, "W_out": dW_out, "b_out": db_out}


def _norm(grads):
    return float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))


def train(model, batch_fn, steps, optimizer, clip_fn=None, max_norm=None, log_every=0):
    """Train model for `steps` steps of optimizer on batches from batch_fn() -> (x, y).

    clip_fn(grads, max_norm) -> (clipped, total_norm), e.g. the student's clip_grad_norm,
    is applied when given together with max_norm. log_every > 0 prints the loss to stdout
    every log_every steps.
    returns {"loss": [loss per step], "grad_norm": [gradient norm per step, before clipping],
             "param_norm": {name: [that parameter's gradient norm per step, before clipping]}}.
    """
    history = {"loss": [], "grad_norm": [], "param_norm": {name: [] for name in model.params}}
    for step in range(1, steps + 1):
        x, y = batch_fn()
        loss, grads = model.loss_and_grads(x, y)
        for name, g in grads.items():
            history["param_norm"][name].append(float(np.sqrt(np.sum(np.square(g)))))
        if clip_fn is not None and max_norm is not None:
            grads, norm = clip_fn(grads, max_norm)
            norm = float(norm)
        else:
            norm = _norm(grads)
        optimizer.step(model.params, grads)
        history["loss"].append(float(loss))
        history["grad_norm"].append(norm)
        if log_every and step % log_every == 0:
            print(f"step {step:5d}  loss {loss:.4f}  grad norm {norm:.3f}", flush=True)
    return history
