"""Numerical and automatic differentiation made as cheap as a student can make it (issue 18 item 3).

Notebook sources, shared by tests/test_numerical_families.py (graded through the CLI) and
benchmarks/bench_derivation.py (`make bench`: their CPU time against the reference's).

Every family keeps its forward passes right (the reference, with a cache that also holds the
arguments) and never calls a graded function by name inside its backward pass (the grader's
stand-ins would answer, within a budget): it works on a private copy of the LSTM cell written to
broadcast over a leading axis of perturbations, so that hundreds of perturbed forward passes are
one numpy call.
"""
import textwrap

# The LSTM cell from its pre-activations, broadcasting over any leading axes; works on complex
# arrays too (numpy's tanh is complex-analytic), which complex-step differentiation needs.
CELL = '''
def _cell(a, prev_c, H):
    i = 0.5 + 0.5 * np.tanh(0.5 * a[..., :H])
    f = 0.5 + 0.5 * np.tanh(0.5 * a[..., H:2 * H])
    g = np.tanh(a[..., 2 * H:3 * H])
    o = 0.5 + 0.5 * np.tanh(0.5 * a[..., 3 * H:])
    c = f * prev_c + i * g
    return o * np.tanh(c), c
'''

# (a) lstm_step_backward by compressed centred differences: a column of x (and of prev_h) for all
# samples at once (samples are independent), a gate block of a row of Wx / Wh / b for all units
# at once (a step mixes no units), prev_c all at once (diagonal). 2 (5D + 5H + 5) forward passes,
# batched into 5 pairs of numpy calls.
STEP_COMPRESSED = CELL + '''
def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, b = cache["args"]
    N, D = x.shape
    H = prev_h.shape[1]
    eps = 1e-5

    def loss(xx, hh, cc, wx, wh, bb):           # elementwise contributions, (..., N, H)
        nh, nc = _cell(xx @ wx + hh @ wh + bb, cc, H)
        return dnext_h * nh + dnext_c * nc

    def diff(make):
        return (loss(*make(eps)) - loss(*make(-eps))) / (2 * eps)

    def block_rows(rows):                       # (4 rows, rows, 4H): a gate block of one row
        E = np.zeros((4, rows, rows, 4 * H))
        for g in range(4):
            for j in range(rows):
                E[g, j, j, g * H:(g + 1) * H] = 1.0
        return E.reshape(4 * rows, rows, 4 * H)

    def to_weights(per_unit, rows):             # (4 rows, H) -> (rows, 4H)
        return per_unit.reshape(4, rows, H).transpose(1, 0, 2).reshape(rows, 4 * H)

    ED, EH, EB = np.eye(D)[:, None, :], np.eye(H)[:, None, :], block_rows(1)[:, 0]
    dx = diff(lambda s: (x + s * ED, prev_h, prev_c, Wx, Wh, b)).sum(-1).T
    dprev_h = diff(lambda s: (x, prev_h + s * EH, prev_c, Wx, Wh, b)).sum(-1).T
    dprev_c = diff(lambda s: (x, prev_h, prev_c + s, Wx, Wh, b))
    dWx = to_weights(diff(lambda s: (x, prev_h, prev_c, Wx + s * block_rows(D), Wh, b)).sum(-2), D)
    dWh = to_weights(diff(lambda s: (x, prev_h, prev_c, Wx, Wh + s * block_rows(H), b)).sum(-2), H)
    db = to_weights(diff(lambda s: (x, prev_h, prev_c, Wx, Wh, b + s * EB[:, None, :])).sum(-2), 1)[0]
    return dx, dprev_h, dprev_c, dWx, dWh, db
'''

