"""The chapter worked through with typical mistakes (issue 23): for each, the notebook's own
cells are run in order, as a student runs them, with one answer cell written the wrong way.
The public-check output must name the exercise that holds the bug and say how to fix it (never
send the student to another exercise), and the experiment cells of Sections 3.5 and 3.6 must
refuse to run and name that exercise.

The student's functions are written the way most students write them (lstm_forward loops over
lstm_step_forward, lstm_backward over lstm_step_backward), not the reference's vectorised way:
then a bug in one function reaches the others, which is what the messages must sort out."""
import contextlib
import io
import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "source" / "lstm" / "lstm.ipynb"

STUDENT = {
    "sigmoid": '''
def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
''',
    "lstm_gates": '''
def lstm_gates(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:])
    return i, f, g, o
''',
    "lstm_step_forward": '''
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    i, f, g, o = lstm_gates(x, prev_h, Wx, Wh, b)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, g, o, next_c)
''',
    "lstm_forward": '''
def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev_h, prev_c = h0, np.zeros((N, H))
    caches = []
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches
''',
    "lstm_step_backward": '''
def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    di = dc * g * i * (1 - i)
    df = dc * prev_c * f * (1 - f)
    dg = dc * i * (1 - g ** 2)
    do = dnext_h * tanh_c * o * (1 - o)
    da = np.concatenate([di, df, dg, do], axis=1)
    dprev_c = dc * f
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)
''',
    "lstm_backward": '''
def lstm_backward(dh, cache):
    N, T, H = dh.shape
    dx = np.zeros((N, T, cache[0][0].shape[1]))
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    dWx = dWh = db = 0.0
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dprev_h, dWx, dWh, db
''',
    "clip_grad_norm": '''
def clip_grad_norm(grads, max_norm):
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    scale = max_norm / (total + 1e-6) if total > max_norm else 1.0
    return {k: g * scale for k, g in grads.items()}, total
''',
}
ORDER = list(STUDENT)
NUMBER = {name: k + 1 for k, name in enumerate(ORDER)}

# (name, function, written right, written wrong, the phrase of the fix in that exercise's check)
MISTAKES = [
    ("sigmoid clipped at +-500", "sigmoid", "    e = np.exp(-np.abs(x))",
     "    x = np.clip(x, -500, 500)\n    e = np.exp(-np.abs(x))", "Did you clip x"),
    ("gate blocks in the order f, i", "lstm_gates", "    i = sigmoid(a[:, :H])\n    f = sigmoid(a[:, H:2 * H])",
     "    f = sigmoid(a[:, :H])\n    i = sigmoid(a[:, H:2 * H])", "ordered [i | f | g | o]"),
    ("tanh on o", "lstm_gates", "    o = sigmoid(a[:, 3 * H:])", "    o = np.tanh(a[:, 3 * H:])",
     "it should be the sigmoid of the o block"),
    ("sigmoid on g", "lstm_gates", "    g = np.tanh(a[:, 2 * H:3 * H])", "    g = sigmoid(a[:, 2 * H:3 * H])",
     "it should be the tanh of the g block"),
    ("bias left out", "lstm_gates", "prev_h @ Wh + b", "prev_h @ Wh", "i, f, g and o are wrong"),
    ("prev_c *= f", "lstm_step_forward", "    next_c = f * prev_c + i * g",
     "    prev_c *= f\n    next_c = prev_c + i * g", "modified its input `prev_c`"),
    ("cell state not carried", "lstm_forward",
     "lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)",
     "lstm_step_forward(x[:, t], prev_h, np.zeros((N, H)), Wx, Wh, b)",
     "each step must receive the previous step's next_h and next_c"),
    ("dprev_c without the forget gate", "lstm_step_backward", "    dprev_c = dc * f", "    dprev_c = dc",
     "dprev_c is wrong while db is right"),
    ("dnext_c dropped", "lstm_step_backward", "    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)",
     "    dc = dnext_h * o * (1 - tanh_c ** 2)", "it lacks dnext_c"),
    ("dc = dnext_c", "lstm_step_backward", "    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)",
     "    dc = dnext_c", "it lacks the path through next_h"),
    ("dh not accumulated", "lstm_backward", "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
     "lstm_step_backward(dh[:, t], dprev_c, cache[t])", "dnext_h = dh[:, t] + dprev_h"),
    ("dprev_c not carried", "lstm_backward", "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
     "lstm_step_backward(dh[:, t] + dprev_h, np.zeros((N, H)), cache[t])", "pass step t + 1's dprev_c"),
    ("clipping without + 1e-6", "clip_grad_norm", "max_norm / (total + 1e-6)", "max_norm / total",
     "add the 1e-6"),
    ("clipping in place on dict(grads)", "clip_grad_norm",
     "    return {k: g * scale for k, g in grads.items()}, total",
     "    clipped = dict(grads)\n    for k in clipped:\n        clipped[k] *= scale\n    return clipped, total",
     "dict(grads) or grads.copy() makes a new dict but keeps the same arrays"),
]

