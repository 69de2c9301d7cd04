"""A Gradescope autograder (otter-grader 7 zip) that grades like the local grader.

    python -m autograder gradescope --assignment lstm --out DIR     ->  DIR/<assignment>-gradescope.zip

The zip is built with otter's own generator (otter.generate) and holds:
- the generic engine (this package's comparison, grading loop, sandbox, worker and wire
  modules, and this file, whose runtime half grades on Gradescope) and the release's support
  files;
- `data/spec.json`: points, weights, tolerances, limits, argument names, the catalogue's titles and hints;
- `data/replay.bin`: the hidden cases of a FIXED seed (the student id "gradescope": Gradescope
  gives no student id the grader can trust, so every submission gets the same hidden inputs),
  and the recorded answers of the reference and of every catalogued misconception to every call
  the probes and judges make with inputs known in advance. On Gradescope these implementations
  are replays (`Replay`): a call never recorded (its arguments came from the student's own
  outputs) raises `Unavailable`, which judges read as "no second opinion";
- `data/probes.bin`: the assignment's probes and judges as Python 3.11 bytecode (no source;
  hence the pinned Python 3.11), with the engine's own imports;
- `tests/<exercise>.py`: one otter test file per exercise, one test case per graded output and
  per "inputs left unchanged" share, so otter's sum of passed cases is exactly our points.
  Each case's only line calls `verdict(...)`, whose message is the local feedback's message:
  what otter shows students (the failing line and the message) holds no hidden test source.

Never in the zip: the reference solution's source, the assignment's source files, the samples.
On Gradescope, otter first runs the notebook in a Jupyter kernel (untagged cells: tag demo cells
`otter_ignore` too), then the test files run in that kernel; the first of them grades the
submitted notebook with the engine (a separate, resource-limited worker process, as locally).
"""
import dataclasses
import hashlib
import json
import marshal
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from autograder import wire
from autograder.impl import CallRecord, Handle, Impl, Unavailable, to_arrays

FIXED_STUDENT = "gradescope"     # the seed of the hidden inputs on Gradescope (see module docstring)
ENGINE_MODULES = ("__init__.py", "compare.py", "exercise.py", "grade.py", "guard.py", "impl.py", "sandbox.py",
                  "worker.py", "wire.py", "notebook.py", "report.py", "gradescope.py")
GRADER_DIR = "_grader"           # under the submission folder on Gradescope: engine and data
SUPPORT_DIR = "support"          # inside GRADER_DIR: the release's support files (worker scratch)
PIN_PACKAGES = ("numpy", "matplotlib", "nbformat", "nbclient", "ipykernel")


# ---------------------------------------------------------------- record and replay

def _normal(value):
    """Arguments -> plain data for the call key (handles by their token)."""
    if isinstance(value, Handle):
        return {"handle": str(value.key)}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value


def call_key(fn, args):
    """A digest of a call: the function's name and its arguments, bit for bit."""
    return hashlib.sha256(wire.encode([fn, _normal(list(args))])).hexdigest()


class Recorder(Impl):
    """Wraps a local implementation; remembers each call's answer, changed arguments and
    warnings under the call's key. Handles become tokens named after the call that made them."""

    def __init__(self, inner):
        super().__init__(inner.parameter_names)
        self.inner, self.table, self.handles = inner, {}, {}

    def call(self, fn, *args, opaque=()):
        key = call_key(fn, args)
        real = [self.handles[a.key] if isinstance(a, Handle) else a for a in args]
        self.inner.log.clear()
        result = self.inner.call(fn, *real, opaque=opaque)
        record = self.inner.log[-1]
        self.log.append(record)
        if opaque:
            result = list(result)
            for k in opaque:
                token = f"{key}:{k}"
                self.handles[token] = result[k]
                result[k] = Handle(id(self), token)
            result = tuple(result)
        self.table[key] = {"result": _normal(result), "modified": list(record.modified),
                           "warnings": list(record.warnings)}
        return result


