"""The notebook's public checks (seqlab.checks), issue 12 item 5 and issue 14 item 6: the same
attribution as the grader's feedback, sizes that differ on every axis, a boxed message without
a traceback, plain numbers, the bugs that used to pass, and the progress cell."""
import __main__
import contextlib
import inspect
import io
import json
from pathlib import Path

import numpy as np
import pytest

import solutions.lstm as ref
from seqlab import checks

REPO = Path(__file__).resolve().parent.parent
STEP_SOURCE = inspect.getsource(ref.lstm_step_backward)
BPTT_SOURCE = inspect.getsource(ref.lstm_backward)


def mutant(source, old, new, name):
    assert source.count(old) == 1, old
    ns = {"np": np, "sigmoid": ref.sigmoid}
    exec(source.replace(old, new), ns)
    return ns[name]


def failure(check, *fns):
    """The CheckFailure a check raises (and nothing printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        with pytest.raises(checks.CheckFailure) as info:
            check(*fns)
    assert out.getvalue() == ""
    return info.value


def fails_step(old, new):
    return str(failure(checks.check_lstm_step_backward, mutant(STEP_SOURCE, old, new, "lstm_step_backward"),
                       ref.lstm_step_forward))


# ------------------------------------------------------------------ sizes

def test_fixture_sizes_differ_on_every_axis():
    fx = checks._get("lstm_backward")
    N, T, D = fx["x"].shape
    H = fx["h0"].shape[1]
    assert len({N, T, D, H, 4 * H}) == 5, (N, T, D, H)
    step = checks._get("lstm_step_backward")
    assert step["x"].shape == (N, D) and step["prev_h"].shape == (N, H)


def test_dh_shape_1_used_as_H_fails_now():
    """H = dh.shape[1] is T: it passed while the fixtures had T == H."""
    bad = mutant(BPTT_SOURCE, "    N, T, H = h.shape\n", "    N, T, _ = h.shape\n    H = dh.shape[1]\n", "lstm_backward")
    message = str(failure(checks.check_lstm_backward, bad, ref.lstm_forward))
    assert message.startswith("lstm_backward")


def test_a_shape_message_names_the_axis():
    def dx_with_h(dh, cache):
        dx, dh0, dWx, dWh, db = ref.lstm_backward(dh, cache)
        return np.zeros(dh.shape), dh0, dWx, dWh, db      # (N, T, H) where (N, T, D) is due
    message = str(failure(checks.check_lstm_backward, dx_with_h, ref.lstm_forward))
    assert "expected (N, T, D) = (2, 5, 3): axis 2 should be D (3) but is 4, which is H" in message


# ------------------------------------------------------------------ attribution, as in the grader

def test_step_backward_check_names_the_gate_block():
    message = fails_step("dc * i * (1.0 - g * g)", "dc * i * g * (1.0 - g)")
    assert "the g block of db, dWx and dWh is wrong; i, f and o are right: check the derivative of tanh for g" in message
    message = fails_step("dc = dnext_c + dnext_h", "dc = 0.0 * dnext_c + dnext_h")
    assert "dprev_c is wrong, and the i, f and g blocks of db, dWx and dWh are wrong; o is right" in message
    assert "one term short: it lacks dnext_c" in message
    message = fails_step("dnext_h * o * (1.0 - tanh_c * tanh_c)", "dnext_h * o")
    assert "one term short: its path through next_h lacks the tanh derivative" in message
    message = fails_step("""        dc * i * (1.0 - g * g),              # g = tanh(a_g)
        dnext_h * tanh_c * o * (1.0 - o),    # next_h = o * tanh(next_c); o = sigmoid(a_o)""",
                         """        dnext_h * tanh_c * o * (1.0 - o),
        dc * i * (1.0 - g * g),""")
    assert "in the order [i | f | o | g]" in message