# (c) lstm_step_backward by coloured differences of the pre-activations: the Jacobian of the
# step's elementwise contributions (N, H) with respect to a (N, 4H) has four columns per row, one
# in each gate block, so four colours (one gate block, every sample and unit at once) recover it,
# and one more colour prev_c: 10 evaluations of the elementwise part, then exact products. No
# chain rule through the gates is written.
STEP_COLOURED = CELL + '''
def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, b = cache["args"]
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    eps = 1e-5

    def loss(aa, cc):
        nh, nc = _cell(aa, cc, H)
        return dnext_h * nh + dnext_c * nc

    colours = np.zeros((4, 1, 4 * H))
    for g in range(4):
        colours[g, 0, g * H:(g + 1) * H] = 1.0
    seen = (loss(a + eps * colours, prev_c) - loss(a - eps * colours, prev_c)) / (2 * eps)   # (4, N, H)
    da = np.concatenate(list(seen), axis=1)
    dprev_c = (loss(a, prev_c + eps) - loss(a, prev_c - eps)) / (2 * eps)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)
'''

# (d, step) complex step on the compressed directions of (a): one complex forward pass per
# direction instead of two real ones, exact to rounding.
STEP_COMPLEX = STEP_COMPRESSED.replace(
    "    def diff(make):\n        return (loss(*make(eps)) - loss(*make(-eps))) / (2 * eps)\n",
    "    def diff(make):\n        return loss(*make(1e-30j)).imag / 1e-30\n")

# (d, step) the same on two threads: Wh's directions (the largest share) on a second thread, which
# numpy lets run in parallel; wall time about halves, CPU time does not.
STEP_COMPLEX_THREADS = STEP_COMPLEX.replace(
    "    dWh = to_weights(diff(lambda s: (x, prev_h, prev_c, Wx, Wh + s * block_rows(H), b)).sum(-2), H)\n", "").replace(
    "    ED, EH, EB =",
    "    import threading\n"
    "    box = {}\n"
    "    worker = threading.Thread(target=lambda: box.update(dWh=to_weights(diff(\n"
    "        lambda s: (x, prev_h, prev_c, Wx, Wh + s * block_rows(H), b)).sum(-2), H)))\n"
    "    worker.start()\n"
    "    ED, EH, EB =").replace(
    "    return dx, dprev_h, dprev_c, dWx, dWh, db\n",
    "    worker.join()\n    return dx, dprev_h, dprev_c, dWx, box[\"dWh\"], db\n")

# The sequence: a perturbation of step t's pre-activations (every sample at once: samples are
# independent) changes only the steps from t on; a batch of such pushes runs from the cached
# state of step t. `_pushes(mode)` -> da (N, T, 4H): the gradient of sum(dh * h) with respect to
# every pre-activation; then exact products (no gate derivative, no BPTT written).
SEQ_PUSHES = CELL + '''
def _states(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    ax = x @ Wx + b
    h, c, states = h0, np.zeros_like(h0), []
    for t in range(T):
        states.append((h, c))
        h, c = _cell(ax[:, t] + h @ Wh, c, H)
    states.append((h, c, h))        # states[T]: the last step's output; [-1][2] the same
    return ax, states


def _tail(ax, states, Wh, dh, t, push, H):
    """Per-sample change of sum(dh * h) over steps t.. when `push` (P, 1, 4H) is added to step
    t's pre-activations: (P, N). Differences are taken per element, against the unpushed states,
    before summing (less rounding: one-sided differences need it)."""
    h, c = states[t][:2]
    T = ax.shape[1]
    total = 0.0
    for s in range(t, T):
        if np.iscomplexobj(h):      # complex step: real matrix products on each part (half the work)
            a = ax[:, s] + (h.real @ Wh + 1j * (h.imag @ Wh))
        else:
            a = ax[:, s] + h @ Wh
        h, c = _cell(a + push if s == t else a, c, H)
        base = states[s + 1][0] if s + 1 < T else states[-1][2]
        total = total + np.sum(dh[:, s] * (h - base), axis=-1)
    return total


def _pushes(dh, x, h0, Wx, Wh, b, mode):
    N, T, _ = x.shape
    H = h0.shape[1]
    ax, states = _states(x, h0, Wx, Wh, b)
    E = np.eye(4 * H)[:, None, :]
    da = np.empty((N, T, 4 * H))
    if mode.endswith("threads"):     # the steps shared between two threads (numpy lets go of the GIL)
        from concurrent.futures import ThreadPoolExecutor
        inner = mode.split()[0]
        def some(ts):
            for t in ts:
                da[:, t] = _pushes_at(ax, states, Wh, dh, t, E, H, inner)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(some, [range(0, T, 2), range(1, T, 2)]))
        return da
    for t in range(T):
        da[:, t] = _pushes_at(ax, states, Wh, dh, t, E, H, mode)
    return da


def _pushes_at(ax, states, Wh, dh, t, E, H, mode):
    """da[:, t] (N, 4H): one push per pre-activation column, every sample at once."""
    if mode == "centred":
        seen = (_tail(ax, states, Wh, dh, t, 1e-5 * E, H) - _tail(ax, states, Wh, dh, t, -1e-5 * E, H)) / 2e-5
    elif mode == "one-sided":        # half the passes; 1e-7 balances truncation and rounding
        seen = _tail(ax, states, Wh, dh, t, 1e-7 * E, H) / 1e-7
    else:                            # complex step: one pass per column, exact to rounding
        seen = _tail(ax, states, Wh, dh, t, 1e-30j * E, H).imag / 1e-30
    return seen.T


def _products(da, x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    ax, states = _states(x, h0, Wx, Wh, b)
    prev_h = np.stack([s[0] for s in states[:T]], axis=1)
    rows = da.reshape(N * T, 4 * H)
    return (da @ Wx.T, da[:, 0] @ Wh.T, x.reshape(N * T, D).T @ rows, prev_h.reshape(N * T, H).T @ rows,
            rows.sum(axis=0))
'''