class Replay(Impl):
    """Answers only the calls a Recorder saw (same function, same arguments bit for bit)."""

    def __init__(self, table, parameter_names):
        super().__init__(parameter_names)
        self.table = table

    def call(self, fn, *args, opaque=()):
        entry = self.table.get(call_key(fn, args))
        if entry is None:
            raise Unavailable(f"{fn}: no recorded answer for these arguments")
        self.log.append(CallRecord(fn, list(entry["modified"]), list(entry["warnings"])))
        return to_arrays(self._restore(entry["result"]))

    def _restore(self, value):
        if isinstance(value, dict) and set(value) == {"handle"}:
            return Handle(id(self), value["handle"])
        if isinstance(value, list):
            return [self._restore(v) for v in value]
        if isinstance(value, dict):
            return {k: self._restore(v) for k, v in value.items()}
        return value


# ---------------------------------------------------------------- building the zip (TA side)

def record(config, rng_for):
    """The hidden cases and the recorded answers of the reference and every misconception."""
    from autograder.exercise import Context, grade_exercise  # noqa: F401  (same engine)
    from autograder.impl import LocalImpl
    import inspect
    names = config.parameter_names()
    reference = Recorder(LocalImpl(vars(config.reference), names))
    source = inspect.getsource(config.reference)
    mutants = [(m, Recorder(LocalImpl(m.namespace(source), names)))
               for m in getattr(config.module, "CATALOGUE", [])]
    cases = {}
    for exercise in config.exercises:
        drawn = exercise.cases(rng_for(exercise.id))
        cases[exercise.id] = drawn
        for case in drawn:
            expected = exercise.probe(reference, case)
            for m, impl in mutants:   # for diagnosis, and for judges' opinions of a misconception
                if exercise.id in m.affects or exercise.judge is not None:
                    try:
                        exercise.probe(impl, case)
                    except Exception:   # a misconception that crashes here: no answer recorded
                        pass
            if exercise.judge is not None:
                # Judges ask the reference for second opinions. Record those asked of a student
                # whose outputs are all wrong (every opinion with inputs known in advance), and
                # of a student who is each catalogued misconception (opinions on inputs that come
                # from that mistake's own outputs, e.g. a forward pass chained on its own steps).
                students = [(LocalImpl(vars(config.reference), names), lambda: {
                    k: _wrong(v) for k, v in expected.items()})]
                students += [(LocalImpl(impl.inner.namespace, names), None) for _, impl in mutants]
                for impl, outputs in students:
                    ctx = Context(impl, reference, config.tolerance)
                    try:
                        out = outputs() if outputs else exercise.probe(impl, case)
                        exercise.judge(ctx, exercise, case, out, expected)
                    except Exception:
                        pass
    return cases, reference.table, {m.name: impl.table for m, impl in mutants}


