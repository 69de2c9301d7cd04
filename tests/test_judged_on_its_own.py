"""Each function is judged on its own (issue 18): one mistake costs only the function that holds it.

A property over many single mistakes: the catalogue's (AFFECTS says where they cost) and
systematic mutations the catalogue does not name (a dropped term, a swapped operator, a wrong
slice, a missing bias, a scaled term), each in two styles students write:
- "vectorised": the reference's cells (lstm_forward and lstm_backward without the step functions);
- "loops": lstm_forward looping over lstm_step_forward and lstm_backward over lstm_step_backward,
  with a dict cache per step (assignments/lstm/styles/step_loops.py), as CS231n students write it.
A notebook with only that mistake loses points in the function that holds it, and in no other
function, with one exception we accept: a backward function that reads the cache its own, wrong,
forward function made (ACCEPTED). Every mutation must cost its own function something, so no
case here passes by a mutation that changed nothing.
"""
import pytest

from assignments.lstm.misconceptions import load_catalogue
from assignments.lstm.samples import OTHER_STYLE, reference_cells, with_body
from assignments.lstm.styles import load_styles
from autograder.grade import Grader, find_submissions, grade_all
from autograder.judging import mutants
from autograder.samples import write_submission

ACCEPTED = {"lstm_step_forward": {"lstm_step_backward"}, "lstm_forward": {"lstm_backward"}}
LOOPED = ("lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward")


def styles():
    loops = {s.name: s for s in load_styles()}["step_loops"].sources
    assert set(loops) == set(LOOPED)
    return {"vectorised": reference_cells(), "loops": {**reference_cells(), **loops}}


# (function, what is wrong, text in the style's source, its replacement); None: any style
MUTATIONS = {
    None: [
        ("sigmoid", "scaled term", "r = 1.0 / (1.0 + e)", "r = 1.0 / (1.0 + 2.0 * e)"),
        ("sigmoid", "tanh instead", None, with_body("sigmoid", "return np.tanh(x)")),
        ("lstm_gates", "missing bias", "a = x @ Wx + prev_h @ Wh + b", "a = x @ Wx + prev_h @ Wh"),
        ("lstm_gates", "swapped operator", "a = x @ Wx + prev_h @ Wh + b", "a = x @ Wx - prev_h @ Wh + b"),
        ("lstm_gates", "wrong slice", "f = sigmoid(a[:, 1 * H:2 * H])", "f = sigmoid(a[:, 0 * H:1 * H])"),
        ("clip_grad_norm", "scaled term", "scale = max_norm / (total_norm + 1e-6)",
         "scale = (max_norm / (total_norm + 1e-6)) ** 2"),
    ],
    "vectorised": [
        ("lstm_step_forward", "next_h from prev_c", "tanh_c = np.tanh(next_c)", "tanh_c = np.tanh(prev_c)"),
        ("lstm_step_forward", "dropped term", "next_c = f * prev_c + i * g", "next_c = i * g"),
        ("lstm_step_forward", "scaled term", "next_h = o * tanh_c", "next_h = 0.5 * o * tanh_c"),
        ("lstm_forward", "missing bias", "a_x = x @ Wx + b", "a_x = x @ Wx"),
        ("lstm_forward", "cell state not carried", "prev_h, prev_c = h[:, t], c[:, t]", "prev_h = h[:, t]"),
        ("lstm_step_backward", "scaled term", "db = da.sum(axis=0)", "db = 2 * da.sum(axis=0)"),
        ("lstm_step_backward", "wrong gate factor", "dprev_c = dc * f", "dprev_c = dc * (1.0 - f)"),
        ("lstm_step_backward", "scaled dprev_h", "dprev_h = da @ Wh.T", "dprev_h = 0.5 * (da @ Wh.T)"),
        ("lstm_backward", "bias gradient of the last step", "db = da_rows.sum(axis=0)", "db = da[:, -1].sum(axis=0)"),
        ("lstm_backward", "scaled dh0", "return dx, dprev_h, dWx, dWh, db", "return dx, 2 * dprev_h, dWx, dWh, db"),
    ],
    "loops": [
        ("lstm_step_forward", "next_h from prev_c", "next_h = o * np.tanh(next_c)", "next_h = o * np.tanh(prev_c)"),
        ("lstm_step_forward", "dropped term", "next_c = f * prev_c + i * g", "next_c = i * g"),
        ("lstm_step_backward", "scaled term", "db = np.sum(da, axis=0)", "db = 2 * np.sum(da, axis=0)"),
        ("lstm_step_backward", "wrong gate factor", "dprev_c = dc * f", "dprev_c = dc * i"),
        ("lstm_forward", "cell state not carried", "h, c, step_cache = lstm_step_forward(x[:, t, :], h, c, Wx, Wh, b)",
         "h, _, step_cache = lstm_step_forward(x[:, t, :], h, c, Wx, Wh, b)"),
        ("lstm_forward", "h0 at every step", "lstm_step_forward(x[:, t, :], h, c, Wx, Wh, b)",
         "lstm_step_forward(x[:, t, :], h0, c, Wx, Wh, b)"),
        ("lstm_backward", "carried dh dropped", "lstm_step_backward(dh[:, t, :] + dprev_h, dprev_c, cache[t])",
         "lstm_step_backward(dh[:, t, :], dprev_c, cache[t])"),
        ("lstm_backward", "weight gradient not summed", "dWx = dWx + dWx_t", "dWx = dWx_t"),
    ],
}