# (g) the work done in a forked child, which sends the answer back through a pipe: the calling
# thread and process spend almost no CPU time (a limit on those, not on the cgroup, misses it).
IN_A_CHILD = '''
def {name}(*args):
    import os, pickle
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        pid = None
    if pid == 0:
        try:
            os.close(r)
            with os.fdopen(w, "wb") as out:
                out.write(pickle.dumps(_numerical_backward(*args)))
        finally:
            os._exit(0)
    if pid is None:
        os.close(r)
        os.close(w)
        return _numerical_backward(*args)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)
'''


def in_a_child(source, name):
    """`source`'s function `name`, run in a forked child that pipes its answer back."""
    return source.replace(f"def {name}(", "def _numerical_backward(", 1) + IN_A_CHILD.replace("{name}", name)


def seq_pushes(mode):
    """(b) centred, (d) complex step, (e) one-sided: lstm_backward from batched pushes."""
    return SEQ_PUSHES + textwrap.dedent(f'''
        def lstm_backward(dh, cache):
            x, h0, Wx, Wh, b = cache["args"]
            return _products(_pushes(dh, x, h0, Wx, Wh, b, "{mode}"), x, h0, Wx, Wh, b)
    ''')


# (b'') cheaper still: a push at step t reaches the future only through the state (h_t, c_t), 2H
# numbers a sample, not 4H: the future's sensitivity to the state by pushes of h_t's and c_t's
# columns (every sample at once) from step t + 1 on, then step t's own pre-activation gradient
# by the four gate-block colours of (c). Neither BPTT nor a gate derivative is written.
STATE_PUSHES = SEQ_PUSHES + '''
def _future(ax, states, Wh, dh, t, push_h, push_c, H):
    """Per-sample change of sum(dh * h) over steps t + 1.. when (h_t, c_t) is pushed: (P, N)."""
    h, c = states[t + 1][:2]
    h, c = h + push_h, c + push_c
    T = ax.shape[1]
    total = 0.0
    for s in range(t + 1, T):
        h, c = _cell(ax[:, s] + h @ Wh, c, H)
        total = total + np.sum(dh[:, s] * (h - states[s + 1][0]), axis=-1)
    return total


def _state_pushes(dh, x, h0, Wx, Wh, b, one_sided):
    N, T, _ = x.shape
    H = h0.shape[1]
    ax, states = _states(x, h0, Wx, Wh, b)
    E, zero = np.eye(H)[:, None, :], np.zeros((1, 1, H))
    colours = np.zeros((4, 1, 4 * H))
    for g in range(4):
        colours[g, 0, g * H:(g + 1) * H] = 1.0
    da = np.empty((N, T, 4 * H))
    for t in range(T):
        if t == T - 1:
            gh = gc = np.zeros((N, H))
        elif one_sided:
            gh = (_future(ax, states, Wh, dh, t, 1e-7 * E, zero, H) / 1e-7).T
            gc = (_future(ax, states, Wh, dh, t, zero, 1e-7 * E, H) / 1e-7).T
        else:
            gh = ((_future(ax, states, Wh, dh, t, 1e-5 * E, zero, H)
                   - _future(ax, states, Wh, dh, t, -1e-5 * E, zero, H)) / 2e-5).T
            gc = ((_future(ax, states, Wh, dh, t, zero, 1e-5 * E, H)
                   - _future(ax, states, Wh, dh, t, zero, -1e-5 * E, H)) / 2e-5).T
        prev_h, prev_c = states[t][:2]
        a = ax[:, t] + prev_h @ Wh
        up_h = dh[:, t] + gh

        def loss(aa):
            nh, nc = _cell(aa, prev_c, H)
            return up_h * nh + gc * nc

        seen = (loss(a + 1e-5 * colours) - loss(a - 1e-5 * colours)) / 2e-5
        da[:, t] = np.concatenate(list(seen), axis=1)
    return da
'''


