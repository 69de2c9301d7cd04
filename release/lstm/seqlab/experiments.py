"""The experiments of Sections 3.5 and 3.6, run on injected functions (the student's own LSTM).

    available(**fns)                        do the student's functions pass their checks? (prints why not)
    rnn_gradient_norms(T, ...)              ||dL/dh_t|| for every t, vanilla RNN, loss on the last step
    rnn_recurrent_matrix, largest_singular_value   its W_h, and how much W_h can stretch a vector
    exploding_run(clip_fn)                  a vanilla RNN with large W_h trained by SGD, clipped or not
    lstm_gradient_norms(step_forward, step_backward, T, ...)   the same for an LSTM
    lstm_gradient_flow(step_forward, step_backward, T, ...)    ||dL/dh_t||, ||dL/dc_t||, mean gates
    decay_summary(norms)                    per-step factors, minimum, growth: Section 3.5's numbers
    adding_problem_comparison(lstm_forward, lstm_backward, clip_fn)   train LSTM and RNN, T = 50
    adding_summary(results)                 test errors, when the LSTM solves it, gradient norms
    gru_adding_run(clip_fn)                 seqlab's GRU on the same adding problem
    train_char_model(lstm_forward, lstm_backward, clip_fn, text)      character-level language model

Only numpy is imported at import time.
"""
import numpy as np

from . import data, layers, models, optim
from . import text as textlib

MESSAGE = "This demo needs {} from Section 3.4; come back when their checks pass."


def _names(names):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def available(**fns):
    """True when every given function, and every exercise it calls, passes its public check.

    Keyword arguments: any of sigmoid, lstm_gates, lstm_step_forward, lstm_forward,
    lstm_step_backward, lstm_backward, clip_grad_norm (the student's functions). The exercises
    they call (lstm_step_forward calls lstm_gates, which calls sigmoid) are found in their own
    globals and checked too, and a backward check uses the given forward pass (else the one
    the backward function can see). Otherwise prints what the demo needs and, when something
    is written but wrong, which exercise to fix first and what its check says; returns False.
    An experiment run on a function that fails its check would describe the bug, not the LSTM.
    """
    from . import checks
    order = checks._EXERCISES
    todo = {n: f for n, f in fns.items() if n in order}
    for f in list(todo.values()):
        for n, g in checks.calls(f).items():
            todo.setdefault(n, g)
    failures, missing = {}, []
    for n in sorted(todo, key=order.index):
        space = dict(getattr(todo[n], "__globals__", {}))
        space.update(todo)
        exc = checks.failure_of(n, todo[n], space)
        if isinstance(exc, checks.NotImplementedYet):
            if not str(exc).startswith((f"{n} calls ", f"{n} cannot be checked yet")):
                missing.append(n)       # not: written, but calls (or needs) one that is not
        elif exc is not None:
            failures[n] = exc
    if not failures and not missing:
        return True
    if not failures:
        print(MESSAGE.format(_names(fns)))
        if set(missing) - set(fns):
            print(f"Not implemented yet: {_names(checks.exercise_label(n) for n in missing)}.")
        return False
    first = next(iter(failures))
    said = str(failures[first])
    said = said[len(first) + 2:] if said.startswith(first + ": ") else said
    print(f"This experiment does not run yet: it needs {_names(fns)} from Section 3.4, and run on a "
          f"function that fails its check its numbers would describe the bug, not the LSTM.")
    print(f"Fix {checks.exercise_label(first)} first: its check says: {' '.join(said.split())}")
    others = [checks.exercise_label(n) for n in failures if n != first]
    if others:
        print(f"Also failing their checks: {_names(others)}.")
    if missing:
        print(f"Not implemented yet: {_names(missing)}.")
    print("Run the check cells of Section 3.4 (or the progress cell) until they pass, then this cell again.")
    return False


# ------------------------------------------------------------------ vanishing gradients

def _inputs(T, N, D, rng):
    return rng.normal(size=(N, T, D))


