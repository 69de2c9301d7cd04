"""Hidden feedback that names the mistake (issue 12 item 4): assignments/lstm/explain.py, the
engine's generic `explain` hook, and real notebooks through the sandboxed grader.

Before the hook, four different step-backward bugs (dnext_c dropped, tanh' missing, gate
blocks stacked [i | f | o | g], the sigmoid's derivative on g) all read "dx has relative
error ...". Each test below fails with the hook or its attribution removed."""
import inspect
import re

import numpy as np
import pytest

import solutions.lstm as ref
from assignments.lstm import exercises, explain
from assignments.lstm.misconceptions import load_catalogue
from autograder.judging import mutants
from autograder.judging.exercise import Context, Exercise, ExerciseResult, Seen, grade_exercise
from autograder.grade import Grader, find_submissions, grade_all
from autograder.process.impl import LocalImpl
from autograder.samples import write_submission

TOL = {"rtol": 1e-7, "sigmoid_rtol": 1e-12, "gradient_rtol": 1e-5, "gradient_step": 1e-5}
STEP_SOURCE = inspect.getsource(ref.lstm_step_backward)
BPTT_SOURCE = inspect.getsource(ref.lstm_backward)

# the four bugs of issue 12, item 4 (and one more), as edits of the reference step backward
STEP_BUGS = {
    "drops_dnext_c": ("dc = dnext_c + dnext_h", "dc = 0.0 * dnext_c + dnext_h"),
    "no_tanh_derivative": ("dnext_h * o * (1.0 - tanh_c * tanh_c)", "dnext_h * o"),
    "stacked_ifog": ("""        dc * i * (1.0 - g * g),              # g = tanh(a_g)
        dnext_h * tanh_c * o * (1.0 - o),    # next_h = o * tanh(next_c); o = sigmoid(a_o)""",
                     """        dnext_h * tanh_c * o * (1.0 - o),
        dc * i * (1.0 - g * g),"""),
    "sigmoid_derivative_on_g": ("dc * i * (1.0 - g * g)", "dc * i * g * (1.0 - g)"),
    "dprev_c_without_h_path": ("dprev_c = dc * f", "dprev_c = dnext_c * f"),
}


def mutant(source, old, new, name):
    assert source.count(old) == 1, old
    ns = {"np": np, "sigmoid": ref.sigmoid}
    exec(source.replace(old, new), ns)
    return ns[name]


def seen_for(exercise_id, outs, want, results=None):
    passed = {n: exercises.compare.values(outs[n], want[n], TOL["rtol"])[0] for n in want}
    return Seen(exercise_id, outs, want, passed, results or {}, TOL)


def step_case(seed=0):
    return exercises.step_cases(np.random.default_rng(seed))[1]


def step_outputs(fn, case):
    cache = ref.lstm_step_forward(*(case[k] for k in ("x", "prev_h", "prev_c", "Wx", "Wh", "b")))[2]
    return dict(zip(exercises.STEP_GRADS, fn(case["dnext_h"], case["dnext_c"], cache)))


def passed_result(exercise_id):
    return ExerciseResult(exercise_id, 1.0, 1.0, "passed")


def explain_step_bug(bug, seed=0):
    case = step_case(seed)
    want = step_outputs(ref.lstm_step_backward, case)
    outs = step_outputs(mutant(STEP_SOURCE, *STEP_BUGS[bug], "lstm_step_backward"), case)
    seen = seen_for("lstm_step_backward", outs, want, {"lstm_step_forward": passed_result("lstm_step_forward")})
    failing = [n for n in want if not seen.passed[n]]
    messages = {explain.explain(n, outs[n], want[n], case, seen) for n in failing}
    assert len(messages) == 1, messages          # one text for the case, printed once
    return messages.pop()


# ------------------------------------------------------------------ the four step-backward bugs