def state_pushes(one_sided):
    return STATE_PUSHES + textwrap.dedent(f'''
        def lstm_backward(dh, cache):
            x, h0, Wx, Wh, b = cache["args"]
            return _products(_state_pushes(dh, x, h0, Wx, Wh, b, {one_sided}), x, h0, Wx, Wh, b)
    ''')


# (b') lstm_backward by plain compressed differences of the inputs, as issue 18 describes them:
# a column of x at one step for all samples at once, a column of h0 for all samples at once; the
# weights cannot be compressed in a sequence (one step later every unit depends on every weight),
# so each entry of Wx, Wh and b is its own direction (batched, run from the start).
SEQ_COMPRESSED = CELL + '''
def _sample_losses(x, h0, Wx, Wh, b, dh):
    """sum(dh * h) per sample, for inputs with any leading axes of perturbations: (..., N)."""
    T = x.shape[-2]
    H = h0.shape[-1]
    ax = x @ Wx + b[..., None, None, :] if np.ndim(b) > 1 else x @ Wx + b
    h, c = h0, 0.0
    total = 0.0
    for t in range(T):
        h, c = _cell(ax[..., t, :] + h @ Wh, c, H)
        total = total + np.sum(dh[:, t] * h, axis=-1)
    return total


def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache["args"]
    N, T, D = x.shape
    H = h0.shape[1]
    eps = 1e-5
    L = lambda *args: _sample_losses(*args, dh)
    ET = np.eye(T * D).reshape(T * D, 1, T, D)
    dx = ((L(x + eps * ET, h0, Wx, Wh, b) - L(x - eps * ET, h0, Wx, Wh, b)) / (2 * eps)).T.reshape(N, T, D)
    EH = np.eye(H)[:, None, :]
    dh0 = ((L(x, h0 + eps * EH, Wx, Wh, b) - L(x, h0 - eps * EH, Wx, Wh, b)) / (2 * eps)).T
    grads = []
    for W, name in ((Wx, "Wx"), (Wh, "Wh"), (b, "b")):
        g = np.zeros(W.size)
        for start in range(0, W.size, 256):
            idx = np.arange(start, min(start + 256, W.size))
            E = np.zeros((idx.size, W.size))
            E[np.arange(idx.size), idx] = eps
            E = E.reshape((idx.size,) + W.shape)
            args = {"Wx": Wx, "Wh": Wh, "b": b}
            plus, minus = dict(args), dict(args)
            plus[name], minus[name] = W + E, W - E
            if name == "Wx":
                diffs = L(x, h0, plus["Wx"][:, None], Wh, b) - L(x, h0, minus["Wx"][:, None], Wh, b)
            elif name == "Wh":
                diffs = L(x, h0, Wx, plus["Wh"], b) - L(x, h0, Wx, minus["Wh"], b)
            else:
                diffs = L(x, h0, Wx, Wh, plus["b"]) - L(x, h0, Wx, Wh, minus["b"])
            g[idx] = diffs.sum(axis=-1) / (2 * eps)
        grads.append(g.reshape(W.shape))
    return (dx, dh0, *grads)
'''

