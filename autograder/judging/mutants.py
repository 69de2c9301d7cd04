"""Mutation testing of the grader: every catalogued misconception graded as a real submission.

For each entry of the assignment's catalogue (``config.module.CATALOGUE``) a notebook is built
from the release notebook: the reference in every answer cell, then the entry's functions in
place of theirs. All of them, plus one control notebook holding only the reference, go through
the real grader (sandboxed processes, in parallel). Two rates come out:

- detection rate: entries that lose points on exactly the exercises their AFFECTS lists
  (full points everywhere else);
- diagnosis accuracy: (entry, affected exercise) pairs where the exercise lost points and its
  feedback names that entry.

The control must get full marks and no diagnosis, or the rates mean nothing. Nothing here is
specific to one assignment: an entry needs ``name``, ``affects`` and ``sources`` (function
name -> source of its definition), the reference module supplies the other answer cells.

    python -m autograder mutants --assignment lstm
"""
import inspect
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grade import Grader, find_submissions, grade_all
from autograder.samples import notebook_with, write_submission

CONTROL = "_reference"   # student id of the control submission (no entry can be named so)


def reference_sources(config):
    """Exercise id -> source of the reference function of that name (the solved answer cells)."""
    return {ex: inspect.getsource(getattr(config.reference, ex))
            for ex in config.points if inspect.isfunction(getattr(config.reference, ex, None))}


def entry_notebook(config, sources):
    """The release notebook with the reference in every answer cell, then `sources` over it."""
    return notebook_with(Path(config.release_dir) / config.notebook, {**reference_sources(config), **sources})


@dataclass
class EntryOutcome:
    """How the grader treated one submission built from a catalogue entry."""
    name: str
    affects: tuple                     # what the catalogue says loses points
    lost: tuple                        # exercises that lost points, in grading order
    named: dict                        # exercise id -> misconception name given (None: none)
    points: dict                       # exercise id -> points earned
    status: str = "graded"
    seconds: float = 0.0

    @property
    def detected(self):
        return set(self.lost) == set(self.affects)

    @property
    def diagnosed(self):
        """Affected exercises that lost points and name this entry."""
        return [ex for ex in self.affects if ex in self.lost and self.named.get(ex) == self.name]


@dataclass
class Report:
    entries: list                      # [EntryOutcome]
    control: EntryOutcome              # the reference-only notebook
    seconds: float
    jobs: int
    extra: dict = field(default_factory=dict)

    @property
    def detection_rate(self):
        return sum(e.detected for e in self.entries) / max(len(self.entries), 1)

    @property
    def diagnosis_pairs(self):
        return sum(len(e.affects) for e in self.entries)

    @property
    def diagnosis_accuracy(self):
        return sum(len(e.diagnosed) for e in self.entries) / max(self.diagnosis_pairs, 1)

    @property
    def control_ok(self):
        return not self.control.lost and not any(self.control.named.values())


def outcome(result, name, affects):
    exercises = result["exercises"]
    lost = tuple(e["id"] for e in exercises if e["points"] < e["max_points"])
    named = {e["id"]: (e["misconception"] or {}).get("name") for e in exercises}
    return EntryOutcome(name, tuple(affects), lost, named, {e["id"]: e["points"] for e in exercises},
                        result["status"], result["seconds"])


def run(config, jobs=None, sandbox_mode="auto", grader=None, catalogue=None):
    """Grade every catalogue entry (and the control) as a notebook; returns a Report."""
    catalogue = list(getattr(config.module, "CATALOGUE", []) if catalogue is None else catalogue)
    grader = grader or Grader.prepare(config, sandbox_mode)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutants-") as root:
        write_submission(root, CONTROL, config.name, config.notebook, entry_notebook(config, {}))
        for entry in catalogue:
            write_submission(root, entry.name, config.name, config.notebook, entry_notebook(config, entry.sources))
        results = grade_all(grader, find_submissions(root, config.name, config.notebook), jobs)
    by_id = {r["student_id"]: r for r in results}
    return Report([outcome(by_id[e.name], e.name, e.affects) for e in catalogue],
                  outcome(by_id[CONTROL], CONTROL, ()), round(time.monotonic() - started, 2),
                  jobs or 0)


def format_report(report, config):
    """The printed table: one line per entry, then the rates."""
    order = list(config.points)
    width = max([len(e.name) for e in report.entries] + [5])
    lines = [f"Misconception catalogue of '{config.name}': {len(report.entries)} entries graded as notebooks",
             f"{'':4}{'entry':{width}}  loses points on (* = not in AFFECTS, ! = not named)"]
    for e in report.entries:
        marks = []
        for ex in sorted(set(e.lost) | set(e.affects), key=order.index):
            tag = ex
            if ex not in e.affects:
                tag += "*"
            elif ex not in e.lost:
                tag = f"({ex} kept its points)"
            elif e.named.get(ex) != e.name:
                tag += f"! named {e.named.get(ex) or 'nothing'}"
            marks.append(tag)
        ok = "ok " if e.detected and len(e.diagnosed) == len(e.affects) else "BAD"
        lines.append(f"{ok:4}{e.name:{width}}  {', '.join(marks) or '(nothing)'}")
    control = "full marks, nothing diagnosed" if report.control_ok else (
        f"LOST {', '.join(report.control.lost) or '-'}; named "
        f"{ {k: v for k, v in report.control.named.items() if v} }")
    lines += [f"control (reference in every cell): {control}",
              f"detection rate:     {sum(e.detected for e in report.entries)}/{len(report.entries)}"
              f" = {100 * report.detection_rate:.1f}% (points lost on exactly AFFECTS)",
              f"diagnosis accuracy: {sum(len(e.diagnosed) for e in report.entries)}/{report.diagnosis_pairs}"
              f" = {100 * report.diagnosis_accuracy:.1f}% (affected exercises naming the entry)",
              f"graded {len(report.entries) + 1} notebooks in {report.seconds:.1f} s"]
    return "\n".join(lines)


def main(config, jobs=None, sandbox_mode="auto"):
    """`python -m autograder mutants`: grade the catalogue, print the table; exit status 0."""
    report = run(config, jobs, sandbox_mode)
    print(format_report(report, config))
    sys.stdout.flush()
    return 0
