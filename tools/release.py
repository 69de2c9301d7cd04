"""Build the student release of an assignment: `python -m tools.release lstm` (`make release`).

1. Sync every answer cell's solution block in source/<a>/<a>.ipynb with the body of the
   reference function in solutions/<a>.py (the notebook keeps its own signature and docstring).
2. Regenerate the public check fixtures (source/<a>/seqlab/fixtures.npz) from the reference.
3. Run `nbgrader generate_assignment <a> --force` and prune the release folder to the files
   students need. Running it twice changes nothing.
"""
import ast
import importlib
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISES = ["sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward",
             "lstm_step_backward", "lstm_backward", "clip_grad_norm"]
JUNK = {"__pycache__", ".ipynb_checkpoints", "gradebook.db", ".DS_Store"}


# ---------------------------------------------------------------- reference bodies

def reference_body(fn):
    """Source lines of fn's body without its docstring, dedented (no trailing newline)."""
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    node = tree.body[0]
    body = node.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]
    lines = src.splitlines()
    start = body[0].lineno - 1            # from the first statement after the docstring
    end = node.end_lineno
    return textwrap.dedent("\n".join(lines[start:end]))


def answer_cell_name(source):
    for line in source.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("def "):
            return s[4:].split("(")[0].strip()
        return None
    return None


def sync_cell(source, body, indent="    "):
    """Replace the lines between BEGIN and END SOLUTION with body (indented)."""
    lines = source.split("\n")
    b = next(k for k, l in enumerate(lines) if l.strip() == BEGIN)
    e = next(k for k, l in enumerate(lines) if l.strip() == END)
    ind = lines[b][: len(lines[b]) - len(lines[b].lstrip())] or indent
    new = [(ind + l) if l.strip() else "" for l in body.split("\n")]
    return "\n".join(lines[: b + 1] + new + lines[e:])


def sync_notebook(path, module):
    """Put the reference's bodies into the notebook's solution blocks; returns the names of the
    blocks that differed (and were rewritten), each announced on stderr: an edit made in the
    notebook instead of solutions/ would otherwise vanish silently."""
    with open(path, encoding="utf-8") as fh:
        nb = json.load(fh)
    rewritten = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        name = answer_cell_name(src)
        if name in EXERCISES and BEGIN in src:
            new = sync_cell(src, reference_body(getattr(module, name)))
            if new != src:
                rewritten.append(name)
                print(f"release: the solution block of {name} in {os.path.relpath(path, ROOT)} differed from "
                      f"{module.__name__.replace('.', '/')}.py and was rewritten from it (edit solutions/, "
                      "not the notebook's solution blocks)", file=sys.stderr)
            cell["source"] = new.splitlines(keepends=True)
    write_notebook(path, nb)
    return rewritten


def write_notebook(path, nb):
    text = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    old = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    if text != old:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


# ---------------------------------------------------------------- fixtures

def make_fixtures(ref):
    """Small fixed cases (N=2, D=3, H=4, T=5): shapes the hidden grader never relies on, a
    different size on every axis (4H = 16 too), so a shape message names its axis."""
    rng = np.random.default_rng(3)
    N, T, D, H = 2, 5, 3, 4
    f = {}
    x = np.concatenate([np.linspace(-30, 30, 13), [-1e-3, 0.0, 1e-3, 0.5, -0.5]]).reshape(3, 6)
    f["sigmoid.x"] = x
    f["sigmoid.out"] = ref.sigmoid(x)
    big = np.array([-1e4, -800.0, -710.0, -40.0, 40.0, 710.0, 800.0, 1e4])
    f["sigmoid.big"] = big
    f["sigmoid.big_out"] = ref.sigmoid(big)

    def params():
        return (rng.normal(size=(D, 4 * H)) * 0.5, rng.normal(size=(H, 4 * H)) * 0.5,
                rng.normal(size=4 * H) * 0.5)

    Wx, Wh, b = params()
    xs, ph = rng.normal(size=(N, D)), rng.normal(size=(N, H))
    for k, v in dict(x=xs, prev_h=ph, Wx=Wx, Wh=Wh, b=b).items():
        f[f"lstm_gates.{k}"] = v
    for k, v in zip("ifgo", ref.lstm_gates(xs, ph, Wx, Wh, b)):
        f[f"lstm_gates.{k}"] = v

    for ex in ("lstm_step_forward", "lstm_step_backward"):
        Wx, Wh, b = params()
        xs, ph, pc = rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(N, H))
        for k, v in dict(x=xs, prev_h=ph, prev_c=pc, Wx=Wx, Wh=Wh, b=b).items():
            f[f"{ex}.{k}"] = v
        nh, nc, cache = ref.lstm_step_forward(xs, ph, pc, Wx, Wh, b)
        f[f"{ex}.next_h"], f[f"{ex}.next_c"] = nh, nc
        if ex == "lstm_step_backward":
            dnh, dnc = rng.normal(size=(N, H)), rng.normal(size=(N, H))
            f[f"{ex}.dnext_h"], f[f"{ex}.dnext_c"] = dnh, dnc
            for k, v in zip("ifgo", ref.lstm_gates(xs, ph, Wx, Wh, b)):   # to read a wrong dprev_c back
                f[f"{ex}.gate_{k}"] = v
            for k, v in zip(["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"],
                            ref.lstm_step_backward(dnh, dnc, cache)):
                f[f"{ex}.{k}"] = v

    for ex in ("lstm_forward", "lstm_backward"):
        Wx, Wh, b = params()
        xs, h0 = rng.normal(size=(N, T, D)), rng.normal(size=(N, H))
        for k, v in dict(x=xs, h0=h0, Wx=Wx, Wh=Wh, b=b).items():
            f[f"{ex}.{k}"] = v
        h, cache = ref.lstm_forward(xs, h0, Wx, Wh, b)
        f[f"{ex}.h"] = h
        if ex == "lstm_backward":
            dh = rng.normal(size=(N, T, H))
            f[f"{ex}.dh"] = dh
            for k, v in zip(["dx", "dh0", "dWx", "dWh", "db"], ref.lstm_backward(dh, cache)):
                f[f"{ex}.{k}"] = v

    f["clip_grad_norm.grads.W"] = rng.normal(size=(3, 4)) * 2.0
    f["clip_grad_norm.grads.b"] = rng.normal(size=(4,)) * 2.0
    f["clip_grad_norm.max_norm"] = np.array(1.0)
    return f


