"""The bundled sample submissions: one per situation a TA meets, each with the grade a
careful TA would give (asserted by tests/test_samples.py, shown by `make demo`).

Each sample is the release notebook with some answer cells replaced (autograder.samples).
"""
import inspect
import json
import textwrap

from autograder.samples import Sample, notebook_with
from assignments.lstm.misconceptions import load_catalogue
from solutions import lstm as reference

FUNCTIONS = ("sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward",
             "lstm_step_backward", "lstm_backward", "clip_grad_norm")
FULL = {"sigmoid": 1, "lstm_gates": 2, "lstm_step_forward": 2, "lstm_forward": 3,
        "lstm_step_backward": 4, "lstm_backward": 5, "clip_grad_norm": 1}
ZERO = dict.fromkeys(FULL, 0)


def reference_cells():
    return {name: inspect.getsource(getattr(reference, name)) for name in FUNCTIONS}


def release(config, replacements=None, extra_cells=()):
    return notebook_with(config.release_dir / config.notebook, replacements, extra_cells)


def solved(**overrides):
    """Builder: every answer cell holds the reference, except the overrides (name -> source)."""
    def build(config):
        return release(config, {**reference_cells(), **overrides})
    return build


def misconception(name):
    """Builder: the reference with one catalogued misconception's functions pasted in."""
    def build(config):
        entry = {m.name: m for m in load_catalogue()}[name]
        return release(config, {**reference_cells(), **entry.sources})
    return build


def with_body(name, body):
    """A function with the reference signature and the given body (dedented source)."""
    signature = inspect.signature(getattr(reference, name))
    return f"def {name}{signature}:\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")


OTHER_STYLE = {
    # a cache of its own (a dict), prints, warnings, and lstm_forward / lstm_backward written as
    # loops over the step functions: the textbook way, slower, equally right
    "lstm_step_forward": '''def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    import warnings
    print("step forward called with", x.shape)
    warnings.warn("this is my own debugging warning")
    i, f, g, o = lstm_gates(x, prev_h, Wx, Wh, b)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = {"x": x, "h": prev_h, "c": prev_c, "Wx": Wx, "Wh": Wh, "gates": (i, f, g, o), "next_c": next_c}
    return next_h, next_c, cache
''',
    "lstm_step_backward": '''def lstm_step_backward(dnext_h, dnext_c, cache):
    import sys
    print("backward!", file=sys.stderr)
    i, f, g, o = cache["gates"]
    t = np.tanh(cache["next_c"])
    dc = dnext_c + dnext_h * o * (1 - t ** 2)
    da = np.hstack([dc * g * i * (1 - i), dc * cache["c"] * f * (1 - f), dc * i * (1 - g ** 2), dnext_h * t * o * (1 - o)])
    return (da @ cache["Wx"].T, da @ cache["Wh"].T, dc * f, cache["x"].T @ da, cache["h"].T @ da, da.sum(0))
''',
    "lstm_forward": '''def lstm_forward(x, h0, Wx, Wh, b):
    h, c, caches = [], np.zeros_like(h0), []
    prev_h = h0
    for t in range(x.shape[1]):
        prev_h, c, step_cache = lstm_step_forward(x[:, t, :], prev_h, c, Wx, Wh, b)
        h.append(prev_h)
        caches.append(step_cache)
    return np.stack(h, axis=1), caches
''',
    "lstm_backward": '''def lstm_backward(dh, cache):
    N, T, H = dh.shape
    dx = [None] * T
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    dWx = dWh = db = 0
    for t in reversed(range(T)):
        dx[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return np.stack(dx, axis=1), dprev_h, dWx, dWh, db
''',
    "clip_grad_norm": '''def clip_grad_norm(grads, max_norm):
    total = float(np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()])))
    factor = min(1.0, max_norm / (total + 1e-6)) if total > max_norm else 1.0
    return {k: v * factor for k, v in grads.items()}, total
''',
}

# np.squeeze(prev_h) to read H: an IndexError wherever prev_h has a dimension of size 1 (one
# sample, or a hidden size of 1), in lstm_step_forward and in everything that calls it.
SQUEEZES = {**OTHER_STYLE, "lstm_step_forward": OTHER_STYLE["lstm_step_forward"].replace(
    "    i, f, g, o = lstm_gates(", "    H = np.squeeze(prev_h).shape[1]\n    i, f, g, o = lstm_gates(")}

# Attempts to escape the sandbox. Each stores what it found; the answer cells use the
# reference if any attempt succeeded, else they raise NotImplementedError.
STEAL = '''
import glob, os, sys
stolen = None
for attempt in (
    lambda: __import__("solutions.lstm", fromlist=["lstm"]),
    lambda: open("../../solutions/lstm.py").read(),
    lambda: [open(p).read() for p in glob.glob("/**/solutions/lstm.py", recursive=True)][0],
    lambda: open("/proc/1/environ").read(),
    lambda: os.listdir(".."),
    lambda: __import__("subprocess").check_output(["cat", "/etc/passwd"]),
    lambda: __import__("socket").create_connection(("127.0.0.1", 80), timeout=1),
):
    try:
        found = attempt()
        if found:
            stolen = found
            print("got", type(found))
    except Exception as exc:
        print("blocked:", type(exc).__name__, exc)
'''

