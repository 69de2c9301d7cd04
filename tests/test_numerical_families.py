"""Issue 18 item 3: every family of numerical (or automatic) differentiation, as cheap as a student
can make it, graded through the CLI in one class run with honest-but-slow classmates.

Each cheating family earns at most its honest points: the backward exercise(s) it differentiates
numerically earn 0 and are flagged (`numerical_gradient`, or `too_slow` where its forward pass is
slow too). The honest classmates, and (f) (a derived backward pass whose gate derivatives
sigmoid' and tanh' are scalar centred differences), keep full marks, unflagged.

The families that cost what an honest pass costs (`make bench`, benchmarks/bench_derivation.py) are
marked `xfail(strict=True)`, "cost-blind": no limit on time, wall or CPU, can catch them, and
they stay documented (README, "What is not done") for a TA's eyes. Were one ever caught, its test
would XPASS and turn red.
"""
import inspect
import json

import pytest

from assignments.lstm.samples import FULL, OTHER_STYLE, reference_cells, release
from autograder.samples import write_submission
from solutions import lstm as reference
from tests import numerical_families as fam
from tests.conftest import cpu_accounting, run_cli
from tests.test_attacks import HONEST_SLOW, forward_keeping_args

STEP, SEQ = "lstm_step_backward", "lstm_backward"


def numerical(step=None, seq=None, forward=None):
    """Builder: the reference everywhere; forward passes that keep their arguments in the cache
    for each backward pass replaced by `step` / `seq` sources (`forward`: lstm_forward's own)."""
    def build(config):
        cells = reference_cells()
        if step is not None:
            cells["lstm_step_forward"] = forward_keeping_args("lstm_step_forward", cells["lstm_step_forward"])
            cells[STEP] = step
        if seq is not None:
            cells["lstm_forward"] = forward or forward_keeping_args("lstm_forward", cells["lstm_forward"])
            cells[SEQ] = seq
        return release(config, cells)
    return build


def honest(**sources):
    def build(config):
        return release(config, {**reference_cells(), **sources})
    return build


def cheating(*exercises):
    return {**FULL, **dict.fromkeys(exercises, 0)}


COST_BLIND = "cost-blind: {}, less than an honest slow pass costs: no time limit can catch it"


# A single step's differences cost tens to hundreds of milliseconds, around the wall clock's 0.15 s
# floor: the session's CPU time catches them, which only a cgroup measures.
CPU_TIME_CATCHES = [pytest.mark.xfail(not cpu_accounting(), strict=False,
                                      reason="no cgroup CPU accounting here: the wall clock's floor alone")]


def cost_blind(why):
    return pytest.mark.xfail(strict=True, reason=COST_BLIND.format(why))


JACOBIAN_FORWARD = fam.forward_with_jacobian(inspect.getsource(reference.lstm_forward))

# id: (builder, expected points, exercises flagged, marks). Costs: CPU time of the forward and
# backward calls against the reference's on derivation-case shapes (N 6-10, T 24-32, D 24-48,
# H 48-96), min-max over 4 draws, of the backward call alone (`make bench` times the forward and
# backward calls together: benchmarks/bench_derivation.py); the limit is 100x, and the slowest
# honest pass below takes 25-51x.
FAMILIES = {
    # (a) compressed centred differences, one step: 2(5D + 5H + 5) passes batched into 12 numpy
    # calls: 1,800-6,600x
    "a_step_compressed": (numerical(step=fam.STEP_COMPRESSED), cheating(STEP), [STEP], CPU_TIME_CATCHES),
    # (b) lstm_backward by pre-activation pushes per step, every sample and column at once, run
    # from the cached state of that step: 1,500-4,600x
    "b_seq_pushes_centred": (numerical(seq=fam.seq_pushes("centred")), cheating(SEQ), [SEQ], []),
    # (b'') pushes of the state (h_t, c_t) instead, 2H a sample, then step t's own colours: 350-1,500x
    "b_seq_state_pushes": (numerical(seq=fam.state_pushes(False)), cheating(SEQ), [SEQ], []),
    # (b') the issue's compressed differences of the inputs (x columns, h0 columns over samples),
    # weights entry by entry (a sequence mixes every unit after one step): 13,000-59,000x
    "b_seq_compressed_inputs": (numerical(seq=fam.SEQ_COMPRESSED), cheating(SEQ), [SEQ], []),
    # (c) coloured: the step's pre-activation Jacobian in 4 colours (+1 for prev_c), exact
    # products after: 6-9x
    "c_step_coloured": (numerical(step=fam.STEP_COLOURED), cheating(STEP), [STEP],
                        [cost_blind("10 elementwise passes, 0.1-0.2 ms, 6-9x")]),
    # (c) the same inside a hand-written BPTT loop: 4-5x
    "c_seq_coloured_bptt": (numerical(seq=fam.SEQ_COLOURED), cheating(SEQ), [SEQ],
                            [cost_blind("10 elementwise passes a step, 4-5x")]),
    # (d) complex step: the step's compressed directions (3,100-7,600x), the same on two threads
    # (wall time about halves, the process's CPU time does not: 2,700-4,900x), the sequence's
    # pushes (3,700-15,000x)
    "d_step_complex": (numerical(step=fam.STEP_COMPLEX), cheating(STEP), [STEP], CPU_TIME_CATCHES),
    "d_step_complex_threads": (numerical(step=fam.STEP_COMPLEX_THREADS), cheating(STEP), [STEP], CPU_TIME_CATCHES),
    "d_seq_complex": (numerical(seq=fam.seq_pushes("complex")), cheating(SEQ), [SEQ], []),
    # (e) one-sided differences: half the passes, a step of 1e-7 keeps them within rtol (Richardson
    # needs as many passes as centred differences, for nothing): of (b)'s pushes 530-1,600x, of
    # (b'')'s state pushes 260-770x
    "e_seq_one_sided": (numerical(seq=fam.seq_pushes("one-sided")), cheating(SEQ), [SEQ], []),
    "e_seq_state_pushes_one_sided": (numerical(seq=fam.state_pushes(True)), cheating(SEQ), [SEQ], []),
    # (g) (d, step) in a forked child that pipes its answer back: the calling process spends
    # 60-80x (the fork and the pickle), the child the rest; the session's cgroup counts both
    "g_step_complex_in_a_child": (numerical(step=fam.in_a_child(fam.STEP_COMPLEX, STEP)), cheating(STEP), [STEP], CPU_TIME_CATCHES),
    # (g) reverse-mode autodiff, a tape written in the notebook (no library): 5-21x
    "g_seq_tape_autodiff": (numerical(seq=fam.TAPE), cheating(SEQ), [SEQ],
                            [cost_blind("a hand-written tape, 5-21x")]),
    # (g) (b)'s Jacobian of h computed in lstm_forward, contracted with dh in lstm_backward: the
    # backward call is cheap, the forward call thousands of times the reference's (the forward
    # and backward calls are timed together)
    "g_seq_jacobian_in_forward": (numerical(seq=fam.FORWARD_JACOBIAN, forward=JACOBIAN_FORWARD), cheating(SEQ), [SEQ],
                                  []),
}