def test_the_four_step_backward_bugs_get_four_different_messages():
    messages = {bug: explain_step_bug(bug) for bug in STEP_BUGS}
    assert len(set(messages.values())) == len(STEP_BUGS), messages
    for message in messages.values():
        assert "relative error" not in message and "index" not in message


def test_dropped_dnext_c_names_the_blocks_and_the_missing_term():
    message = explain_step_bug("drops_dnext_c")
    assert "the i, f and g blocks of db, dWx and dWh are wrong; o is right" in message
    assert "gradient on next_c" in message and "it lacks dnext_c" in message
    # the cell-state gradient and the blocks come before what is computed from them
    assert message.index("dprev_c") < message.index("dx and dprev_h are wrong as a consequence")


def test_missing_tanh_derivative_is_told_apart_from_dropped_dnext_c():
    message = explain_step_bug("no_tanh_derivative")
    assert "the i, f and g blocks of db, dWx and dWh are wrong; o is right" in message
    assert "lacks the tanh derivative 1 - tanh(next_c)**2" in message


def test_blocks_stacked_in_another_order_are_named():
    message = explain_step_bug("stacked_ifog")
    assert "in the order [i | f | o | g]" in message and "[i | f | g | o]" in message


def test_sigmoid_derivative_on_g_names_the_g_block():
    message = explain_step_bug("sigmoid_derivative_on_g")
    assert message.startswith("the g block of db, dWx and dWh is wrong; i, f and o are right: "
                              "check the derivative of tanh for g")


def test_dprev_c_alone():
    message = explain_step_bug("dprev_c_without_h_path")
    assert message.startswith("dprev_c is wrong while db is right")
    assert "it lacks the path through next_h" in message


def test_messages_use_names_of_the_judged_function_only():
    """lstm_step_backward's arguments and outputs, the chapter's gate names; no dh, no da."""
    for bug in STEP_BUGS:
        message = explain_step_bug(bug)
        words = set(re.findall(r"\b(d[A-Z]\w*|d[a-z]+_\w+|d[a-z]{1,2}\d?)\b", message)) - {"do"}
        assert words <= {"dnext_c", "dnext_h", "dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"}, (bug, words)


def test_messages_carry_no_input_values():
    for bug in STEP_BUGS:
        for seed in range(3):
            assert not re.search(r"\d\.\d{3}", explain_step_bug(bug, seed))


# ------------------------------------------------------------------ relations of whole arrays

def test_zeros_sign_factor_transposed_and_axis():
    case = step_case()
    want = step_outputs(ref.lstm_step_backward, case)
    for change, words in [(lambda o: {**o, "dprev_c": 0 * o["dprev_c"]}, "dprev_c is all zeros"),
                          (lambda o: {**o, "dx": -o["dx"]}, "dx has the opposite sign"),
                          (lambda o: {**o, "dWh": 2 * o["dWh"]}, "dWh is the right value times 2"),
                          (lambda o: {**o, "dx": o["dx"].T.copy()}, "dx is transposed"),
                          (lambda o: {**o, "dWx": o["dWx"][:, :-1]}, "axis 1 should be 4H")]:
        outs = change(dict(want))
        seen = seen_for("lstm_step_backward", outs, want)
        name = next(n for n in want if not seen.passed[n])
        assert words in explain.explain(name, outs[name], want[name], case, seen)


def bptt_outputs(fn, case):
    cache = ref.lstm_forward(*(case[k] for k in ("x", "h0", "Wx", "Wh", "b")))[1]
    return dict(zip(exercises.SEQ_GRADS, fn(case["dh"], cache)))


def explain_bptt(fn, results=None):
    case = exercises.sequence_cases(np.random.default_rng(4))[1]     # T >= 4
    want, outs = bptt_outputs(ref.lstm_backward, case), bptt_outputs(fn, case)
    seen = seen_for("lstm_backward", outs, want, results)
    name = next(n for n in want if not seen.passed[n])
    return explain.explain(name, outs[name], want[name], case, seen)


