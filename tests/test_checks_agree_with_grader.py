"""The public checks and the grader agree on everything that decides points (issue 22, item 7).

Every bundled sample, every catalogue entry, every style of correct work, the notebook with two
mistakes and the probes below run through both: their check cells as a student runs them
(tests/public_verdicts.py, the release's seqlab) and the grader (the session's grades of the
samples and the catalogue, tests/conftest.py; the probes graded here). For each graded function
the public check passes if and only if the grader gives it full marks, except where they cannot
agree by design:

- UPSTREAM: the check fails and says the problem starts in an earlier exercise, naming it
  ("Exercise k"), and that exercise fails its own check and loses points with the grader. The
  grader judges each function with its stand-ins for the graded functions it calls, and on the
  student's own upstream functions (no double penalty); the public check has neither: it sends
  the student to the exercise to fix first, and the points stay where the mistake is.
- HIDDEN_ONLY: listed pairs where the check passes and the grader gives less because only its
  hidden cases can see the difference (shapes the fixtures never use). A check that passes says
  so: the grader's hidden cases test more.
"""
import re

import pytest

from assignments.lstm.samples import SAMPLES
from autograder.grade import Grader, find_submissions, grade_all
from autograder.judging import mutants
from autograder.samples import write_submission
from tests.catalogue_notebooks import CATALOGUE, STYLES, TWO_MISTAKES, notebooks as catalogue_notebooks, style_id
from tests.public_verdicts import verdicts

EXERCISES = ("sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward", "lstm_step_backward",
             "lstm_backward", "clip_grad_norm")
HIDDEN_NOTE = "the grader's hidden cases test more"

# (student id, exercise) -> why only the grader's hidden cases see the difference
HIDDEN_ONLY = {
    ("crash_only_at_n1", "lstm_step_forward"):
        "np.squeeze(prev_h).shape[1] fails only where N = 1 or H = 1: hidden shapes, never the fixtures'",
}

# Wrong work that the public checks used to pass while the grader took points (issue 22): each
# loses points on its exercise, and its check must now fail.
PROBES = {
    "probe_gates_float32": {"lstm_gates": '''def lstm_gates(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    a = (x @ Wx + prev_h @ Wh + b).astype(np.float32)
    return sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
'''},
    "probe_total_norm_array": {"clip_grad_norm": '''def clip_grad_norm(grads, max_norm):
    total_norm = np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()]), keepdims=True)
    scale = max_norm / (total_norm + 1e-6) if total_norm > max_norm else 1.0
    return {k: g * scale for k, g in grads.items()}, total_norm
'''},
    "probe_clipped_lists": {"clip_grad_norm": '''def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    scale = max_norm / (total_norm + 1e-6) if total_norm > max_norm else 1.0
    return {k: (g * scale).tolist() for k, g in grads.items()}, total_norm
'''},
    "probe_sigmoid_at_least_1d": {"sigmoid": '''def sigmoid(x):
    x = np.atleast_1d(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
'''},
    "probe_clip_without_eps": {"clip_grad_norm": '''def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    scale = max_norm / total_norm if total_norm > max_norm else 1.0
    return {k: g * scale for k, g in grads.items()}, total_norm
'''},
    "probe_clip_replaces_arrays": {"clip_grad_norm": '''def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    scale = max_norm / (total_norm + 1e-6) if total_norm > max_norm else 1.0
    if scale == 1.0:
        grads.update({k: g.copy() for k, g in grads.items()})   # the same values, in the caller's dict
    return {k: g * scale for k, g in grads.items()}, total_norm
'''},
}
# Right work that a public check used to fail while the grader gave full marks: every check passes.
RIGHT_PROBES = {
    "probe_sigmoid_clipped_at_709": {"sigmoid": '''def sigmoid(x):
    x = np.clip(x, -709, 709)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
'''},
}


@pytest.fixture(scope="module")
def probes_graded(config, tmp_path_factory):
    root = tmp_path_factory.mktemp("probes")
    for student, sources in {**PROBES, **RIGHT_PROBES}.items():
        write_submission(root, student, config.name, config.notebook, mutants.entry_notebook(config, sources))
    results = grade_all(Grader.prepare(config), find_submissions(root, config.name, config.notebook), 2)
    return {r["student_id"]: r for r in results}


