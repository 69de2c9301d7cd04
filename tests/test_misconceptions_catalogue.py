"""The catalogue of LSTM misconceptions (assignments/lstm/misconceptions/).

Checks the form of every entry (constants, graded names and signatures, pasteable
definitions) and that each mutant really differs from the reference in every function it
overrides (values, dtype, warnings or modified inputs). Which exercises lose points is the
real grader's business: tests/test_misconceptions_grading.py grades every entry as a notebook.
"""
import ast
import builtins
import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from assignments.lstm.misconceptions import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SOURCE = (ROOT / "solutions" / "lstm.py").read_text(encoding="utf-8")
EXERCISES = ("sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward",
             "lstm_step_backward", "lstm_backward", "clip_grad_norm")
TOL = yaml.safe_load((ROOT / "grading.yml").read_text())["assignments"]["lstm"]["tolerance"]
CATALOGUE = load_catalogue()
IDS = [m.name for m in CATALOGUE]


def reference_namespace():
    ns = {"__name__": "reference"}
    exec(compile(REFERENCE_SOURCE, "<reference>", "exec"), ns)
    return ns


REFERENCE = reference_namespace()


# ------------------------------------------------------------------ form

def test_catalogue_is_large_and_sorted():
    assert len(CATALOGUE) >= 18
    assert IDS == sorted(IDS)
    assert len(set(IDS)) == len(IDS)
    assert len({m.title for m in CATALOGUE}) == len(CATALOGUE)


def test_every_exercise_is_affected_by_some_entry():
    affected = {a for m in CATALOGUE for a in m.affects}
    assert affected == set(EXERCISES)


@pytest.mark.parametrize("m", CATALOGUE, ids=IDS)
def test_entry_constants(m):
    assert m.affects and set(m.affects) <= set(EXERCISES)
    assert len(set(m.affects)) == len(m.affects)
    assert 0 < len(m.title) <= 80 and "\n" not in m.title
    assert m.section.startswith(("3.3, ", "3.4, "))
    assert 1 <= m.hint.count(". ") + 1 <= 4 and "\n" not in m.hint
    assert "def " not in m.hint and "np." not in m.hint and "`" not in m.hint


@pytest.mark.parametrize("m", CATALOGUE, ids=IDS)
def test_entry_defines_graded_functions_with_reference_signatures(m):
    tree = ast.parse(m.file_source)
    for node in tree.body:
        # only the constants, the numpy import and function definitions
        if isinstance(node, ast.Assign):
            assert [t.id for t in node.targets] in ([c] for c in ("TITLE", "AFFECTS", "SECTION", "HINT"))
        elif isinstance(node, ast.Import):
            assert [(a.name, a.asname) for a in node.names] == [("numpy", "np")]
        else:
            assert isinstance(node, ast.FunctionDef), ast.dump(node)[:80]
    assert set(m.sources) <= set(EXERCISES)
    for name, source in m.sources.items():
        assert source in m.file_source and source.startswith(f"def {name}(")
        ns = {}
        exec(compile("import numpy as np\n" + source, name, "exec"), ns)
        assert inspect.signature(ns[name]) == inspect.signature(REFERENCE[name])
        # self-contained: the free names are numpy, builtins and graded functions only
        free = _globals_used(source) - set(EXERCISES) - {"np"} - set(dir(builtins))
        assert not free, free


def _globals_used(source):
    """Names a function loads but never assigns (a rough free-variable check)."""
    tree = ast.parse(source)
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assigned |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
                 for a in n.args + n.kwonlyargs}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loaded - assigned


def test_namespace_overrides_only_the_entry_functions():
    m = CATALOGUE[0]
    ns = m.namespace(REFERENCE_SOURCE)
    for name in EXERCISES:
        if name in m.sources:
            assert ns[name].__code__.co_filename == f"<misconception {m.name}>"
        else:
            assert ns[name].__code__.co_filename == "<reference>"
    assert m.namespace(REFERENCE_SOURCE) is not ns


# ------------------------------------------------------------------ behaviour

N, T, D, H = 3, 4, 5, 3


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    p = dict(
        x=rng.normal(size=(N, T, D)), h0=rng.normal(scale=0.5, size=(N, H)),
        Wx=rng.normal(scale=0.4, size=(D, 4 * H)), Wh=rng.normal(scale=0.4, size=(H, 4 * H)),
        b=rng.normal(scale=0.3, size=4 * H), dh=rng.normal(size=(N, T, H)),
        prev_c=rng.normal(size=(N, H)), dnext_h=rng.normal(size=(N, H)), dnext_c=rng.normal(size=(N, H)),
    )
    p["xs"] = p["x"][:, 0].copy()
    p["sig"] = np.concatenate([rng.normal(scale=3, size=40), rng.uniform(-60, 60, 40),
                               rng.uniform(-800, 800, 40), np.linspace(-1e4, 1e4, 41)])
    p["grads"] = {"Wx": rng.normal(size=(D, 4 * H)), "Wh": rng.normal(scale=3, size=(H, 4 * H)),
                  "b": rng.normal(scale=0.1, size=4 * H)}
    return p