def test_bptt_time_steps_and_sums():
    drops_dh = mutant(BPTT_SOURCE, "dnext_h = dh[:, t] + dprev_h", "dnext_h = dh[:, t]", "lstm_backward")
    assert explain_bptt(drops_dh).startswith("dx is right at the last time step and wrong before it")
    last_only = mutant(BPTT_SOURCE, "    db = da_rows.sum(axis=0)\n", "    db = da[:, -1].sum(axis=0)\n",
                       "lstm_backward")
    assert "db is not: it is a sum over all time steps" in explain_bptt(last_only)
    no_dh0 = mutant(BPTT_SOURCE, "return dx, dprev_h,", "return dx, 0 * dprev_h,", "lstm_backward")
    assert explain_bptt(no_dh0).startswith("dh0 is all zeros: dh0 is the gradient on h0")


def test_bptt_points_at_a_failing_forward_pass_whose_cache_it_reads_and_nowhere_else():
    """lstm_backward is judged with the grader standing in for lstm_step_backward, so a failing
    step backward is no excuse; the cache of a failing lstm_forward may be."""
    drops_dh = mutant(BPTT_SOURCE, "dnext_h = dh[:, t] + dprev_h", "dnext_h = dh[:, t]", "lstm_backward")
    message = explain_bptt(drops_dh, {"lstm_forward": ExerciseResult("lstm_forward", 0.0, 3.0, "failed")})
    assert message.startswith("Your lstm_forward (Exercise 4) already loses points, and lstm_backward works on "
                              "its cache")
    for upstream in ("lstm_step_backward", "lstm_step_forward", "lstm_gates"):
        failing = {upstream: ExerciseResult(upstream, 0.0, 2.0, "failed")}
        assert "already loses points" not in explain_bptt(drops_dh, failing), upstream
    assert "Exercise 4" not in explain_bptt(drops_dh, {"lstm_forward": passed_result("lstm_forward")})


def test_gates_read_back_through_the_activations():
    case = step_case()
    args = [case[k] for k in ("x", "prev_h", "Wx", "Wh", "b")]
    want = dict(zip("ifgo", ref.lstm_gates(*args)))
    a = args[0] @ args[2] + args[1] @ args[3] + args[4]
    H = want["i"].shape[1]
    outs = {**want, "f": np.tanh(a[:, H:2 * H])}
    seen = seen_for("lstm_gates", outs, want)
    assert explain.explain("f", outs["f"], want["f"], case, seen).startswith(
        "your f is the tanh of the f block of the pre-activations; it should be the sigmoid of the f block")


# ------------------------------------------------------------------ the engine's hook (generic)

def toy_exercise(explain_hook):
    def probe(impl, case):
        return {"y": impl.call("double", case["x"]), "z": impl.call("double", case["x"])}
    return Exercise("double", lambda rng: [], probe, {"y": 1, "z": 1}, explain=explain_hook)


def toy_grade(explain_hook):
    student = LocalImpl({"double": lambda x: 3 * x}, {"double": ("x",)})
    reference = LocalImpl({"double": lambda x: 2 * x}, {"double": ("x",)})
    ctx = Context(student, reference, TOL)
    return grade_exercise(toy_exercise(explain_hook), ctx, [{"x": np.arange(1.0, 4.0)}], 2.0, 0.5)


def test_engine_uses_explain_and_prints_a_shared_text_once():
    calls = []

    def hook(name, actual, expected, case, seen):
        calls.append((name, seen.exercise, sorted(seen.outputs), seen.passed))
        return "both outputs are 1.5 times too large"
    result = toy_grade(hook)
    assert result.message == "both outputs are 1.5 times too large"
    assert [p.message for p in result.parts] == ["both outputs are 1.5 times too large"] * 2
    assert calls[0] == ("y", "double", ["y", "z"], {"y": False, "z": False})


