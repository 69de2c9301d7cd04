"""The nbgrader source notebook: its metadata, its solution blocks, its public checks, and a
full top-to-bottom run in a real kernel (demos included) with every check passing and
nothing written to stderr."""
import contextlib
import copy
import io
import json
import re
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import solutions.lstm as ref
from seqlab import checks
from tools.release import BEGIN, END, EXERCISES, reference_body

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "source" / "lstm"
NOTEBOOK = SOURCE / "lstm.ipynb"
CONTRACT_ORDER = ["sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward",
                  "lstm_step_backward", "lstm_backward", "clip_grad_norm"]


def text(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def nbg(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.fixture(scope="module")
def grading():
    return yaml.safe_load((REPO / "grading.yml").read_text())["assignments"]["lstm"]


@pytest.fixture(scope="module")
def notebook():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def answer_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and nbg(c).get("solution")]


def first_code_line(source):
    return next(l for l in source.splitlines() if l.strip() and not l.strip().startswith("#"))


def solution_block(source):
    lines = source.split("\n")
    b = next(k for k, l in enumerate(lines) if l.strip() == BEGIN)
    e = next(k for k, l in enumerate(lines) if l.strip() == END)
    return textwrap.dedent("\n".join(lines[b + 1:e]))


# ------------------------------------------------------------------ metadata

def test_release_tool_knows_the_contract_order():
    assert EXERCISES == CONTRACT_ORDER


def test_nbgrader_metadata_is_valid(notebook):
    import nbformat
    from nbgrader.nbgraderformat import MetadataValidator
    nb = nbformat.reads(json.dumps(notebook), as_version=4)
    MetadataValidator().validate_nb(nb)       # raises on invalid metadata
    ids = [nbg(c)["grade_id"] for c in notebook["cells"] if nbg(c)]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    for c in notebook["cells"]:
        if nbg(c):
            assert nbg(c)["schema_version"] == 3


def test_answer_cells_in_contract_order(notebook):
    code_answers = [c for c in answer_cells(notebook) if not nbg(c).get("grade")]
    assert [nbg(c)["grade_id"] for c in code_answers] == CONTRACT_ORDER
    for cell in code_answers:
        name = nbg(cell)["grade_id"]
        src = text(cell)
        assert first_code_line(src).startswith(f"def {name}("), name
        assert nbg(cell)["locked"] is False
        assert src.count(BEGIN) == 1 and src.count(END) == 1, name
        signature = first_code_line(src)[4:].rstrip(":").strip()
        import inspect
        assert signature == name + str(inspect.signature(getattr(ref, name))), name


def test_each_answer_is_followed_by_its_check_cell(notebook, grading):
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    for k, cell in enumerate(cells):
        meta = nbg(cell)
        if meta.get("solution") and not meta.get("grade"):
            name = meta["grade_id"]
            check = cells[k + 1]
            cm = nbg(check)
            assert cm.get("grade") is True and cm.get("solution") is False, name
            assert cm.get("locked") is True, name
            assert cm["grade_id"] == f"check_{name}"
            assert cm["points"] == grading["exercises"][name]
            assert f"check_{name}(" in text(check)
    checks_ = [nbg(c)["grade_id"] for c in cells if nbg(c).get("grade")]
    assert checks_ == [f"check_{n}" for n in CONTRACT_ORDER]


def test_total_autograded_points_match_grading_yml(notebook, grading):
    pts = {nbg(c)["grade_id"]: nbg(c)["points"] for c in notebook["cells"]
           if nbg(c).get("grade") and c["cell_type"] == "code"}
    assert pts == {f"check_{k}": v for k, v in grading["exercises"].items()}


def test_written_questions_match_grading_yml(notebook, grading):
    manual = grading.get("manual") or {}
    cells = {nbg(c)["grade_id"]: c for c in notebook["cells"]
             if nbg(c).get("solution") and nbg(c).get("grade")}
    assert manual and set(cells) == set(manual)
    for gid, cell in cells.items():
        assert cell["cell_type"] == "markdown", gid
        assert nbg(cell)["points"] == manual[gid], gid


def test_section_headings(notebook):
    headings = [text(c).lstrip().split("\n")[0] for c in notebook["cells"]
                if c["cell_type"] == "markdown" and text(c).lstrip().startswith("## ")]
    numbers = [re.match(r"## (3\.\d)", h).group(1) for h in headings if re.match(r"## 3\.\d", h)]
    assert numbers == ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6"]


# ------------------------------------------------------------------ solution blocks

def test_solution_blocks_are_the_reference_bodies(notebook):
    for cell in answer_cells(notebook):
        name = nbg(cell)["grade_id"]
        if name not in CONTRACT_ORDER:
            continue
        assert solution_block(text(cell)) == reference_body(getattr(ref, name)), (
            f"{name}: run `make release` to sync the notebook with solutions/lstm.py")


@pytest.fixture(scope="module")
def notebook_functions(notebook):
    ns = {"np": np, "numpy": np}
    for cell in answer_cells(notebook):
        if nbg(cell)["grade_id"] in CONTRACT_ORDER:
            exec(compile(text(cell), nbg(cell)["grade_id"], "exec"), ns)
    return ns


def _problem(rng, N=3, T=5, D=4, H=6):
    return dict(x=rng.normal(size=(N, T, D)), h0=rng.normal(size=(N, H)),
                Wx=rng.normal(size=(D, 4 * H)) * 0.5, Wh=rng.normal(size=(H, 4 * H)) * 0.5,
                b=rng.normal(size=4 * H) * 0.5, dh=rng.normal(size=(N, T, H)))


def _same(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solution_blocks_behave_like_the_reference(notebook_functions, seed):
    nf, rng = notebook_functions, np.random.default_rng(seed)
    p = _problem(rng, N=int(rng.integers(1, 4)), T=int(rng.integers(1, 6)),
                 D=int(rng.integers(1, 6)), H=int(rng.integers(1, 6)))
    z = rng.normal(size=(4, 5)) * 50
    _same(nf["sigmoid"](z), ref.sigmoid(z))
    x1, h1 = p["x"][:, 0], p["h0"]
    c1 = rng.normal(size=h1.shape)
    args = (x1, h1, p["Wx"], p["Wh"], p["b"])
    _same(nf["lstm_gates"](*args), ref.lstm_gates(*args))
    sn = nf["lstm_step_forward"](x1, h1, c1, *args[2:])
    sr = ref.lstm_step_forward(x1, h1, c1, *args[2:])
    _same(sn[:2], sr[:2])
    d1, d2 = rng.normal(size=h1.shape), rng.normal(size=h1.shape)
    _same(nf["lstm_step_backward"](d1, d2, sn[2]), ref.lstm_step_backward(d1, d2, sr[2]))
    fargs = (p["x"], p["h0"], p["Wx"], p["Wh"], p["b"])
    hn, cn = nf["lstm_forward"](*fargs)
    hr, cr = ref.lstm_forward(*fargs)
    _same(hn, hr)
    _same(nf["lstm_backward"](p["dh"], cn), ref.lstm_backward(p["dh"], cr))
    grads = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    for max_norm in (0.5, 100.0):
        _same(nf["clip_grad_norm"](grads, max_norm), ref.clip_grad_norm(grads, max_norm))


# ------------------------------------------------------------------ public checks

def run_check(check, *fns):
    """Run a public check; returns (stdout, stderr, exception or None)."""
    out, err = io.StringIO(), io.StringIO()
    exc = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check(*fns)
        except BaseException as e:  # noqa: BLE001 - we inspect it
            exc = e
    assert not caught, [str(w.message) for w in caught]
    return out.getvalue(), err.getvalue(), exc


def refs_for(name):
    if name == "lstm_step_backward":
        return (ref.lstm_step_backward, ref.lstm_step_forward)
    if name == "lstm_backward":
        return (ref.lstm_backward, ref.lstm_forward)
    return (getattr(ref, name),)


@pytest.mark.parametrize("name", CONTRACT_ORDER)
def test_check_passes_the_reference_with_one_line(name):
    out, err, exc = run_check(getattr(checks, f"check_{name}"), *refs_for(name))
    assert exc is None, exc
    assert out == f"{name}: all checks passed ({checks.HIDDEN})\n"
    assert err == ""


def _not_implemented(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("name", CONTRACT_ORDER)
def test_check_says_not_implemented(name):
    fns = (_not_implemented,) * len(refs_for(name))
    out, err, exc = run_check(getattr(checks, f"check_{name}"), *fns)
    assert isinstance(exc, checks.NotImplementedYet) and isinstance(exc, AssertionError)
    assert "not implemented yet" in str(exc) and name in str(exc)
    assert exc.__suppress_context__
    assert out == "" and err == ""


def _fails(check, *fns):
    out, err, exc = run_check(check, *fns)
    assert isinstance(exc, checks.CheckFailure), exc
    assert out == "" and err == ""
    return str(exc)


def test_check_sigmoid_catches_overflow_warning():
    msg = _fails(checks.check_sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)))
    assert "warned" in msg
    msg = _fails(checks.check_sigmoid,
                 lambda x: np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))))
    assert "warned" in msg