def _wrong(value):
    if isinstance(value, dict):
        return {k: _wrong(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_wrong(v) for v in value)
    return np.asarray(value) + 1.0 if np.asarray(value).dtype.kind == "f" else value


def probes_bytecode(config):
    """The module defining the assignment's exercises, compiled (docstrings dropped), marshalled."""
    import inspect
    module = inspect.getmodule(config.module.EXERCISES[0].probe)
    code = compile(inspect.getsource(module), "<probes>", "exec", optimize=2)
    return marshal.dumps(code)


def pinned_requirements(pyproject):
    """The pyproject's pins of the packages a graded notebook needs."""
    import tomllib
    deps = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    pins = {d.split("==")[0].strip().lower(): d.strip() for d in deps if "==" in d}
    return [pins[p] for p in PIN_PACKAGES if p in pins]


def python_version(pyproject):
    """The Python minor version the project pins (requires-python = ">=3.11,<3.12" -> "3.11")."""
    import re
    import tomllib
    spec = tomllib.loads(Path(pyproject).read_text())["project"]["requires-python"]
    return re.search(r">=\s*(\d+\.\d+)", spec).group(1)


TEST_FILE = '''"""{id}: {points:g} point(s), graded on hidden inputs by the course's autograder."""
import os
import sys

from otter.test_files import test_case

sys.path.insert(0, os.path.abspath("{grader_dir}"))
from autograder.gradescope import verdict  # noqa: E402

OK_FORMAT = False
name = "{id}"
points = {points!r}
'''

TEST_CASE = '''

@test_case(name={name!r}, points={points!r}, hidden=False)
def {fn}():
    verdict({id!r}, {part!r}, {untouched!r})
'''


def test_file(exercise_id, weights, points, penalty):
    """One otter test file: per output, a share (1 - penalty) for being right and a share
    `penalty` for being right with the inputs left unchanged (the local grader's formula)."""
    total = sum(weights.values())
    text = TEST_FILE.format(id=exercise_id, points=points, grader_dir=GRADER_DIR)
    for k, (part, weight) in enumerate(weights.items()):
        share = points * weight / total
        text += TEST_CASE.format(name=f"{exercise_id}: {part}", points=share * (1 - penalty), fn=f"case_{k}",
                                 id=exercise_id, part=part, untouched=False)
        if penalty:
            text += TEST_CASE.format(name=f"{exercise_id}: {part}, inputs left unchanged", points=share * penalty,
                                     fn=f"case_{k}_untouched", id=exercise_id, part=part, untouched=True)
    return text


def build(config, out_dir, repo):
    """Write OUT/<assignment>-gradescope.zip; returns its path."""
    import otter.generate
    from otter.utils import chdir
    from autograder.grade import Grader
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    release = config.release_dir
    if not (release / config.notebook).is_file():
        raise FileNotFoundError(f"{release / config.notebook} is missing: run `make release` first")
    grader = Grader(config, sandbox="none", misconceptions=[])
    cases, reference, mutants = record(config, lambda e: grader.rng(FIXED_STUDENT, e))
    spec = {
        "assignment": config.name, "notebook": config.notebook, "student": FIXED_STUDENT,
        "points": config.points, "tolerance": config.tolerance, "penalty": config.input_modified_penalty,
        "skip_cell_tags": list(config.skip_cell_tags),
        "limits": dataclasses.asdict(config.limits),
        "parameter_names": {k: list(v) for k, v in config.parameter_names().items()},
        "exercises": [{"id": e.id, "weights": e.weights} for e in config.exercises],
        "misconceptions": [{"name": m.name, "title": m.title, "hint": m.hint, "section": m.section,
                            "affects": list(m.affects)} for m in getattr(config.module, "CATALOGUE", [])],
    }
    zip_path = out_dir / f"{config.name}-gradescope.zip"
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        stage = Path(tmp)
        grader_dir = stage / GRADER_DIR
        (grader_dir / "autograder").mkdir(parents=True)
        for name in ENGINE_MODULES:
            shutil.copy(Path(__file__).parent / name, grader_dir / "autograder" / name)
        data = grader_dir / "data"
        data.mkdir()
        (data / "spec.json").write_text(json.dumps(spec, indent=1))
        (data / "replay.bin").write_bytes(wire.encode({"cases": cases, "reference": reference,
                                                       "misconceptions": mutants}))
        (data / "probes.bin").write_bytes(probes_bytecode(config))
        # the release's support files: next to the notebook for otter's kernel, and for our worker
        ignore = shutil.ignore_patterns(config.notebook, "__pycache__", "*.pyc", ".ipynb_checkpoints")
        shutil.copytree(release, grader_dir / SUPPORT_DIR, ignore=ignore)
        support = [e for e in sorted(release.iterdir())
                   if e.name not in (config.notebook, "__pycache__", ".ipynb_checkpoints", GRADER_DIR, "tests")]
        for entry in support:
            (shutil.copytree(entry, stage / entry.name, ignore=ignore) if entry.is_dir()
             else shutil.copy(entry, stage / entry.name))
        tests = stage / "tests"
        tests.mkdir()
        for exercise in config.exercises:
            (tests / f"{exercise.id}.py").write_text(
                test_file(exercise.id, exercise.weights, config.points[exercise.id], config.input_modified_penalty))
        (stage / "requirements.txt").write_text("\n".join(pinned_requirements(repo / "pyproject.toml")) + "\n")
        (stage / "otter_config.json").write_text(json.dumps({
            "lang": "python", "show_stdout": False, "show_hidden": True, "show_all_public": True,
            "print_summary": True, "assignment_name": None}, indent=1))
        with chdir(stage):
            otter.generate.main(tests_dir="tests", output_path=str(zip_path), config="otter_config.json",
                                requirements="requirements.txt", no_environment=True,
                                files=[GRADER_DIR] + [e.name for e in support],
                                python_version=python_version(repo / "pyproject.toml"))
    return zip_path


# ---------------------------------------------------------------- grading (Gradescope side)

_RESULT = None


def verdict(exercise_id, part, untouched=False):
    """An otter test case: passes when the part was right (and, with untouched, the exercise
    left its inputs unchanged); fails with the local feedback's message otherwise."""
    global _RESULT
    if _RESULT is None:
        _RESULT = grade_submission(Path(__file__).resolve().parent.parent, Path.cwd())
    result = _RESULT
    if result["status"] != "graded":
        raise AssertionError(result["reason"])
    exercise = next(e for e in result["exercises"] if e["id"] == exercise_id)
    parts = {p["name"]: p for p in exercise["parts"]}
    if part not in parts:   # nothing was judged: it raised, timed out, crashed, is missing...
        raise AssertionError(exercise["message"] or exercise["status"].replace("_", " "))
    if not parts[part]["passed"]:
        raise AssertionError(_explain(parts[part]["message"], exercise))
    if untouched and exercise["modified_inputs"]:
        raise AssertionError(_explain(f"modified its input(s) {', '.join(exercise['modified_inputs'])}: "
                                      "a graded function must leave its arguments unchanged", exercise))


def _explain(message, exercise):
    m = exercise.get("misconception")
    return message + (f". This looks like a known mistake: {m['title']}. {m['hint']} "
                      f"(Section {m['section']})" if m else "")


def find_notebook(folder, name):
    """The submitted notebook: the release's name, else the one .ipynb otter accepted."""
    folder = Path(folder)
    if (folder / name).is_file():
        return folder / name
    found = sorted(folder.glob("*.ipynb"))
    return found[0] if len(found) == 1 else None


def grade_submission(grader_dir, submission_dir):
    """Grade the notebook in submission_dir with the engine and the recorded data -> a result
    dict shaped like the local grader's results/<student>.json."""
    from types import SimpleNamespace
    from autograder import sandbox
    from dataclasses import replace
    from autograder.grade import Setting, grade_notebook

    grader_dir = Path(grader_dir)
    spec = json.loads((grader_dir / "data" / "spec.json").read_text())
    raw = (grader_dir / "data" / "replay.bin").read_bytes()
    data = wire.decode(raw[8:])
    probes = {}
    exec(marshal.loads((grader_dir / "data" / "probes.bin").read_bytes()), probes)
    defined = {e.id: e for e in probes["EXERCISES"]}
    names = {k: tuple(v) for k, v in spec["parameter_names"].items()}
    support = grader_dir / SUPPORT_DIR
    setting = Setting(spec["assignment"], spec["notebook"], spec["points"], tuple(spec["skip_cell_tags"]),
                      SimpleNamespace(**spec["limits"]), spec["tolerance"], spec["penalty"], names,
                      support if support.is_dir() else None,
                      sandbox.choose_mode("auto", unsandboxed=True, protected=[grader_dir]))
    graded = [(replace(defined[entry["id"]], weights=entry["weights"]), data["cases"][entry["id"]])
              for entry in spec["exercises"]]
    catalogue = [(SimpleNamespace(**{**m, "affects": tuple(m["affects"])}),
                  Replay(data["misconceptions"].get(m["name"], {}), names)) for m in spec["misconceptions"]]
    return grade_notebook(spec["student"], find_notebook(submission_dir, spec["notebook"]), setting, graded,
                          Replay(data["reference"], names), catalogue)


def main(config, out, repo):
    zip_path = build(config, out, repo)
    print(f"Gradescope autograder: {zip_path} ({os.path.getsize(zip_path) / 1024:.0f} KiB). Upload it as the "
          "programming assignment's autograder (Configure Autograder > Zip file upload).", file=sys.stderr)
    return zip_path
