"""The grader's stand-ins (issue 18): what a student's process may ask of them, and what it gets.

A stand-in's request is data from the student's process; StandIns answers it with the
reference's values, computed in the grader's process, within bounds that keep that computation
the size of the case: a budget of calls, arrays no longer on any axis than the grader's own, real
numbers only, handles the grader gave out only.
"""
import marshal

import numpy as np
import pytest

from autograder.process.impl import Handle, LocalImpl, StandIns
from solutions import lstm as reference

NAMES = {name: tuple(__import__("inspect").signature(fn).parameters) for name, fn in vars(reference).items()
         if callable(fn) and not name.startswith("_") and name != "np"}
KEPT = {"lstm_step_forward": (2,)}


def stand_ins(budget=8):
    ref = LocalImpl(vars(reference), NAMES, watch_inputs=False)
    ins = StandIns(ref, ("sigmoid", "lstm_gates", "lstm_step_forward", "lstm_step_backward"), NAMES, KEPT, budget)
    rng = np.random.default_rng(0)
    case = dict(x=rng.normal(size=(3, 4)), prev_h=rng.normal(size=(3, 5)), prev_c=rng.normal(size=(3, 5)),
                Wx=rng.normal(size=(4, 20)), Wh=rng.normal(size=(5, 20)), b=rng.normal(size=20))
    ins.begin(list(case.values()))
    return ins, case


def decoded(value):
    """worker.decoded, read here from marshal data as the student's process reads it."""
    value = marshal.loads(marshal.dumps(value))
    kind = value[0]
    if kind == "a":
        return np.frombuffer(value[1], dtype=value[2]).reshape(value[3])
    if kind == "t":
        return tuple(decoded(v) for v in value[1])
    return value[1]


def test_answers_are_the_references_values_and_caches_stay_with_the_grader():
    ins, c = stand_ins()
    answer = ins.answer("lstm_gates", [c["x"], c["prev_h"], c["Wx"], c["Wh"], c["b"]])
    assert answer["ok"]
    for got, want in zip(decoded(answer["result"]), reference.lstm_gates(c["x"], c["prev_h"], c["Wx"], c["Wh"], c["b"])):
        np.testing.assert_array_equal(got, want)
    step = ins.answer("lstm_step_forward", [c[k] for k in ("x", "prev_h", "prev_c", "Wx", "Wh", "b")])
    kind, key = step["result"][1][2]
    assert kind == "r" and isinstance(ins.kept[key], Handle)          # the cache: a key, not its arrays
    grads = ins.answer("lstm_step_backward", [c["prev_h"], c["prev_c"], {"grader_value": key}])
    want = reference.lstm_step_backward(c["prev_h"], c["prev_c"],
                                        reference.lstm_step_forward(*[c[k] for k in ("x", "prev_h", "prev_c",
                                                                                      "Wx", "Wh", "b")])[2])
    for got, expected in zip(decoded(grads["result"]), want):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("request_, words", [
    (("lstm_backward", []), "does not stand in for lstm_backward"),
    (("lstm_step_backward", [np.ones((3, 5)), np.ones((3, 5)), {"grader_value": 7}]), "did not give out"),
    (("lstm_step_backward", [np.ones((3, 5)), np.ones((3, 5)), {"grader_value": "0"}]), "did not give out"),
    (("sigmoid", [np.ones((1, 10 ** 5))]), "shape (1, 100000)"),
    (("sigmoid", [np.ones((2, 2, 2, 2))]), "shape (2, 2, 2, 2)"),
    (("sigmoid", [np.ones(3, dtype=complex)]), "dtype complex128"),
    (("sigmoid", [[[1.0], [1.0, 2.0]]]), "not an array"),
    (("lstm_gates", [np.ones((3, 4)), np.ones((3, 5)), np.ones((5, 20)), np.ones((5, 20)), np.ones(20)]), "lstm_gates:"),
])
def test_requests_out_of_bounds_are_refused_without_computing(request_, words):
    ins, _ = stand_ins()
    answer = ins.answer(*request_)
    assert answer["ok"] is False and words in answer["message"], answer


def test_a_call_gets_its_budget_of_stand_in_calls_and_no_more():
    ins, _ = stand_ins(budget=3)
    assert all(ins.answer("sigmoid", [np.ones(3)])["ok"] for _ in range(3))
    refused = ins.answer("sigmoid", [np.ones(3)])
    assert not refused["ok"] and "at most 3 calls" in refused["message"]
    ins.begin([np.ones(3)])                     # the student's next call starts again
    assert ins.answer("sigmoid", [np.ones(3)])["ok"]