def compared_notebooks(config):
    """{student id: notebook} of everything compared (the grader's results carry the same ids)."""
    built = {s.student_id: s.build(config) for s in SAMPLES}
    built = {sid: nb for sid, nb in built.items() if isinstance(nb, dict)}   # a broken file has no checks
    on_catalogue = catalogue_notebooks(config)
    ids = [e.name for e in CATALOGUE] + [style_id(s) for s in STYLES] + [mutants.CONTROL, TWO_MISTAKES]
    built.update({sid: on_catalogue[sid] for sid in ids})
    built.update({sid: mutants.entry_notebook(config, sources) for sid, sources in {**PROBES, **RIGHT_PROBES}.items()})
    return built


@pytest.fixture(scope="module")
def both(config, demo, catalogue_graded, probes_graded):
    """{student id: (public verdicts, {exercise id: the grader's result})}."""
    notebooks = compared_notebooks(config)
    public = verdicts(notebooks, config.release_dir)
    grades = {**demo[1], **catalogue_graded[1], **probes_graded}
    return {sid: (public[sid], {e["id"]: e for e in grades[sid]["exercises"]}) for sid in notebooks}


def full(result):
    return result["points"] == result["max_points"]


def upstream_named(exercise, text, public, grader):
    """The earlier exercises the failing check's message names that fail their own check and
    lose points with the grader."""
    own = EXERCISES.index(exercise) + 1
    named = {EXERCISES[int(k) - 1] for k in re.findall(r"Exercise (\d)", text) if int(k) < own}
    return sorted(n for n in named if not public.get(n, (False,))[0] and not full(grader[n]))


def disagreement(student, exercise, public, grader):
    """None when the check and the grader agree on this function, or differ by design; else why not."""
    passed, text = public.get(exercise, (False, "no verdict: the check cell never finished"))
    if passed == full(grader[exercise]):
        return None
    if passed and (student, exercise) in HIDDEN_ONLY:
        return None if HIDDEN_NOTE in text else f"passes without saying that {HIDDEN_NOTE}: {text}"
    if not passed and upstream_named(exercise, text, public, grader):
        return None
    points = f"{grader[exercise]['points']}/{grader[exercise]['max_points']}"
    return (f"public check {'passes' if passed else 'fails'}, grader gives {points} "
            f"({grader[exercise]['message'][:300]}); the check said: {text.strip()[-600:]}")


def test_every_check_agrees_with_the_grader(both):
    found = {(sid, ex): why for sid, (public, grader) in both.items() for ex in EXERCISES
             if (why := disagreement(sid, ex, public, grader))}
    assert not found, "\n\n".join(f"{sid} / {ex}: {why}" for (sid, ex), why in found.items())


def test_listed_exceptions_still_happen(both):
    """HIDDEN_ONLY lists exactly what happens: a pair that agrees now is no exception."""
    for (student, exercise), why in HIDDEN_ONLY.items():
        public, grader = both[student]
        assert public[exercise][0] and not full(grader[exercise]), (student, exercise, why)


def test_upstream_is_the_only_other_way_to_differ(both):
    """Each disagreement by design names the exercise to fix first, and that exercise is charged."""
    upstream = [(sid, ex) for sid, (public, grader) in both.items() for ex in EXERCISES
                if not public.get(ex, (False,))[0] and full(grader[ex])]
    assert upstream, "no notebook shows the stand-ins' case"   # the catalogue's forward mistakes do
    for sid, ex in upstream:
        public, grader = both[sid]
        assert upstream_named(ex, public[ex][1], public, grader), (sid, ex, public[ex][1])


def test_a_passing_check_says_hidden_cases_test_more(both):
    public, _ = both["correct"]
    assert all(public[ex][0] and HIDDEN_NOTE in public[ex][1] for ex in EXERCISES), public


@pytest.mark.parametrize("student", [style_id(s) for s in STYLES] + ["correct_other_style"] + sorted(RIGHT_PROBES))
def test_correct_work_in_any_style_passes_every_check(both, student):
    """Prints, its own warnings, NumPy warnings outside sigmoid, lists for tuples, a float from a
    0-d sigmoid, the grads dict itself when nothing is clipped, a sigmoid off only below 1e-300:
    full marks, and every check passes."""
    public, grader = both[student]
    assert all(full(grader[ex]) for ex in EXERCISES), student
    assert {ex: public[ex][1] for ex in EXERCISES if not public[ex][0]} == {}


@pytest.mark.parametrize("student", sorted(PROBES))
def test_probes_fail_their_check_and_lose_points(both, student):
    public, grader = both[student]
    (exercise,) = PROBES[student]
    assert not full(grader[exercise]) and not public[exercise][0], (grader[exercise], public[exercise])