def rnn_gradient_norms(T=100, N=16, D=4, H=32, seed=0, weight_scale=1.0):
    """||dL/dh_t|| for t = 1..T of a vanilla tanh RNN, for a loss L that depends on h_T only.

    Weights as seqlab.models.init_params (uniform in +-weight_scale/sqrt(H)), inputs x ~ N(0, 1),
    h_0 = 0; dL/dh_T is a fixed random direction of norm 1. The gradient is carried back one
    step at a time with seqlab.layers.rnn_step_backward.
    returns a (T,) array; entry t-1 is the norm (over the batch and the hidden units) of dL/dh_t.
    """
    rng = np.random.default_rng(seed)
    params = models.init_params(D, H, 1, 1, rng)
    Wx, Wh, b = (params[k] * (weight_scale if k != "b" else 1.0) for k in ("Wx", "Wh", "b"))
    x = _inputs(T, N, D, rng)
    h = np.zeros((N, H))
    caches = []
    for t in range(T):
        h, cache = layers.rnn_step_forward(x[:, t], h, Wx, Wh, b)
        caches.append(cache)
    dh = rng.normal(size=(N, H))
    dh /= np.linalg.norm(dh)
    norms = np.empty(T)
    for t in reversed(range(T)):
        norms[t] = np.linalg.norm(dh)
        _, dh, _, _, _ = layers.rnn_step_backward(dh, caches[t])
    return norms


def rnn_recurrent_matrix(H=32, D=4, seed=0, weight_scale=1.0):
    """The W_h of rnn_gradient_norms with the same arguments, (H, H)."""
    return models.init_params(D, H, 1, 1, np.random.default_rng(seed))["Wh"] * weight_scale


def largest_singular_value(W):
    """The largest singular value of W: the most W can stretch a vector (its spectral norm)."""
    return float(np.linalg.svd(W, compute_uv=False)[0])


# A vanilla RNN whose recurrent weights are 4 times init_params' (largest singular value about
# 4.2), trained on the adding problem with plain SGD, where a gradient's size is the step's.
EXPLODING = dict(T=50, H=16, batch=32, steps=200, lr=0.1, weight_scale=4.0, max_norm=1.0, seed=0)


def exploding_run(clip_fn=None):
    """Train the vanilla RNN of EXPLODING with plain SGD (p -= lr * g), clipping the gradients
    with clip_fn at EXPLODING["max_norm"] when given. Same batches with or without clipping.
    returns {"loss": [...], "grad_norm": [...]} per step (the norm before clipping); the run
    stops early if the loss stops being finite."""
    cfg = EXPLODING
    rng = np.random.default_rng(cfg["seed"])
    params = models.init_params(2, cfg["H"], 1, 1, rng)
    params["Wh"] *= cfg["weight_scale"]
    model = models.SequenceModel(params, layers.rnn_forward, layers.rnn_backward, readout="last")
    history = {"loss": [], "grad_norm": []}
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(cfg["steps"]):
            x, y = data.adding_problem(cfg["batch"], cfg["T"], rng)
            loss, grads = model.loss_and_grads(x, y)
            norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
            history["loss"].append(float(loss))
            history["grad_norm"].append(norm)
            if not (np.isfinite(loss) and np.isfinite(norm)):
                break
            if clip_fn is not None:
                grads, _ = clip_fn(grads, cfg["max_norm"])
            for k in params:
                params[k] -= cfg["lr"] * grads[k]
    return history


