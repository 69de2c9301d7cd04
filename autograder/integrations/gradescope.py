"""A Gradescope autograder that IS the local grader.

    python -m autograder gradescope --assignment lstm --out DIR     ->  DIR/<assignment>-gradescope.zip

Gradescope unzips the zip into /autograder/source, runs setup.sh once (as root) when it builds
the image, then, for each submission, /autograder/run_autograder (a copy of ours) as root in
/autograder. Ours makes /autograder/source readable by root only and runs `run` below, which
grades the uploaded notebook with `Grader.grade(student_id, notebook_path)`, exactly the call the
local grader makes: the student's cells run only in the sandboxed worker (bubblewrap where it
works, else an unprivileged uid), and results.json is written by this root-side process.
otter-grader is not involved: its Gradescope path runs the notebook as root in a kernel and then
runs the tests inside that kernel, where a notebook can read or overwrite anything.

The zip mirrors the repository layout under source/: the engine (autograder/*.py, generic,
as source), grading.yml, the release's support files (the worker's scratch copy) and the
source folder's (no notebook), and, ONLY as
sourceless Python 3.11 bytecode (hence the pinned Python): the reference module, the
assignment package (hidden-case generators, probes, judges) and `catalogue.marshal`, the
misconception catalogue compiled at build time (each entry is a source transformation of the
reference: the reference's code, then the entry's code, run in one namespace).
"""
import json
import marshal
import os
import py_compile
import re
import shutil
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import yaml

CATALOGUE_FILE = "catalogue.marshal"   # next to grading.yml in the zip
RUNTIME_PACKAGES = ("numpy", "pyyaml", "matplotlib")   # what the grader and the worker import
VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")
DEFAULT_VISIBILITY = {"visibility": "visible", "tests_visibility": "visible", "stdout_visibility": "hidden"}
UNANSWERED = "YOUR ANSWER HERE"       # nbgrader's text in an answer cell nobody has written in
ANSWER_LIMIT = 4000                    # characters of each written answer shown in results.json
NOT_READ = "Not graded (the reason is at the top of this page)."
VENV = "/opt/autograder-venv"          # where setup.sh installs Python and the requirements

LOCK_FILE = "requirements-gradescope.txt"   # the repository's and the zip's: every package, pinned, with hashes
SCRIPTS = {"setup.sh": "gradescope_setup.sh", "run_autograder": "gradescope_run.sh"}   # zip name: template here
# What a student sees when the grader could not run (the shell fallback of run_autograder too):
# plain, short, no quote or backslash (it is written into a shell string). Staff read why in the log.
FAILED = ("Not graded: the autograder itself failed, which is a problem on the course's side, not in your work. "
          "Please tell the course staff.")


# ---------------------------------------------------------------- building the zip (TA side)

def python_version(pyproject):
    """The Python minor version the project pins (requires-python = ">=3.11,<3.12" -> "3.11")."""
    spec = tomllib.loads(Path(pyproject).read_text())["project"]["requires-python"]
    return re.search(r">=\s*(\d+\.\d+)", spec).group(1)


def compile_module(source, repo, stage, dfile=None, target=None):
    """One module -> a sourceless .pyc at the same place under stage (or at `target`), docstrings
    and asserts dropped, its file name inside relative to repo (no build path)."""
    relative = Path(source).relative_to(repo)
    out = stage / Path(target or relative).with_suffix(".pyc")
    out.parent.mkdir(parents=True, exist_ok=True)
    py_compile.compile(str(source), str(out), dfile=str(dfile or relative), doraise=True, optimize=2,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def imported_modules(name, package):
    """`name` and the modules of `package` it imports, transitively (read from their source)."""
    import ast
    import importlib.util
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.add(current)
        spec = importlib.util.find_spec(current)
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), spec.parent) \
                    if node.level else node.module
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            todo += [n for n in names if n.startswith(package + ".") and is_module(n)]
    return found