def test_engine_falls_back_to_compare_when_explain_says_nothing_or_fails():
    plain = toy_grade(None).message
    assert plain.startswith("y has relative error")
    assert toy_grade(lambda *args: None).message == plain

    def broken(*args):
        raise ZeroDivisionError
    assert toy_grade(broken).message == plain


# ------------------------------------------------------------------ real notebooks through the grader

@pytest.fixture(scope="module")
def graded(config, tmp_path_factory):
    """The four step-backward bugs and dh0 never set, as notebooks, through Grader.grade."""
    root = tmp_path_factory.mktemp("explain")
    catalogue = {e.name: e for e in load_catalogue()}
    stacked_source = STEP_SOURCE.replace(*STEP_BUGS["stacked_ifog"])
    notebooks = {name: catalogue[name].sources for name in
                 ("backward_drops_dnext_c", "backward_no_tanh_derivative",
                  "backward_candidate_sigmoid_derivative", "bptt_dh0_never_set")}
    notebooks["stacked_ifog"] = {"lstm_step_backward": stacked_source}
    for student, sources in notebooks.items():
        write_submission(root, student, config.name, config.notebook, mutants.entry_notebook(config, sources))
    results = grade_all(Grader.prepare(config), find_submissions(root, config.name, config.notebook), jobs=1)
    return {r["student_id"]: {e["id"]: e for e in r["exercises"]} for r in results}


def test_graded_notebooks_name_the_block_in_the_feedback(graded):
    step = {student: exercises_["lstm_step_backward"]["message"] for student, exercises_ in graded.items()
            if student != "bptt_dh0_never_set"}
    assert len(set(step.values())) == 4, step
    assert "it lacks dnext_c" in step["backward_drops_dnext_c"]
    assert "lacks the tanh derivative" in step["backward_no_tanh_derivative"]
    assert "the g block of db, dWx and dWh is wrong; i, f and o are right" in step["backward_candidate_sigmoid_derivative"]
    assert "[i | f | o | g]" in step["stacked_ifog"]
    for message in step.values():
        assert "relative error" not in message


def test_graded_bptt_names_its_own_mistake_and_dh0(graded):
    bptt = graded["backward_drops_dnext_c"]["lstm_backward"]["message"]
    assert "Exercise 5" not in bptt and "relative error" not in bptt, bptt   # its own mistake, named
    dh0 = graded["bptt_dh0_never_set"]["lstm_backward"]
    assert dh0["message"].startswith("dh0 is all zeros") and dh0["misconception"]["name"] == "bptt_dh0_never_set"


def test_step_forward_and_clip_messages():
    case = step_case()
    args = [case[k] for k in ("x", "prev_h", "prev_c", "Wx", "Wh", "b")]
    next_h, next_c, _ = ref.lstm_step_forward(*args)
    want = {"next_h": next_h, "next_c": next_c}
    outs = {"next_h": next_h / np.tanh(next_c) * next_c, "next_c": next_c}     # o * next_c
    seen = seen_for("lstm_step_forward", outs, want, {"lstm_gates": passed_result("lstm_gates")})
    assert explain.explain("next_h", outs["next_h"], want["next_h"], case, seen) == (
        "next_h is wrong although next_c is right: next_h = o * tanh(next_c).")
    grads = {"W": np.arange(6.0).reshape(2, 3), "b": np.ones(3)}
    clipped, total = ref.clip_grad_norm(grads, 1.0)
    want = {"clipped": clipped, "total_norm": np.asarray(total)}
    outs = {"clipped": grads, "total_norm": np.asarray(total ** 2)}             # not scaled; no square root
    seen = seen_for("clip_grad_norm", outs, want)
    assert explain.explain("clipped", grads, clipped, {}, seen).startswith(
        "clipped['W'] is a constant multiple of the right value everywhere")
    assert explain.explain("total_norm", outs["total_norm"], want["total_norm"], {}, seen).startswith(
        "total_norm is a constant multiple of the right value")