def _logistic(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def lstm_gradient_flow(step_forward, step_backward, T=100, N=16, D=4, H=32, seed=0,
                       forget_bias=1.0):
    """How the gradient of a loss on h_T flows back through an LSTM, step by step.

    step_forward / step_backward: lstm_step_forward and lstm_step_backward (the student's).
    Same inputs and loss direction as rnn_gradient_norms with the same seed; weights as
    seqlab.models.init_params with the forget-gate bias set to forget_bias. Going backwards,
    each step receives dnext_h and dnext_c from the step after it (zero dnext_c at t = T).
    returns a dict of (T,) arrays, entry t-1 for step t:
        "h"       ||dL/dh_t||, the total gradient on the hidden state
        "c"       ||dL/dc_t||, the total gradient on the cell state (both of its paths: from
                  c_{t+1} along the cell line, and through h_t = o_t * tanh(c_t))
        "forget"  the mean forget-gate value f_t (over the batch and the units)
        "slope"   the mean of 1 - tanh(c_t)^2, how much of dL/dh_t gets into c_t
        "cell_only"  ||dL/dc_T * f_T * f_{T-1} * ... * f_{t+1}||: the cell line alone, as if no
                  gradient came back through h_{t-1} and W_h
    The gates are recomputed here from the weights (the student's cache is never opened).
    """
    rng = np.random.default_rng(seed)
    _ = models.init_params(D, H, 1, 1, rng)          # same random stream as rnn_gradient_norms
    x = _inputs(T, N, D, rng)
    dh = rng.normal(size=(N, H))
    dh /= np.linalg.norm(dh)
    params = models.init_params(D, H, 1, 4, np.random.default_rng(seed + 1))
    Wx, Wh, b = params["Wx"], params["Wh"], params["b"].copy()
    b[H:2 * H] = forget_bias
    h, c = np.zeros((N, H)), np.zeros((N, H))
    caches, outs, cells = [], [], []
    for t in range(T):
        pre = x[:, t] @ Wx + h @ Wh + b
        outs.append((_logistic(pre[:, H:2 * H]), _logistic(pre[:, 3 * H:])))   # f_t, o_t
        h, c, cache = step_forward(x[:, t], h, c, Wx, Wh, b)
        caches.append(cache)
        cells.append(c)
    flow = {key: np.empty(T) for key in ("h", "c", "forget", "slope", "cell_only")}
    dc = np.zeros((N, H))
    line = None
    for t in reversed(range(T)):
        f_t, o_t = outs[t]
        slope = 1.0 - np.tanh(cells[t]) ** 2
        flow["h"][t] = np.linalg.norm(dh)
        flow["c"][t] = np.linalg.norm(dc + dh * o_t * slope)
        line = dh * o_t * slope if line is None else line * outs[t + 1][0]
        flow["cell_only"][t] = np.linalg.norm(line)
        flow["forget"][t] = f_t.mean()
        flow["slope"][t] = slope.mean()
        _, dh, dc, _, _, _ = step_backward(dh, dc, caches[t])
    return flow


def lstm_gradient_norms(step_forward, step_backward, T=100, N=16, D=4, H=32, seed=0,
                        forget_bias=1.0):
    """||dL/dh_t|| for t = 1..T of an LSTM, for a loss L that depends on h_T only
    (the "h" entry of lstm_gradient_flow, which says how it is measured).
    returns a (T,) array; entry t-1 is the norm of dL/dh_t.
    """
    return lstm_gradient_flow(step_forward, step_backward, T, N, D, H, seed, forget_bias)["h"]


def decay_summary(norms):
    """What a curve of gradient norms (entry t-1 for step t, the loss on the last step) does,
    in the numbers Section 3.5 quotes.

    returns a dict:
        "first_step"    norms[T-2] / norms[T-1], the factor of the first step back
        "median_step"   the median of the per-step factors norms[t-1] / norms[t] over the
                        other steps (below 1: shrinking as it goes back, above 1: growing)
        "low", "high"   the 10th and 90th percentiles of those factors
        "argmin"        the step t (1-based) where the norm is smallest
        "growth"        for the steps before that minimum, the geometric-mean factor per step
                        back from it to t = 1 ((norms[0] / min) ** (1 / (argmin - 1)); nan when
                        the minimum is at t = 1)
        "at_1", "at_T_minus_50"   norms[0] and norms[-51] (when there are more than 50 steps)
    """
    norms = np.asarray(norms, dtype=float)
    T = len(norms)
    factors = norms[:-1] / norms[1:]                 # factors[t-1]: from step t+1 back to t
    rest = factors[:-1]
    k = int(np.argmin(norms))
    return {
        "first_step": float(factors[-1]),
        "median_step": float(np.median(rest)),
        "low": float(np.quantile(rest, 0.1)),
        "high": float(np.quantile(rest, 0.9)),
        "argmin": k + 1,
        "growth": float((norms[0] / norms[k]) ** (1.0 / k)) if k > 0 else float("nan"),
        "at_1": float(norms[0]),
        "at_T_minus_50": float(norms[-51]) if T > 50 else float("nan"),
    }


# ------------------------------------------------------------------ the adding problem

# The target is the sum of two values uniform in [0, 1): its mean is 1 and its variance 2/12,
# the error of a model that always predicts the mean.
BASELINE = 1 / 6

# Settings found by tests/test_adding_problem.py: with them the LSTM reaches test MSE < 0.01
# and the vanilla RNN stays at the baseline 1/6 (predicting the mean).
ADDING = dict(T=50, H=8, batch=32, steps=800, lr=3e-2, max_norm=1.0, seed=5, test_seed=1234,
              n_test=2000)


def adding_problem_comparison(lstm_forward, lstm_backward, clip_fn=None, T=None, steps=None,
                              log_every=0, forget_bias=None, lstm_only=False):
    """Train an LSTM (the given forward/backward) and a vanilla RNN on the adding problem.

    Both models have the same hidden size, initial random stream, batches and optimiser
    (Adam, gradient clipping with clip_fn at max_norm when clip_fn is given). forget_bias:
    the LSTM's initial forget-gate bias (default init_params', 1); lstm_only: train the LSTM
    only (the result has no "vanilla RNN" entry).
    returns {"LSTM": {"loss", "grad_norm", "test_mse"}, "vanilla RNN": {...}, "baseline": var(y_test)}.
    """
    cfg = dict(ADDING)
    T = cfg["T"] if T is None else T
    steps = cfg["steps"] if steps is None else steps
    x_test, y_test = data.adding_problem(cfg["n_test"], T, np.random.default_rng(cfg["test_seed"]))
    results = {"baseline": float(np.mean((y_test - y_test.mean()) ** 2))}
    for label, fwd, bwd, gates in (("LSTM", lstm_forward, lstm_backward, 4),
                                   ("vanilla RNN", layers.rnn_forward, layers.rnn_backward, 1)):
        rng = np.random.default_rng(cfg["seed"])
        params = models.init_params(2, cfg["H"], 1, gates, rng)
        if gates == 4 and forget_bias is not None:
            params["b"][cfg["H"]:2 * cfg["H"]] = forget_bias
        if gates == 1 and lstm_only:
            break
        model = models.SequenceModel(params, fwd, bwd, readout="last")
        if log_every:
            print(label)
        history = models.train(model, lambda: data.adding_problem(cfg["batch"], T, rng), steps,
                               optim.Adam(lr=cfg["lr"]), clip_fn=clip_fn,
                               max_norm=cfg["max_norm"] if clip_fn is not None else None,
                               log_every=log_every)
        history["test_mse"] = float(np.mean((model.predict(x_test) - y_test) ** 2))
        results[label] = history
    return results


def gru_adding_run(clip_fn=None):
    """Train seqlab's GRU (seqlab.layers.gru_forward, Cho et al.'s form) on the adding problem
    exactly as adding_problem_comparison trains the LSTM: the same hidden size, random stream,
    batches, optimiser and clipping. returns its history, with "test_mse"."""
    cfg = dict(ADDING)
    x_test, y_test = data.adding_problem(cfg["n_test"], cfg["T"], np.random.default_rng(cfg["test_seed"]))
    rng = np.random.default_rng(cfg["seed"])
    model = models.SequenceModel(models.init_params(2, cfg["H"], 1, 3, rng), layers.gru_forward,
                                 layers.gru_backward, readout="last")
    history = models.train(model, lambda: data.adding_problem(cfg["batch"], cfg["T"], rng), cfg["steps"],
                           optim.Adam(lr=cfg["lr"]), clip_fn=clip_fn,
                           max_norm=cfg["max_norm"] if clip_fn is not None else None)
    history["test_mse"] = float(np.mean((model.predict(x_test) - y_test) ** 2))
    return history


def adding_summary(results, window=20):
    """The numbers Section 3.5 quotes about a run of adding_problem_comparison.

    returns a dict:
        "test_mse"        {"LSTM": ..., "vanilla RNN": ...}
        "baseline"        1/6, the error of always predicting the mean target 1 (its variance)
        "test_variance"   the test set's own variance: what predicting its mean scores there
        "solved_step"     the first step at which the LSTM's training loss, averaged over the
                          `window` steps that end there, is below a tenth of the baseline 1/6
                          (None when it never is)
        "rnn_above"       the fraction of steps at which the vanilla RNN's gradient norm (before
                          clipping) is larger than the LSTM's
        "median_norm"     {"LSTM": ..., "vanilla RNN": ...}: the median gradient norm over the
                          second half of the run
        "clipped"         {"LSTM": ..., "vanilla RNN": ...}: steps whose norm exceeded max_norm
        "clipped_steps"   {"LSTM": [...], "vanilla RNN": [...]}: those steps (1-based)
        "peak_step"       {"LSTM": ..., "vanilla RNN": ...}: the step with the largest norm
        "output_share"    {"LSTM": ..., "vanilla RNN": ...}: the median over the run of the share
                          of the squared gradient norm that falls on the output layer
                          (W_out, b_out), when the history records per-parameter norms
    """
    out = {"test_mse": {}, "median_norm": {}, "clipped": {}, "output_share": {}, "peak_step": {},
           "clipped_steps": {},
           "baseline": BASELINE, "test_variance": results["baseline"]}
    norms = {}
    for name in ("LSTM", "vanilla RNN"):
        hist = results[name]
        g = np.asarray(hist["grad_norm"], dtype=float)
        norms[name] = g
        out["test_mse"][name] = hist["test_mse"]
        out["median_norm"][name] = float(np.median(g[len(g) // 2:]))
        out["clipped"][name] = int(np.sum(g > ADDING["max_norm"]))
        out["clipped_steps"][name] = [int(k) + 1 for k in np.flatnonzero(g > ADDING["max_norm"])]
        out["peak_step"][name] = int(np.argmax(g)) + 1
        parts = hist.get("param_norm")
        if parts:
            head = np.square(parts["W_out"]) + np.square(parts["b_out"])
            total = sum(np.square(v) for v in parts.values())
            out["output_share"][name] = float(np.median(np.asarray(head) / np.asarray(total)))
    out["rnn_above"] = float(np.mean(norms["vanilla RNN"] > norms["LSTM"]))
    loss = np.asarray(results["LSTM"]["loss"], dtype=float)
    if len(loss) >= window:
        avg = np.convolve(loss, np.ones(window) / window, mode="valid")
        below = np.flatnonzero(avg < BASELINE / 10)
        out["solved_step"] = int(below[0]) + window if below.size else None
    else:
        out["solved_step"] = None
    return out


def solved_step(loss, window=20):
    """The first step at which a training loss on the adding problem, averaged over the
    `window` steps that end there, is below a tenth of the baseline 1/6 (None if never)."""
    loss = np.asarray(loss, dtype=float)
    if len(loss) < window:
        return None
    avg = np.convolve(loss, np.ones(window) / window, mode="valid")
    below = np.flatnonzero(avg < BASELINE / 10)
    return int(below[0]) + window if below.size else None


# ------------------------------------------------------------------ character-level model

def train_char_model(lstm_forward, lstm_backward, clip_fn=None, text=None, H=64, T=32, batch=16,
                     steps=500, lr=1e-2, max_norm=5.0, seed=0, log_every=0):
    """Train a character-level LSTM language model (the given forward/backward) on `text`
    (default: the sonnets of data/sonnets.txt).

    One-hot characters in, a softmax over the vocabulary at every step out (readout "every"),
    cross-entropy loss, Adam, gradient clipping with clip_fn at max_norm when given.
    returns (params, vocab, history): the trained parameter dict, the Vocabulary and the
    training history of seqlab.models.train.
    """
    text = textlib.load_text() if text is None else text
    vocab = textlib.Vocabulary(text)
    ids = vocab.encode(text)
    V = len(vocab)
    rng = np.random.default_rng(seed)
    params = models.init_params(V, H, V, 4, rng)
    model = models.SequenceModel(params, lstm_forward, lstm_backward, readout="every")
    history = models.train(model, lambda: textlib.random_batch(ids, batch, T, V, rng), steps,
                           optim.Adam(lr=lr), clip_fn=clip_fn,
                           max_norm=max_norm if clip_fn is not None else None, log_every=log_every)
    return params, vocab, history