def mutated(style, fn, old, new):
    """The style's cells with one function's source mutated (the text must be there)."""
    cells = dict(styles()[style])
    if old is None:
        cells[fn] = new
    else:
        assert old in cells[fn], (style, fn, old)
        cells[fn] = cells[fn].replace(old, new, 1)
    return cells


# Sequence passes as loops over whatever step functions the notebook has (they never read a
# step's cache themselves), for the catalogue's entries, whose step caches are the reference's.
SEQUENCE_LOOPS = {name: OTHER_STYLE[name] for name in ("lstm_forward", "lstm_backward")}


def loop_variant(entry):
    """A catalogue entry written in the loop style: its functions, except the sequence passes,
    which loop over its step functions (right). None when nothing of its mistake is left."""
    cells = {**reference_cells(), **SEQUENCE_LOOPS,
             **{n: s for n, s in entry.sources.items() if n not in SEQUENCE_LOOPS}}
    lost = set(entry.affects) - {"lstm_forward", "lstm_backward"}
    return (cells, lost) if lost else None


def notebooks():
    """student id -> (cells, the function that holds the mistake or, for catalogue entries, the
    exact set of exercises that must lose points)."""
    books = {}
    for style in ("vectorised", "loops"):
        for fn, what, old, new in MUTATIONS[None] + MUTATIONS[style]:
            books[f"{style}-{fn}-{what.replace(' ', '_')}"] = (mutated(style, fn, old, new), fn)
    for entry in load_catalogue():
        variant = loop_variant(entry)
        if variant:
            books[f"loops-catalogue-{entry.name}"] = variant
    return books


BOOKS = notebooks()


@pytest.fixture(scope="module")
def graded(config, tmp_path_factory):
    root = tmp_path_factory.mktemp("on_its_own")
    for student, (cells, _) in BOOKS.items():
        write_submission(root, student, config.name, config.notebook, mutants.entry_notebook(config, cells))
    results = grade_all(Grader.prepare(config), find_submissions(root, config.name, config.notebook))
    return {r["student_id"]: r for r in results}


def lost_points(result):
    assert result["status"] == "graded" and not result["cell_errors"], (result["reason"], result["cell_errors"])
    return {e["id"]: e["message"] for e in result["exercises"] if e["points"] < e["max_points"]}


@pytest.mark.parametrize("student", sorted(BOOKS))
def test_a_single_mistake_costs_only_its_own_function(graded, student):
    _, where = BOOKS[student]
    lost = lost_points(graded[student])
    if isinstance(where, set):            # a catalogue entry in the loop style
        assert set(lost) == where, (student, lost)
        return
    assert where in lost, f"{student}: the mutation cost nothing (it must be a real mistake)"
    assert set(lost) <= {where} | ACCEPTED.get(where, set()), (student, lost)


def test_right_functions_are_never_told_to_fix_another_exercise_first(graded):
    """A function that keeps full marks carries no message; one that loses points because its own
    forward function's cache is wrong (ACCEPTED) is the only one allowed to lose any."""
    for student, result in graded.items():
        for e in result["exercises"]:
            if e["points"] == e["max_points"]:
                assert e["status"] == "passed" and not e["message"], (student, e)