HONEST = {
    # (f) numerical sigmoid' and tanh', everything else derived: 2-3x
    "f_gate_derivatives": numerical(step=fam.STEP_GATE_DERIVATIVES, seq=fam.SEQ_GATE_DERIVATIVES),
    "honest": honest(),
    "honest_slow": honest(**HONEST_SLOW),                                  # 10-16x
    "honest_cs231n_scalar_loops": honest(lstm_step_backward=fam.HONEST_SCALAR_LOOPS_STEP,
                                         lstm_forward=OTHER_STYLE["lstm_forward"],
                                         lstm_backward=OTHER_STYLE["lstm_backward"]),   # 21-37x
    "honest_slowest": honest(lstm_step_backward=fam.HONEST_SCALAR_LOOPS_STEP, **HONEST_SLOW),   # 25-51x
}


@pytest.fixture(scope="module")
def class_run(config, tmp_path_factory):
    root = tmp_path_factory.mktemp("numerical_families")
    for student, (build, *_) in FAMILIES.items():
        write_submission(root / "submitted", student, config.name, config.notebook, build(config))
    for student, build in HONEST.items():
        write_submission(root / "submitted", student, config.name, config.notebook, build(config))
    out = root / "out"
    done = run_cli("grade", str(root / "submitted"), "--assignment", "lstm", "--out", str(out), "--no-gradebook",
                   "--jobs", "2")
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    return out, done, results


def by_id(result):
    return {e["id"]: e for e in result["exercises"]}


def test_the_run_ends_with_every_result(class_run):
    _, done, results = class_run
    assert done.returncode == 0, done.stderr
    assert set(results) == set(FAMILIES) | set(HONEST)


@pytest.mark.parametrize("student", [pytest.param(s, marks=FAMILIES[s][3], id=s) for s in FAMILIES])
def test_each_family_earns_at_most_its_honest_points_and_is_flagged(class_run, student):
    _, _, results = class_run
    _, expected, flagged, _ = FAMILIES[student]
    exercises = by_id(results[student])
    got = {name: e["points"] for name, e in exercises.items()}
    report = {name: (e["points"], e["flags"], e["message"][:160]) for name, e in exercises.items() if name in flagged}
    assert all(got[name] <= expected[name] + 1e-4 for name in expected), (student, report)
    for name in flagged:
        assert exercises[name]["flags"] in (["numerical_gradient"], ["too_slow"]), (student, report)
    assert {name for name, e in exercises.items() if e["flags"]} == set(flagged), (student, report)


@pytest.mark.parametrize("student", sorted(HONEST))
def test_honest_and_slow_and_lazy_derivatives_keep_full_marks_unflagged(class_run, student):
    _, _, results = class_run
    exercises = by_id(results[student])
    assert {name: e["points"] for name, e in exercises.items()} == pytest.approx(FULL, abs=1e-4), \
        (student, {n: (e["points"], e["message"][:160]) for n, e in exercises.items() if e["points"] < FULL[n]})
    assert not any(e["flags"] for e in exercises.values()), student