# The exercises each experiment cell needs, directly or through the functions it calls, and a
# name the cell defines only when it runs.
EXPERIMENTS = {
    "65dbf0322a22": ({"sigmoid", "lstm_gates", "lstm_step_forward", "lstm_step_backward"}, "flows"),
    "cbbc036e046d": (set(ORDER), "adding"),
    "c71d0e5b2a46": ({"sigmoid", "lstm_gates", "lstm_step_forward", "lstm_step_backward",
                      "clip_grad_norm"}, "char_losses"),
    "a4d2e8c61b97": ({"clip_grad_norm"}, "runs"),            # exploding gradients: the clipped run
}


def source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def run_notebook(answers, stop_after=None):
    """Run the notebook's code cells in order in a namespace that is __main__ (as in a kernel),
    with the given answer cells. Returns {cell id: what it printed, or the CheckFailure's
    message} and the namespace. Cells after stop_after (a cell id) are not run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from seqlab import checks
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    main = types.ModuleType("__main__")
    ns = main.__dict__
    outputs = {}
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
            code = answers[grade_id] if grade_id in answers else source(cell)
            if code.lstrip().startswith("%"):
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    exec(compile(code, cell["id"], "exec"), ns)
                except checks.CheckFailure as exc:
                    out.write(str(exc))
            outputs[cell["id"]] = out.getvalue()
            if cell["id"] == stop_after:
                break
    finally:
        sys.modules["__main__"] = saved
        plt.close("all")
    return outputs, ns


def passed_line(name):
    """What a check cell prints when it passes (seqlab.checks._ok)."""
    from seqlab import checks
    return f"{name}: all checks passed ({checks.HIDDEN})"


def check_cells():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    return {c["metadata"]["nbgrader"]["grade_id"][len("check_"):]: c["id"] for c in nb["cells"]
            if c["cell_type"] == "code" and c["metadata"].get("nbgrader", {}).get("grade")}


def test_the_students_functions_pass_every_check():
    outputs, _ = run_notebook(STUDENT, stop_after=check_cells()["clip_grad_norm"])
    for name, cid in check_cells().items():
        assert outputs[cid].strip() == passed_line(name), (name, outputs[cid])


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_blamed_on_its_exercise_and_stops_the_experiments(mistake):
    label, culprit, right, wrong, fix = mistake
    assert STUDENT[culprit].count(right) == 1, right
    answers = dict(STUDENT, **{culprit: STUDENT[culprit].replace(right, wrong)})
    outputs, ns = run_notebook(answers)
    k = NUMBER[culprit]
    cells = check_cells()
    # the exercise with the bug: its own check fails and says how to fix it
    own = outputs[cells[culprit]]
    assert own.startswith(f"{culprit}: ") and fix in own, own
    # the exercises before it pass; every later check that fails names it, and no other one
    for name, cid in cells.items():
        said = outputs[cid]
        if name == culprit or said.strip() == passed_line(name):
            continue
        assert NUMBER[name] > k, (name, said)
        assert f"Exercise {k}" in said, (name, said)
        others = [n for n in ORDER if n != culprit and f"Exercise {NUMBER[n]} " in said]
        assert not others, (name, said)
        assert "block of db" not in said and "gate blocks" not in said, (name, said)
    # the progress cell lists the culprit as failing, and cuts no message short
    progress = next(v for v in outputs.values() if "exercises pass their public checks" in v)
    line = next(ln for ln in progress.splitlines() if ln.startswith(f"Exercise {k} "))
    assert " X  " in line and " ".join(own.split())[-40:] in " ".join(progress.split())
    # the experiments that need the culprit refuse, and say which exercise to fix
    for cid, (needs, made) in EXPERIMENTS.items():
        if culprit in needs:
            assert "does not run yet" in outputs[cid], (cid, outputs[cid])
            assert f"Fix Exercise {k} ({culprit}) first" in outputs[cid], (cid, outputs[cid])
            assert made not in ns, cid
    if culprit in EXPERIMENTS["cbbc036e046d"][0]:
        assert "run Experiment 2 first" in outputs["95b81e0fb45b"]
        assert "run Experiment 2 first" in outputs["e9a07c4d2b38"] and "bias_runs" not in ns
    # the gradient check names the forward pass when that is where the bug is
    gradcheck = outputs["460e8b55b7ff"]
    if culprit in ("lstm_gates", "lstm_step_forward", "lstm_forward"):
        assert (f"The forward pass is not right yet: your {culprit} fails its check (Exercise {k} "
                f"({culprit}))") in gradcheck, gradcheck
    else:
        assert "fails its check" not in gradcheck, gradcheck


def test_the_step_forward_is_cleared_when_only_the_gates_are_wrong():
    """With the right gates in place of the student's, the student's step forward is right:
    the check says so, and sends the student to Exercise 2."""
    answers = dict(STUDENT, lstm_gates=STUDENT["lstm_gates"].replace("prev_h @ Wh + b", "prev_h @ Wh"))
    outputs, _ = run_notebook(answers, stop_after=check_cells()["lstm_step_forward"])
    said = outputs[check_cells()["lstm_step_forward"]]
    assert "your lstm_step_forward itself is right" in said and "Fix Exercise 2 first" in said, said
    # a step forward that is wrong on its own as well is not cleared
    both = dict(answers, lstm_step_forward=STUDENT["lstm_step_forward"].replace(
        "next_c = f * prev_c + i * g", "next_c = f * prev_c + i * o"))
    outputs, _ = run_notebook(both, stop_after=check_cells()["lstm_step_forward"])
    said = outputs[check_cells()["lstm_step_forward"]]
    assert "itself is right" not in said and "Fix Exercise 2 first" in said, said
    assert "Even with the right gates your lstm_step_forward is not right" in said, said


def test_a_sigmoid_off_only_below_1e300_passes_as_with_the_grader():
    """A sigmoid clipped at +-709 (no overflow warning) differs from the right value only where
    that value is below 1e-300 (x < -690), where the grader's comparison stops (its TINY): it
    earns full marks, so the check passes. Clipped at +-500 it is off by far more, and fails."""
    from seqlab import checks

    def clipped(x, at=709):
        x = np.clip(x, -at, at)
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        checks.check_sigmoid(clipped)
    assert out.getvalue().startswith("sigmoid: all checks passed")
    with pytest.raises(checks.CheckFailure, match=r"sigmoid\(-600\) is .*Did you clip x"):
        checks.check_sigmoid(lambda x: clipped(x, 500))


def test_a_sigmoid_that_rounds_the_tail_to_zero_is_told_so():
    """0.5 * (1 + tanh(x / 2)) is within 1e-16 of the right value everywhere, but not to float64
    rounding in the far negative tail, where it gives 0: the message says that, not 'clipping'."""
    from seqlab import checks
    with pytest.raises(checks.CheckFailure) as info:
        checks.check_sigmoid(lambda x: 0.5 * (1 + np.tanh(np.asarray(x) / 2)))
    message = str(info.value)
    assert "is 0, expected" in message and "relative precision" in message and "clip" not in message


def test_an_experiment_names_the_unwritten_exercise_a_written_one_calls():
    """lstm_step_forward written, lstm_gates still the release's stub: the experiment says that
    Exercise 2 is the one not written yet, not Exercise 3."""
    from seqlab import experiments
    stub = "\ndef lstm_gates(x, prev_h, Wx, Wh, b):\n    raise NotImplementedError()\n"
    ns = {"np": np}
    exec(STUDENT["sigmoid"] + stub + STUDENT["lstm_step_forward"] + STUDENT["lstm_step_backward"], ns)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert not experiments.available(lstm_step_forward=ns["lstm_step_forward"],
                                         lstm_step_backward=ns["lstm_step_backward"])
    assert "Not implemented yet: Exercise 2 (lstm_gates)." in out.getvalue(), out.getvalue()


def test_in_a_real_kernel_the_student_sees_the_box_and_the_refusals():
    """One mistake (the gate blocks in the order f, i) in the source notebook, run top to bottom
    in a Jupyter kernel as a student runs it: the step forward's check shows a box that clears
    the step and names Exercise 2, and the experiments print their refusal, without a traceback."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.reads(NOTEBOOK.read_text(encoding="utf-8"), as_version=4)
    wrong = STUDENT["lstm_gates"].replace(MISTAKES[1][2], MISTAKES[1][3])
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in STUDENT:
            cell.source = wrong if grade_id == "lstm_gates" else STUDENT[grade_id]
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    shown = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            shown[cell.id] = "".join(o.get("text", "") + "\n".join(o.get("traceback", []))
                                     for o in cell.outputs)
    step = shown[check_cells()["lstm_step_forward"]]
    assert "\u250c\u2500 check failed" in step and "itself is right" in step and "Exercise 2" in step
    assert "Traceback" not in step and "checks.py" not in step
    for cid in ("65dbf0322a22", "cbbc036e046d", "c71d0e5b2a46"):
        assert "Fix Exercise 2 (lstm_gates) first" in shown[cid], shown[cid]
    errors = [o.get("ename") for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert set(errors) == {"CheckFailure"}          # only the boxes of the failing checks