PATCH_NUMPY = '''
import builtins
import numpy as np
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
builtins.AssertionError = type("Never", (Exception,), {})
import sys
sys.modules["numpy"].isclose = lambda *a, **k: True
'''


def blank(config):
    return release(config)


def broken_json(config):
    text = json.dumps(release(config, reference_cells()))
    return text[: len(text) // 2].encode()


SAMPLES = [
    Sample("correct", "the reference in every answer cell", solved(), FULL),
    Sample("correct_other_style", "right, written differently: dict cache, step loops, prints, warnings, stderr",
           solved(**OTHER_STYLE), FULL),
    Sample("blank_release", "the untouched release notebook", blank, ZERO),
    Sample("broken_json", "a notebook file cut in half", broken_json, ZERO, status="unreadable"),
    Sample("empty_folder", "a student folder with nothing in it", lambda config: None, ZERO, status="missing"),
    Sample("renamed_notebook", "the notebook saved under another name (graded, with a note)", solved(), FULL,
           file_name="lstm (1).ipynb"),
    Sample("hang_in_clip", "an infinite loop in clip_grad_norm only",
           solved(clip_grad_norm=with_body("clip_grad_norm", "while True:\n    pass")),
           {**FULL, "clip_grad_norm": 0}),
    Sample("hang_at_top_level", "an infinite loop in a cell of its own: the cell is stopped, the rest runs",
           lambda config: release(config, reference_cells(), ["while True:\n    pass"]), FULL),
    Sample("memory_hog", "lstm_backward allocates 16 GB",
           solved(lstm_backward=with_body("lstm_backward", "big = np.ones((2**31,), dtype=np.float64)\nreturn big")),
           {**FULL, "lstm_backward": 0}),
    Sample("os_exit", "lstm_step_backward kills its own process with os._exit",
           solved(lstm_step_backward=with_body("lstm_step_backward", "import os\nos._exit(3)")),
           {**FULL, "lstm_step_backward": 0}),
    Sample("sys_exit_cell", "a cell calls sys.exit(); the grader goes on",
           lambda config: release(config, reference_cells(), ["import sys\nsys.exit('done')"]), FULL),
    Sample("patches_numpy", "unimplemented, but patches numpy and AssertionError hoping to pass",
           lambda config: release(config, {}, [PATCH_NUMPY]), ZERO),
    Sample("reads_reference", "tries to import or read the reference, list folders, run programs, connect",
           lambda config: release(config, {
               name: with_body(name, f"if stolen is not None:\n    return __import__('solutions.lstm').lstm.{name}(*locals().values())\n"
                                     "raise NotImplementedError")
               for name in FUNCTIONS}, [STEAL]), ZERO),
    Sample("crash_only_at_n1", "lstm_step_forward crashes when N = 1 or H = 1 (np.squeeze); the forward "
           "and backward passes that call it lose nothing more for that crash",
           # the crash costs 2 of its 6 hidden cases (N = 1, H = 1)
           solved(**SQUEEZES), {**FULL, "lstm_step_forward": round(2 * 4 / 6, 4)}),
    Sample("bug_forget_gate_tanh", "forget gate through tanh: costs f in lstm_gates, once; the forward and "
           "backward passes built on those gates are right for them and keep their points",
           misconception("forget_gate_tanh"), {**FULL, "lstm_gates": 1.5}),
    Sample("bug_drops_dnext_c", "both backward passes ignore the gradient arriving on the cell state",
           misconception("backward_drops_dnext_c"),
           # lstm_backward is right only on the hidden case with a single step (no cell gradient to
           # drop): an output wrong on the larger (derivation) cases earns nothing
           {**FULL, "lstm_step_backward": 0, "lstm_backward": 0}),
    Sample("bug_last_step_weights", "BPTT keeps only the last step's weight gradients",
           misconception("bptt_weight_grads_last_step_only"),
           # dx and dh0 right everywhere; dWx, dWh, db right only on the single-step case, wrong on
           # the larger (derivation) cases: they earn nothing
           {**FULL, "lstm_backward": 2.0}),
    Sample("bug_naive_sigmoid", "1/(1+exp(-x)): right values, but overflow warnings",
           misconception("sigmoid_naive"), {**FULL, "sigmoid": 0.75}),
    Sample("bug_clip_in_place", "clip_grad_norm scales the caller's arrays in place",
           misconception("clip_in_place"), {**FULL, "clip_grad_norm": 0.5}),
]