# (c, sequence) coloured differences inside a BPTT loop: at each step, the step's pre-activation
# gradient by the four gate-block colours and prev_c's by one (10 evaluations of the elementwise
# cell), the recurrence dprev_h = da @ Wh.T and the final products exact. The student writes the
# time loop, not one derivative of the cell.
SEQ_COLOURED = SEQ_PUSHES + '''
def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache["args"]
    N, T, _ = x.shape
    H = h0.shape[1]
    ax, states = _states(x, h0, Wx, Wh, b)
    colours = np.zeros((4, 1, 4 * H))
    for g in range(4):
        colours[g, 0, g * H:(g + 1) * H] = 1.0
    eps = 1e-5
    da = np.empty((N, T, 4 * H))
    carry_h, carry_c = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(T)):
        prev_h, prev_c = states[t][:2]
        a = ax[:, t] + prev_h @ Wh
        up_h = dh[:, t] + carry_h

        def loss(aa, cc):
            nh, nc = _cell(aa, cc, H)
            return up_h * nh + carry_c * nc

        seen = (loss(a + eps * colours, prev_c) - loss(a - eps * colours, prev_c)) / (2 * eps)
        da[:, t] = np.concatenate(list(seen), axis=1)
        carry_c = (loss(a, prev_c + eps) - loss(a, prev_c - eps)) / (2 * eps)
        carry_h = da[:, t] @ Wh.T
    out = _products(da, x, h0, Wx, Wh, b)
    return (out[0], carry_h) + out[2:]
'''

# (f) numerical derivatives of the gate activations only: sigmoid'(a) and tanh'(a), elementwise,
# by centred differences of scalar functions; the chain rule through the cell and BPTT written
# by hand. A derived backward pass with a lazy derivative (see the report): never flagged.
GATE_DERIVATIVES = '''
def _d(fn, z, eps=1e-5):
    return (fn(z + eps) - fn(z - eps)) / (2 * eps)


def _sig(z):
    return 0.5 + 0.5 * np.tanh(0.5 * z)
'''

STEP_GATE_DERIVATIVES = GATE_DERIVATIVES + '''
def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, b = cache["args"]
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    ai, af, ag, ao = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    i, f, g, o = _sig(ai), _sig(af), np.tanh(ag), _sig(ao)
    next_c = f * prev_c + i * g
    dc = dnext_c + dnext_h * o * _d(np.tanh, next_c)
    da = np.concatenate([dc * g * _d(_sig, ai), dc * prev_c * _d(_sig, af), dc * i * _d(np.tanh, ag),
                         dnext_h * np.tanh(next_c) * _d(_sig, ao)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)
'''

SEQ_GATE_DERIVATIVES = GATE_DERIVATIVES + '''
def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache["args"]
    N, T, D = x.shape
    H = h0.shape[1]
    pre, cs, hs = [], [], [h0]
    h, c = h0, np.zeros_like(h0)
    for t in range(T):
        a = x[:, t] @ Wx + h @ Wh + b
        c = _sig(a[:, H:2 * H]) * c + _sig(a[:, :H]) * np.tanh(a[:, 2 * H:3 * H])
        h = _sig(a[:, 3 * H:]) * np.tanh(c)
        pre.append(a)
        cs.append(c)
        hs.append(h)
    da = np.zeros((N, T, 4 * H))
    dnext_h_rec, dnext_c = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(T)):
        a = pre[t]
        ai, af, ag, ao = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        i, f, g, o = _sig(ai), _sig(af), np.tanh(ag), _sig(ao)
        prev_c = cs[t - 1] if t > 0 else np.zeros_like(h0)
        dnext_h = dh[:, t] + dnext_h_rec
        dc = dnext_c + dnext_h * o * _d(np.tanh, cs[t])
        da[:, t] = np.concatenate([dc * g * _d(_sig, ai), dc * prev_c * _d(_sig, af), dc * i * _d(np.tanh, ag),
                                   dnext_h * np.tanh(cs[t]) * _d(_sig, ao)], axis=1)
        dnext_c = dc * f
        dnext_h_rec = da[:, t] @ Wh.T
    prev_h = np.stack(hs[:-1], axis=1)
    rows = da.reshape(N * T, 4 * H)
    return (da @ Wx.T, dnext_h_rec, x.reshape(N * T, D).T @ rows, prev_h.reshape(N * T, H).T @ rows,
            rows.sum(axis=0))
'''