def test_check_sigmoid_catches_inexact_sigmoid():
    msg = _fails(checks.check_sigmoid, lambda x: ref.sigmoid(x) * (1 + 1e-9))
    assert "relative error" in msg and "index" in msg


def test_check_gates_explains_stacked_output():
    def stacked(x, prev_h, Wx, Wh, b):
        a = x @ Wx + prev_h @ Wh + b
        return ref.sigmoid(a), ref.sigmoid(a), np.tanh(a), ref.sigmoid(a)
    msg = _fails(checks.check_lstm_gates, stacked)
    assert "shape" in msg and "4H" in msg and "expected" in msg


def test_check_gates_catches_wrong_gate_order():
    def swapped(x, prev_h, Wx, Wh, b):
        i, f, g, o = ref.lstm_gates(x, prev_h, Wx, Wh, b)
        return f, i, g, o
    msg = _fails(checks.check_lstm_gates, swapped)
    assert "[i | f | g | o]" in msg


def test_check_catches_modified_inputs():
    def modifies(x, prev_h, Wx, Wh, b):
        out = ref.lstm_gates(x, prev_h, Wx, Wh, b)
        b += 0.0 * b + 1.0
        return out
    msg = _fails(checks.check_lstm_gates, modifies)
    assert "modified" in msg and "`b`" in msg