def call(fn, *args):
    """Call fn on copies; return (outputs as a tuple, warnings, indices of modified arguments)."""
    copies = [{k: v.copy() for k, v in a.items()} if isinstance(a, dict) else
              (a.copy() if isinstance(a, np.ndarray) else a) for a in args]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*copies)
    modified = [k for k, (a, c) in enumerate(zip(args, copies)) if not _same(a, c)]
    return (out if isinstance(out, tuple) else (out,)), len(caught), modified


def _same(a, c):
    if isinstance(a, dict):
        return a.keys() == c.keys() and all(np.array_equal(a[k], c[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, c)
    return True


def close(a, e, rtol=TOL["rtol"]):
    """The grader's comparison: same shape and dtype, max |a - e| <= rtol * max |e|."""
    if isinstance(e, dict):
        return isinstance(a, dict) and a.keys() == e.keys() and all(close(a[k], e[k], rtol) for k in e)
    if isinstance(e, float):
        return np.isscalar(a) and abs(a - e) <= rtol * abs(e)
    a = np.asarray(a)
    return (a.shape == e.shape and a.dtype == e.dtype
            and np.max(np.abs(a - e)) <= rtol * max(np.max(np.abs(e)), 1e-300))


def same_outputs(ex, out, ref):
    """Per-output comparison; sigmoid elementwise ("exact to float64 rounding")."""
    if len(out) != len(ref):
        return False
    if ex != "sigmoid":
        return all(map(close, out, ref))
    a, e = np.asarray(out[0]), ref[0]
    return (a.shape == e.shape and a.dtype == e.dtype
            and bool(np.all(np.abs(a - e) <= TOL["sigmoid_rtol"] * np.abs(e))))


def forward_outputs(ns, ex, p, max_norm=None):
    """Outputs of a forward-type exercise (the cache left out), warnings, modified args."""
    if ex == "sigmoid":
        return call(ns["sigmoid"], p["sig"])
    if ex == "lstm_gates":
        return call(ns["lstm_gates"], p["xs"], p["h0"], p["Wx"], p["Wh"], p["b"])
    if ex == "lstm_step_forward":
        out, w, mod = call(ns["lstm_step_forward"], p["xs"], p["h0"], p["prev_c"], p["Wx"], p["Wh"], p["b"])
        return out[:2], w, mod
    if ex == "lstm_forward":
        out, w, mod = call(ns["lstm_forward"], p["x"], p["h0"], p["Wx"], p["Wh"], p["b"])
        return out[:1], w, mod
    if ex == "clip_grad_norm":
        return call(ns["clip_grad_norm"], p["grads"], max_norm)
    raise KeyError(ex)


STEP_ARGS = ("xs", "h0", "prev_c", "Wx", "Wh", "b")
SEQ_ARGS = ("x", "h0", "Wx", "Wh", "b")


def backward_outputs(ns, ex, p):
    """Gradients of a backward exercise on the namespace's own forward cache, and modified args."""
    if ex == "lstm_step_backward":
        _, _, cache = ns["lstm_step_forward"](*(p[k].copy() for k in STEP_ARGS))
        return call(ns["lstm_step_backward"], p["dnext_h"], p["dnext_c"], cache)
    _, cache = ns["lstm_forward"](*(p[k].copy() for k in SEQ_ARGS))
    return call(ns["lstm_backward"], p["dh"], cache)


def raw_differences(ns, p):
    """Exercises whose raw behaviour (values, dtypes, warnings, modified inputs) differs."""
    diff = set()
    for ex in ("sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward"):
        out, w, mod = forward_outputs(ns, ex, p)
        ref, _, _ = forward_outputs(REFERENCE, ex, p)
        if w or mod or not same_outputs(ex, out, ref):
            diff.add(ex)
    for ex in ("lstm_step_backward", "lstm_backward"):
        out, w, mod = backward_outputs(ns, ex, p)
        ref, _, _ = backward_outputs(REFERENCE, ex, p)
        if w or mod or not all(map(close, out, ref)):
            diff.add(ex)
    total = forward_outputs(REFERENCE, "clip_grad_norm", p, 1.0)[0][1]
    for max_norm in (0.25 * total, 4.0 * total):
        out, w, mod = forward_outputs(ns, "clip_grad_norm", p, max_norm)
        ref, _, _ = forward_outputs(REFERENCE, "clip_grad_norm", p, max_norm)
        if w or mod or not (close(out[0], ref[0]) and close(out[1], ref[1])):
            diff.add("clip_grad_norm")
    return diff


def test_reference_shows_no_raw_difference():
    for seed in (0, 1):
        assert raw_differences(reference_namespace(), inputs(seed)) == set()


@pytest.mark.parametrize("m", CATALOGUE, ids=IDS)
def test_mutant_differs_in_every_function_it_overrides(m):
    for seed in (0, 1):
        diff = raw_differences(m.namespace(REFERENCE_SOURCE), inputs(seed))
        assert set(m.sources) <= diff