# (g) the numerical work moved into the forward pass, which no derivation limit times: lstm_forward
# also keeps, for every step t and pre-activation column, how every later hidden state of every
# sample moves when that column is pushed (centred, batched as above): the Jacobian of h with
# respect to the pre-activations. lstm_backward contracts it with dh (one einsum) and finishes
# with exact products: a few times the reference.
FORWARD_JACOBIAN = SEQ_PUSHES + '''
def _tail_states(ax, states, Wh, t, push, H):
    h, c = states[t][:2]
    out = []
    for s in range(t, ax.shape[1]):
        a = ax[:, s] + h @ Wh
        h, c = _cell(a + push if s == t else a, c, H)
        out.append(h)
    return np.stack(out, axis=-2)                   # (P, N, T - t, H)


def _forward_jacobian(x, h0, Wx, Wh, b):
    T = x.shape[1]
    H = h0.shape[1]
    ax, states = _states(x, h0, Wx, Wh, b)
    E = 1e-5 * np.eye(4 * H)[:, None, :]
    return [(_tail_states(ax, states, Wh, t, E, H) - _tail_states(ax, states, Wh, t, -E, H)) / 2e-5
            for t in range(T)]


def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache["args"]
    N, T, _ = x.shape
    da = np.empty((N, T, 4 * h0.shape[1]))
    for t, J in enumerate(cache["jacobian"]):
        da[:, t] = np.einsum("cnsk,nsk->nc", J, dh[:, t:])
    return _products(da, x, h0, Wx, Wh, b)
'''


def forward_with_jacobian(reference_source):
    """The reference lstm_forward, with a cache that holds its arguments and the Jacobian."""
    body = reference_source.replace("def lstm_forward(", "def _lstm_forward_inner(", 1)
    return body + textwrap.dedent('''

        def lstm_forward(*args):
            h, cache = _lstm_forward_inner(*args)
            return h, {"args": args, "inner": cache, "jacobian": _forward_jacobian(*args)}
    ''')