def test_backward_check_says_when_the_step_backward_is_the_cause(monkeypatch):
    drops = mutant(STEP_SOURCE, "dc = dnext_c + dnext_h", "dc = 0.0 * dnext_c + dnext_h", "lstm_step_backward")

    def bptt_on_steps(dh, cache):   # written the CS231n way, on the student's own step backward
        x, h0, Wx, Wh, gates, c, h = cache
        N, T, H = h.shape
        dx, dWx, dWh, db = np.zeros(x.shape), np.zeros(Wx.shape), np.zeros(Wh.shape), np.zeros(4 * H)
        dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
        for t in reversed(range(T)):
            i, f, g, o = np.split(gates[:, t], 4, axis=1)
            prev_h, prev_c = (h[:, t - 1], c[:, t - 1]) if t else (h0, np.zeros((N, H)))
            step = (x[:, t], prev_h, prev_c, Wx, Wh, i, f, g, o, np.tanh(c[:, t]))
            dx[:, t], dprev_h, dprev_c, a, b_, d = drops(dh[:, t] + dprev_h, dprev_c, step)
            dWx, dWh, db = dWx + a, dWh + b_, db + d
        return dx, dprev_h, dWx, dWh, db
    monkeypatch.setattr(__main__, "lstm_step_backward", drops, raising=False)
    monkeypatch.setattr(__main__, "lstm_step_forward", ref.lstm_step_forward, raising=False)
    message = str(failure(checks.check_lstm_backward, bptt_on_steps, ref.lstm_forward))
    assert message.startswith("lstm_backward: your lstm_step_backward (Exercise 5) fails its own check")
    monkeypatch.setattr(__main__, "lstm_step_backward", ref.lstm_step_backward)
    assert "Exercise 5" not in str(failure(checks.check_lstm_backward,
                                           mutant(BPTT_SOURCE, "dnext_h = dh[:, t] + dprev_h", "dnext_h = dh[:, t]",
                                                  "lstm_backward"), ref.lstm_forward))


def test_forward_check_reads_the_time_steps():
    def first_step_only(x, h0, Wx, Wh, b):
        h, cache = ref.lstm_forward(x, h0, Wx, Wh, b)
        h = h.copy()
        h[:, 1:] = ref.lstm_forward(x[:, 1:], h0, Wx, Wh, b)[0]    # every step restarts from h0
        return h, cache
    message = str(failure(checks.check_lstm_forward, first_step_only))
    assert "h is right at the first time step and wrong after it" in message


# ------------------------------------------------------------------ bugs that passed before

def test_in_place_dnext_c_fails_with_the_graders_wording():
    def in_place(dnext_h, dnext_c, cache):
        x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
        dnext_c += dnext_h * o * (1 - tanh_c ** 2)
        return ref.lstm_step_backward(dnext_h, dnext_c - dnext_h * o * (1 - tanh_c ** 2), cache)
    message = str(failure(checks.check_lstm_step_backward, in_place, ref.lstm_step_forward))
    assert "modified its input `dnext_c`: a graded function must leave its arguments unchanged" in message
    assert "half of this exercise's points" in message


def test_clip_returning_the_same_arrays_unscaled_passes_with_a_note():
    """Where nothing is clipped, a new dict of the caller's arrays (or the caller's dict itself)
    changes nothing: the grader gives full marks, so the check passes, and says why new arrays
    are better. Scaling those arrays in place fails, as the grader charges it."""
    def new_dict_same_arrays(grads, max_norm):
        total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
        clipped = dict(grads)
        if total > max_norm:
            clipped = {k: v * (max_norm / (total + 1e-6)) for k, v in grads.items()}
        return clipped, total
    def the_same_dict(grads, max_norm):
        clipped, total = new_dict_same_arrays(grads, max_norm)
        return (grads if total <= max_norm else clipped), total
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        checks.check_clip_grad_norm(new_dict_same_arrays)
        checks.check_clip_grad_norm(the_same_dict)
    assert out.getvalue().count("clip_grad_norm: all checks passed") == 2
    assert out.getvalue().count("Note: clipped is your grads dict itself, or holds its arrays") == 2

    def scaled_in_place(grads, max_norm):
        total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
        clipped = dict(grads)
        for g in clipped.values():
            g *= min(1.0, max_norm / (total + 1e-6))
        return clipped, total
    message = str(failure(checks.check_clip_grad_norm, scaled_in_place))
    assert "is the caller's array grads['W'] itself" in message and "dict(grads)" in message


# ------------------------------------------------------------------ how a failure looks