def same_arrays(path, arrays, rtol=1e-12, atol=1e-14):
    """True when the .npz at `path` holds the same names, shapes and dtypes as `arrays` and
    values equal to rounding: BLAS kernels differ between CPUs in the last bits."""
    with np.load(path, allow_pickle=False) as old:
        if sorted(old.files) != sorted(arrays):
            return False
        for key in old.files:
            a, b = old[key], np.asarray(arrays[key])
            if a.shape != b.shape or a.dtype != b.dtype or not np.allclose(a, b, rtol=rtol, atol=atol):
                return False
    return True


def write_npz(path, arrays):
    """Deterministic .npz (fixed zip timestamps); an existing file equal to rounding is kept,
    so reruns on any machine change no byte."""
    if os.path.exists(path) and same_arrays(path, arrays):
        return
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, np.array(arrays[key], order="C"),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, arr_buf.getvalue())
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())


# ---------------------------------------------------------------- nbgrader

def prune(folder):
    for dirpath, dirnames, filenames in os.walk(folder, topdown=True):
        for d in list(dirnames):
            if d in JUNK:
                shutil.rmtree(os.path.join(dirpath, d))
                dirnames.remove(d)
        for fn in filenames:
            if fn in JUNK or fn.endswith((".pyc", ".pyo")):
                os.remove(os.path.join(dirpath, fn))


def generate(assignment, root=ROOT):
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    db = os.path.join(root, "gradebook.db")
    had_db = os.path.exists(db)
    prune(os.path.join(root, "source", assignment))
    nbgrader = os.path.join(bindir, "nbgrader")
    cmd = [nbgrader if os.path.exists(nbgrader) else "nbgrader", "generate_assignment",
           assignment, "--force", "--log-level=WARN",
           f"--CourseDirectory.db_url=sqlite:///{os.path.join(root, '.release_gradebook.db')}"]
    tmp_db = os.path.join(root, ".release_gradebook.db")
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    finally:
        if os.path.exists(tmp_db):
            os.remove(tmp_db)
        if not had_db and os.path.exists(db):
            os.remove(db)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"nbgrader generate_assignment {assignment} failed")
    out = os.path.join(root, "release", assignment)
    prune(out)
    # Normalise the released notebook's JSON so reruns are byte-identical.
    nb_path = os.path.join(out, f"{assignment}.ipynb")
    with open(nb_path, encoding="utf-8") as fh:
        nb = json.load(fh)
    write_notebook(nb_path, nb)
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m tools.release <assignment>")
    assignment = argv[0]
    sys.path.insert(0, ROOT)
    ref = importlib.import_module(f"solutions.{assignment}")
    src = os.path.join(ROOT, "source", assignment)
    sync_notebook(os.path.join(src, f"{assignment}.ipynb"), ref)
    write_npz(os.path.join(src, "seqlab", "fixtures.npz"), make_fixtures(ref))
    out = generate(assignment)
    print(f"released {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