# (g) reverse-mode automatic differentiation with a hand-written tape (no library): the student
# writes the derivative of each primitive (matmul, +, *, tanh, slices) once and runs the forward
# pass on tape values; BPTT and the cell's chain rule are the tape's, not the student's.
TAPE = '''
class _V:
    """A value on the tape: data, grad, and how to send grad to its parents."""
    def __init__(self, data, parents=(), back=None):
        self.data, self.parents, self.back, self.grad = np.asarray(data), parents, back, None

    def add_grad(self, g):
        self.grad = g if self.grad is None else self.grad + g

    def __add__(self, other):
        other = other if isinstance(other, _V) else _V(other)
        out = _V(self.data + other.data, (self, other))
        def back():
            for p in (self, other):
                g = out.grad
                while g.ndim > p.data.ndim:
                    g = g.sum(axis=0)
                for k, n in enumerate(p.data.shape):
                    if n == 1 and g.shape[k] != 1:
                        g = g.sum(axis=k, keepdims=True)
                p.add_grad(g)
        out.back = back
        return out

    def __mul__(self, other):
        other = other if isinstance(other, _V) else _V(other)
        out = _V(self.data * other.data, (self, other))
        def back():
            self.add_grad(out.grad * other.data)
            other.add_grad(out.grad * self.data)
        out.back = back
        return out

    def __matmul__(self, other):
        out = _V(self.data @ other.data, (self, other))
        def back():
            self.add_grad(out.grad @ other.data.T)
            other.add_grad(self.data.T @ out.grad)
        out.back = back
        return out

    def tanh(self):
        t = np.tanh(self.data)
        out = _V(t, (self,))
        def back():
            self.add_grad(out.grad * (1 - t * t))
        out.back = back
        return out

    def cols(self, lo, hi):
        out = _V(self.data[:, lo:hi], (self,))
        def back():
            g = np.zeros_like(self.data)
            g[:, lo:hi] = out.grad
            self.add_grad(g)
        out.back = back
        return out

    def backward(self, seed):
        order, seen = [], set()
        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for p in v.parents:
                    visit(p)
                order.append(v)
        visit(self)
        self.grad = seed
        for v in reversed(order):
            if v.back is not None and v.grad is not None:
                v.back()


def _sigv(z):
    return (z * 0.5).tanh() * 0.5 + 0.5


def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache["args"]
    N, T, D = x.shape
    H = h0.shape[1]
    xs = [_V(x[:, t]) for t in range(T)]
    vh0, vWx, vWh, vb = _V(h0), _V(Wx), _V(Wh), _V(b[None, :])
    h, c = vh0, _V(np.zeros_like(h0))
    total = None
    for t in range(T):
        a = xs[t] @ vWx + h @ vWh + vb
        c = _sigv(a.cols(H, 2 * H)) * c + _sigv(a.cols(0, H)) * a.cols(2 * H, 3 * H).tanh()
        h = _sigv(a.cols(3 * H, 4 * H)) * c.tanh()
        term = h * dh[:, t]
        total = term if total is None else total + term
    total.backward(np.ones((N, H)))
    return (np.stack([v.grad for v in xs], axis=1), vh0.grad, vWx.grad, vWh.grad, vb.grad[0])
'''

# Honest but slow styles (never flagged), besides tests/test_attacks.py's HONEST_SLOW.
# CS231n style: lstm_backward loops over lstm_step_backward, which recomputes nothing;
# the step written with a Python loop over the batch, per sample.
HONEST_PER_SAMPLE_STEP = '''def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    N, H = dnext_h.shape
    dx, dprev_h, dprev_c = np.zeros_like(x), np.zeros_like(prev_h), np.zeros_like(prev_c)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)
    for n in range(N):
        dc = dnext_c[n] + dnext_h[n] * o[n] * (1 - tanh_c[n] ** 2)
        da = np.concatenate([dc * g[n] * i[n] * (1 - i[n]), dc * prev_c[n] * f[n] * (1 - f[n]),
                             dc * i[n] * (1 - g[n] ** 2), dnext_h[n] * tanh_c[n] * o[n] * (1 - o[n])])
        dx[n] = Wx @ da
        dprev_h[n] = Wh @ da
        dprev_c[n] = dc * f[n]
        dWx += np.outer(x[n], da)
        dWh += np.outer(prev_h[n], da)
        db += da
    return dx, dprev_h, dprev_c, dWx, dWh, db
'''

# Entirely in scalar Python loops over samples and units (the slowest honest student we imagine
# passing the exercise): dc, da per element, the products with numpy.
HONEST_SCALAR_LOOPS_STEP = '''def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    N, H = dnext_h.shape
    da = np.zeros((N, 4 * H))
    dprev_c = np.zeros((N, H))
    for n in range(N):
        for k in range(H):
            dc = dnext_c[n, k] + dnext_h[n, k] * o[n, k] * (1 - tanh_c[n, k] ** 2)
            da[n, k] = dc * g[n, k] * i[n, k] * (1 - i[n, k])
            da[n, H + k] = dc * prev_c[n, k] * f[n, k] * (1 - f[n, k])
            da[n, 2 * H + k] = dc * i[n, k] * (1 - g[n, k] ** 2)
            da[n, 3 * H + k] = dnext_h[n, k] * tanh_c[n, k] * o[n, k] * (1 - o[n, k])
            dprev_c[n, k] = dc * f[n, k]
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)
'''