def test_check_names_an_unimplemented_helper():
    def step(x, prev_h, prev_c, Wx, Wh, b):
        return lstm_gates(x, prev_h, Wx, Wh, b)

    def lstm_gates(*args):
        raise NotImplementedError()
    msg = str(run_check(checks.check_lstm_step_forward, step)[2])
    assert "lstm_step_forward calls lstm_gates, which is not implemented yet" in msg


def test_check_reports_where_a_student_error_happened():
    def broken(x, prev_h, Wx, Wh, b):
        a = x @ Wh            # wrong matrix: shapes do not match
        return a, a, a, a
    msg = _fails(checks.check_lstm_gates, broken)
    assert "ValueError" in msg and "in broken, line" in msg and "a = x @ Wh" in msg


def test_check_accepts_a_list_of_outputs():
    out, err, exc = run_check(checks.check_lstm_gates, lambda *a: list(ref.lstm_gates(*a)))
    assert exc is None, exc


def test_check_catches_nan():
    msg = _fails(checks.check_sigmoid, lambda x: np.full(np.shape(x), np.nan))
    assert "NaN" in msg


def test_check_step_backward_missing_dnext_c_path():
    def no_dnext_c(dnext_h, dnext_c, cache):
        return ref.lstm_step_backward(dnext_h, np.zeros_like(dnext_c), cache)
    msg = _fails(checks.check_lstm_step_backward, no_dnext_c, ref.lstm_step_forward)
    assert "relative error" in msg


def test_check_backward_needs_correct_forward():
    def bad_forward(x, h0, Wx, Wh, b):
        h, cache = ref.lstm_forward(x, h0, Wx, Wh, b)
        return h * 2, cache
    msg = _fails(checks.check_lstm_backward, ref.lstm_backward, bad_forward)
    assert "Fix Exercise 4 (lstm_forward) first" in msg and "value times 2 everywhere" in msg


def test_check_backward_not_summed_over_time():
    def last_step_only(dh, cache):
        dx, dh0, dWx, dWh, db = ref.lstm_backward(dh, cache)
        return dx, dh0, dWx / 2, dWh, db
    msg = _fails(checks.check_lstm_backward, last_step_only, ref.lstm_forward)
    assert "dWx" in msg


def test_check_clip_grad_norm_in_place_and_scale():
    def in_place(grads, max_norm):
        clipped, total = ref.clip_grad_norm(grads, max_norm)
        for k in grads:
            grads[k] *= max_norm / (total + 1e-6) if total > max_norm else 1.0
        return grads, total
    msg = _fails(checks.check_clip_grad_norm, in_place)
    assert "modified" in msg

    def no_eps(grads, max_norm):
        total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
        s = max_norm / total if total > max_norm else 1.0
        return {k: g * s for k, g in grads.items()}, total
    # 1e-6 on a norm of a few units is a relative 1e-7: the check and the grader compare clipping
    # to 1e-9 (grading.yml's clip_rtol), so a missing eps is caught whatever the norm.
    msg = _fails(checks.check_clip_grad_norm, no_eps)
    assert "max_norm / (total_norm + 1e-6)" in msg


def test_checks_module_imports_only_numpy_and_the_standard_library():
    src = (SOURCE / "seqlab" / "checks.py").read_text()
    imports = set(re.findall(r"^\s*(?:import|from)\s+([\w.]+)", src, flags=re.M))
    assert imports <= {"contextlib", "os", "re", "textwrap", "traceback", "warnings", "numpy", "__main__"}, imports


# ------------------------------------------------------------------ full execution

@pytest.fixture(scope="module")
def executed(notebook):
    """The whole source notebook, demos included, run top to bottom in a real kernel."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.reads(json.dumps(notebook), as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(SOURCE)}})
    client.execute()
    return nb


def test_source_notebook_runs_without_errors(executed):
    errors = [(k, o.get("ename"), o.get("evalue")) for k, c in enumerate(executed.cells)
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_source_notebook_writes_nothing_to_stderr(executed):
    stderr = [(k, o.get("text", "")[:300]) for k, c in enumerate(executed.cells)
              if c.cell_type == "code" for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr


def test_every_check_passes_in_the_source_notebook(executed):
    seen = []
    for cell in executed.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            name = meta["grade_id"][len("check_"):]
            out = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert f"{name}: all checks passed" in out, (name, out)
            seen.append(name)
    assert seen == CONTRACT_ORDER


def test_gradient_check_cell_reports_small_errors(executed):
    cells = [c for c in executed.cells if "gradcheck" in c.metadata.get("tags", [])]
    assert cells, "the gradient-check cell (tag `gradcheck`) is missing"
    out = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    errors = [float(e) for e in re.findall(r"relative error ([0-9.e+-]+)", out)]
    assert len(errors) == 5 and max(errors) < 1e-6, out