def is_module(name):
    """True when a dotted name is an importable module (not a name inside one)."""
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def compile_modules(names, repo, stage):
    """Modules (dotted names) and the __init__ of every package above them -> sourceless .pyc."""
    import importlib.util
    for name in sorted(names):
        compile_module(importlib.util.find_spec(name).origin, repo, stage)
        parts = name.split(".")
        for k in range(1, len(parts)):
            init = repo.joinpath(*parts[:k], "__init__.py")
            if init.is_file() and not (stage / init.relative_to(repo).with_suffix(".pyc")).exists():
                compile_module(init, repo, stage)


def catalogue_bytes(config):
    """The misconception catalogue as marshalled bytecode: the reference's code and each entry's
    code with its title, hint, section and the exercises it affects."""
    import inspect
    reference = inspect.getsource(config.reference)
    entries = [{"name": m.name, "title": m.title, "hint": m.hint, "section": m.section, "affects": tuple(m.affects),
                "code": compile(m.file_source, f"<misconception {m.name}>", "exec", optimize=2)}
               for m in getattr(config.module, "CATALOGUE", [])]
    return marshal.dumps({"reference": compile(reference, "<reference>", "exec", optimize=2), "entries": entries})


def build(config, out_dir, repo):
    """Write OUT/<assignment>-gradescope.zip; returns its path."""
    import inspect
    repo, out_dir = Path(repo), Path(out_dir).resolve()
    release = config.release_dir
    if not (release / config.notebook).is_file():
        raise FileNotFoundError(f"{release / config.notebook} is missing: run `make release` first")
    read_settings(repo / "grading.yml", config.name)   # a wrong gradescope: key fails here, not on Gradescope
    py = python_version(repo / "pyproject.toml")
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{config.name}-gradescope.zip"
    package, reference = config.module.__name__, config.reference.__name__
    exercises = inspect.getmodule(config.module.EXERCISES[0].probe).__name__
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        stage = Path(tmp)
        shutil.copytree(Path(__file__).resolve().parents[1], stage / "autograder", ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc"))
        compile_modules(imported_modules(exercises, package) | imported_modules(reference, reference.split(".")[0]),
                        repo, stage)
        # the assignment package as the grader needs it: its exercises (no samples, no catalogue source)
        init = repo.joinpath(*package.split("."), "__init__.py")
        generated = stage / "init.py"
        generated.write_text(f"from {exercises} import EXERCISES  # noqa: F401\n")
        compile_module(generated, stage, stage, dfile=init.relative_to(repo), target=init.relative_to(repo))
        generated.unlink()
        shutil.copytree(release, stage / release.relative_to(repo), ignore=shutil.ignore_patterns(
            config.notebook, "__pycache__", "*.pyc", ".ipynb_checkpoints"))
        # the source folder's support code (the release's, before nbgrader), which the assignment
        # module may read (feedback shared with the public checks); never its notebooks
        sources = repo / "source" / config.name
        if sources.is_dir():
            shutil.copytree(sources, stage / "source" / config.name, ignore=shutil.ignore_patterns(
                "*.ipynb", "__pycache__", "*.pyc", ".ipynb_checkpoints"))
        shutil.copy(repo / "grading.yml", stage / "grading.yml")
        (stage / CATALOGUE_FILE).write_bytes(catalogue_bytes(config))
        shutil.copy(repo / LOCK_FILE, stage / LOCK_FILE)
        secret = " ".join(f'"$ROOT/source/{name.split(".")[0]}"' for name in sorted({package, reference}))
        fill = {"PY": py, "VENV": VENV, "LOCK": LOCK_FILE, "ASSIGNMENT": config.name, "CATALOGUE": CATALOGUE_FILE,
                "SECRET": secret, "FAILED": FAILED}
        for name, template in SCRIPTS.items():
            (stage / name).write_text(filled(Path(__file__).with_name(template).read_text(), fill))
        write_zip(stage, zip_path)
    return zip_path


def filled(template, values):
    """A script template with each @NAME@ replaced by values[NAME] (KeyError for an unknown one)."""
    return re.sub(r"@([A-Z]+)@", lambda m: values[m.group(1)], template)


def write_zip(stage, zip_path):
    """The staged tree -> a zip with fixed timestamps (same inputs, same bytes); scripts executable."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            name = path.relative_to(stage).as_posix()
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name in ("setup.sh", "run_autograder") else 0o644) << 16
            zf.writestr(info, path.read_bytes())


# ---------------------------------------------------------------- grading (Gradescope side)

def read_settings(grading_yml, assignment):
    """grading.yml's `gradescope:` keys of the assignment, with defaults; ConfigError when wrong."""
    from autograder.config import ConfigError
    section = yaml.safe_load(Path(grading_yml).read_text())["assignments"][assignment].get("gradescope") or {}
    unknown = set(section) - set(DEFAULT_VISIBILITY)
    if unknown:
        raise ConfigError(f"grading.yml: unknown gradescope key(s) {sorted(unknown)}")
    settings = {**DEFAULT_VISIBILITY, **section}
    for key, value in settings.items():
        if value not in VISIBILITIES:
            raise ConfigError(f"grading.yml: gradescope {key} must be one of {', '.join(VISIBILITIES)}")
    return settings


class NotGradable(Exception):
    """Gradescope's side of a submission is not as its specification says (course staff's matter)."""


def student_id(metadata_path):
    """The submitter(s) from Gradescope's submission_metadata.json: user ids, sorted, joined
    with '+' for a group. The student cannot write this file; NotGradable when it is missing or
    names nobody (hidden inputs are seeded per student: no stand-in id is made up)."""
    try:
        users = json.loads(Path(metadata_path).read_text())["users"]
        ids = sorted(str(u["id"]) for u in users)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotGradable(f"{metadata_path} is missing or not Gradescope's submission metadata "
                          f"({type(exc).__name__}: {exc}); Gradescope writes it for every submission, so "
                          "run the zip only through Gradescope or `python -m autograder gradescope --try`") from exc
    if not ids:
        raise NotGradable(f"{metadata_path} names no submitter")
    return "+".join(ids)


def find_notebook(submission, name):
    """The uploaded notebook: `name`, else the only .ipynb anywhere in the upload -> (path or
    None, note or None); the note names the notebooks left ungraded. Links are not followed (the
    file is read by root)."""
    found = sorted(p for p in Path(submission).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and p.is_file() and not p.is_symlink())
    exact = [p for p in found if p.name == name]
    if exact:
        others = [p.name for p in found if p != exact[0]]
        return exact[0], (f"graded {name}; also uploaded and not graded: {', '.join(others)}" if others else None)
    if len(found) == 1:
        return found[0], f"graded {found[0].name}, the only notebook uploaded (expected {name})"
    if found:
        return None, f"{len(found)} notebooks were uploaded and none is named {name}: upload {name} only"
    return None, f"no notebook was uploaded (expected {name})"


def written_answers(notebook, manual):
    """grade_id -> the text of the student's answer cell, for the written questions (grading.yml
    `manual:`) that the notebook answers; unreadable notebooks answer none."""
    try:
        cells = json.loads(Path(notebook).read_text())["cells"]
        found = {}
        for cell in cells:
            grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
            if grade_id in manual:
                source = cell.get("source", "")
                found[grade_id] = ("".join(source) if isinstance(source, list) else str(source)).strip()
        return found
    except Exception:
        return {}


def exercise_output(exercise):
    """The local feedback's words for one exercise: status, message, and a named mistake's hint."""
    from autograder.outputs.report import STATUS_WORDS
    words = STATUS_WORDS.get(exercise["status"], exercise["status"])
    text = words.capitalize() + "."
    message = (exercise["message"] or "").strip()
    if message and message.lower() != words:
        text += f" {message}"
    m = exercise.get("misconception")
    if m:
        text += f"\nThis looks like a known mistake: {m['title']}. {m['hint']} (See Section {m['section']}.)"
    return text


def answer_test(question, points, text, visibility):
    """One written answer as a test of its own, without points (a person grades it on Gradescope):
    plain text, so nothing the student wrote can look like a heading, a score or another test."""
    text = "(no answer)" if text in ("", UNANSWERED) else text
    if len(text) > ANSWER_LIMIT:
        text = text[:ANSWER_LIMIT] + f" [... {len(text) - ANSWER_LIMIT} more characters]"
    return {"name": f"Written answer {question} (graded by hand, {points} points)", "name_format": "text",
            "output": text, "output_format": "text", "visibility": visibility}


def to_gradescope(result, settings, notes, answers, manual):
    """The local result dict -> Gradescope's results.json: one test per exercise, then, when a
    notebook was graded, one per written answer. Every output is plain text (`output_format`
    "text": Gradescope renders neither HTML nor markdown in it) without control characters (no
    ANSI colours either). A notebook that could not be read says why once, at the top; its
    exercises say they were not graded."""
    from autograder.outputs.report import fmt
    from autograder.outputs.student_text import printable
    read = not result.get("reason")
    tests = [{"name": e["id"], "name_format": "text", "score": e["points"], "max_score": e["max_points"],
              "status": "passed" if e["points"] >= e["max_points"] else "failed",
              "output": printable(exercise_output(e) if read else NOT_READ, newlines=True), "output_format": "text",
              "visibility": settings["tests_visibility"]}
             for e in result["exercises"]]
    lines = [note for note in notes if note]
    if not read:
        lines.append(f"Your submission could not be graded: {result['reason']}")
    for error in result.get("cell_errors") or ():
        lines.append(f"Cell {error['cell']} raised {error['error']} while the notebook ran (the grader went on).")
    if manual and read:
        tests += [answer_test(question, fmt(points), printable(answers.get(question, ""), newlines=True),
                              settings["tests_visibility"]) for question, points in manual.items()]
        lines.append("Written answers (graded by hand: " + ", ".join(
            f"{q} {fmt(p)} points" for q, p in manual.items()) + "): each is shown in a test of its own.")
    return {"score": result["score"], "execution_time": round(result["seconds"], 1),
            "output": printable("\n".join(lines), newlines=True).strip(), "output_format": "text",
            "test_output_format": "text", "test_name_format": "text",
            "visibility": settings["visibility"], "stdout_visibility": settings["stdout_visibility"],
            "tests": tests, "extra_data": {"student_id": result["student_id"], "status": result["status"],
                                           "sandbox": result.get("sandbox"),
                                           "sandbox_refused": result.get("sandbox_refused", [])}}


def recorded_catalogue(path):
    """catalogue.marshal -> [(misconception, namespace)] as Grader.prepare builds them from
    source: the reference's code, then the entry's code, run in one fresh namespace."""
    data = marshal.loads(Path(path).read_bytes())
    catalogue = []
    for entry in data["entries"]:
        namespace = {"__name__": f"misconception_{entry['name']}", "__builtins__": __builtins__}
        exec(data["reference"], namespace)
        exec(entry["code"], namespace)
        fields = {k: v for k, v in entry.items() if k != "code"}
        catalogue.append((SimpleNamespace(**fields), namespace))
    return catalogue


def sandbox_mode(root):
    """bubblewrap where its namespaces work, else the unprivileged uid (Gradescope's containers run
    as root without user namespaces) once it is checked that uid cannot read source/ or the
    metadata; never unsandboxed (GraderError: results.json then says why)."""
    from autograder.process import sandbox
    return sandbox.choose_mode("auto", unsandboxed=False,
                               protected=[root / "source", root / "submission_metadata.json"])


def grade(root, assignment):
    """Grade /autograder/submission (root: the /autograder folder) -> Gradescope's results dict."""
    from autograder import config as configuration
    from autograder.grade import Grader
    source = root / "source"
    student = student_id(root / "submission_metadata.json")
    settings = read_settings(source / "grading.yml", assignment)
    config = configuration.load(assignment, source / "grading.yml")
    grader = Grader(config, sandbox_mode(root), recorded_catalogue(source / CATALOGUE_FILE))
    notebook, note = find_notebook(root / "submission", config.notebook)
    result = grader.grade(student, notebook)
    answers = written_answers(notebook, config.manual) if notebook else {}
    return to_gradescope(result, settings, [note] if note else [], answers, config.manual)


def failure_results(reason):
    """results.json when the grader itself could not grade: zero, FAILED for the student (never
    Gradescope's bare "Autograder failed"), and `reason` for the staff in extra_data (run() prints
    it to the log, which only staff see)."""
    from autograder.outputs.student_text import printable
    return {"score": 0.0, "output": FAILED, "output_format": "text", "tests": [], "stdout_visibility": "hidden",
            "extra_data": {"autograder_error": printable(reason)}}


def run(argv=None):
    """run_autograder's entry point: grade, write ROOT/results/results.json, print a summary."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m autograder.integrations.gradescope")
    parser.add_argument("--assignment", required=True)
    parser.add_argument("root", type=Path, help="Gradescope's /autograder folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        results = grade(args.root, args.assignment)
    except Exception as exc:   # the grader's own failure: still a results.json with the reason
        import traceback
        traceback.print_exc(file=sys.stdout)
        results = failure_results(f"{type(exc).__name__}: {exc}")
        print(f"AUTOGRADER ERROR (for the course staff): {results['extra_data']['autograder_error']}")
    path = args.root / "results" / "results.json"
    partial = path.with_name(".results.json.partial")     # whole or absent: run_autograder's fallback checks
    partial.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(partial, path)
    for test in results["tests"]:
        if "score" in test:
            print(f"{test['name']:<20} {test['score']:>7g} / {test['max_score']:g}")
    print(f"total {results['score']:g} in {time.monotonic() - started:.1f} s")
    return 0


def preview(zip_path, notebook, user="1"):
    """Grade `notebook` with the zip as Gradescope does: the zip unzipped into a temporary
    /autograder/source, run_autograder run there (with this Python) -> the results dict."""
    import subprocess
    root = Path(tempfile.mkdtemp(prefix="gradescope-root-"))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(root / "source")
        shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
        os.chmod(root / "run_autograder", 0o755)
        for folder in ("submission", "results"):
            (root / folder).mkdir()
        shutil.copy(notebook, root / "submission" / Path(notebook).name)
        (root / "submission_metadata.json").write_text(json.dumps({"users": [{"id": user}]}))
        env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
        subprocess.run([str(root / "run_autograder")], cwd=root, env=env, stdout=subprocess.DEVNULL)
        return json.loads((root / "results" / "results.json").read_text())
    finally:
        shutil.rmtree(root)


def main(config, out, repo, notebook=None):
    """`python -m autograder gradescope`: build the zip and say what to do with it; with a
    notebook, also grade it with the zip (preview) and print what Gradescope would show."""
    zip_path = build(config, out, repo)
    print(f"Gradescope autograder: {zip_path} ({os.path.getsize(zip_path) / 1024:.0f} KiB). Upload it as the "
          "programming assignment's autograder (Configure Autograder > Zip file upload; base image Ubuntu 22.04).",
          file=sys.stderr)
    if notebook:
        results = preview(zip_path, notebook)
        for test in results["tests"]:
            points = f": {test['score']:g} / {test['max_score']:g}" if "score" in test else ""
            print(f"{test['name']}{points}\n    " + test["output"].replace("\n", "\n    "))
        print(f"total: {results['score']:g}\n{results['output']}")
    return zip_path


if __name__ == "__main__":
    sys.exit(run())