def test_numbers_are_printed_plainly():
    messages = [str(failure(checks.check_sigmoid, lambda x: ref.sigmoid(x) * (1 + 1e-9))),
                str(failure(checks.check_clip_grad_norm, lambda g, m: ({k: v * 1.0 for k, v in g.items()},
                                                                       np.float64(1.0)))),
                str(failure(checks.check_sigmoid, lambda x: np.float64(0.4) + 0 * ref.sigmoid(x)))]
    for message in messages:
        assert "np.float64" not in message and "float64(" not in message, message


def test_a_failed_check_renders_as_a_box_without_traceback():
    exc = failure(checks.check_lstm_step_backward,
                  mutant(STEP_SOURCE, "dc * i * (1.0 - g * g)", "dc * i * g * (1.0 - g)", "lstm_step_backward"),
                  ref.lstm_step_forward)
    lines = exc._render_traceback_()
    assert lines[0].startswith("\u250c\u2500 check failed") and lines[-1].startswith("\u2514")
    assert all(line.startswith("\u2502 ") and line.endswith(" \u2502") for line in lines[1:-1])
    assert len({len(line) for line in lines}) == 1
    text = " ".join(line.strip("\u2502 ") for line in lines[1:-1])
    assert " ".join(str(exc).split()) == " ".join(text.split())
    assert "Traceback" not in "\n".join(lines) and "checks.py" not in "\n".join(lines)


def test_ipython_shows_the_box_and_no_traceback():
    """In a real IPython shell (what Jupyter's kernel runs): the box only."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    shell = InteractiveShell.instance()
    shell.user_ns.update(checks=checks, np=np, bad=lambda x: 0.5 + 0 * x)
    with capture_output() as captured:
        shell.run_cell("checks.check_sigmoid(bad)")
    shown = captured.stdout + captured.stderr
    assert "\u250c\u2500 check failed" in shown and "sigmoid:" in shown
    assert "Traceback" not in shown and "_fail" not in shown and "---------" not in shown


# ------------------------------------------------------------------ progress at a glance

def test_progress_prints_one_line_per_exercise():
    names = checks._EXERCISES
    ns = {n: getattr(ref, n) for n in names}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert checks.progress(ns) == 7
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 and all(line.rstrip().endswith("ok") for line in lines[:7])
    assert [line.split()[2] for line in lines[:7]] == names and lines[0].startswith("Exercise 1")

    def todo(*args):
        raise NotImplementedError()
    ns.update(lstm_step_backward=mutant(STEP_SOURCE, "dc * i * (1.0 - g * g)", "dc * i * g * (1.0 - g)",
                                        "lstm_step_backward"), clip_grad_norm=todo)
    del ns["lstm_forward"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert checks.progress(ns) == 3
    lines = dict(zip(names, [line for line in out.getvalue().splitlines() if line.startswith("Exercise")]))
    assert " X  the g block of db, dWx and dWh is wrong" in lines["lstm_step_backward"]
    assert "-  lstm_forward not defined yet" in lines["lstm_forward"]
    assert "-  lstm_forward not defined yet" in lines["lstm_backward"]     # its check needs the forward
    assert "-  not implemented yet" in lines["clip_grad_norm"]
    assert "3 of 7 exercises pass" in out.getvalue()


def test_progress_cell_is_in_the_notebook_and_skipped_by_the_grader(config):
    nb = json.loads((REPO / "source" / "lstm" / "lstm.ipynb").read_text())
    cells = nb["cells"]
    k = next(i for i, c in enumerate(cells) if "progress" in c["metadata"].get("tags", []))
    cell = cells[k]
    assert "".join(cell["source"]).rstrip().endswith("checks.progress();")     # no stray Out: 7
    assert {"demo", "otter_ignore"} <= set(cell["metadata"]["tags"]) and "nbgrader" not in cell["metadata"]
    assert set(config.skip_cell_tags) & set(cell["metadata"]["tags"])
    assert cells[k - 1]["metadata"]["nbgrader"]["grade_id"] == "check_clip_grad_norm"
    released = json.loads((REPO / "release" / "lstm" / "lstm.ipynb").read_text())
    assert any(c.get("id") == cell["id"] for c in released["cells"])
