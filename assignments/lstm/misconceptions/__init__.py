"""Catalogue of known LSTM misconceptions, one file per mistake.

Each ``<name>.py`` in this folder is written the way a student with that misconception
would write the notebook: four literal constants, then one or more complete definitions
of graded functions (same names and signatures as ``solutions/lstm.py``) that replace the
correct ones::

    TITLE = "Forget gate squashed with tanh"       # short, shown to the student
    AFFECTS = ("lstm_gates", ...)                  # exercise ids that lose points
    SECTION = "3.3, equation for f_t"              # where in the chapter to look
    HINT = "..."                                   # 1-3 sentences, no code

    import numpy as np

    def lstm_gates(x, prev_h, Wx, Wh, b):
        ...

Every definition is self-contained like the reference (numpy, plus other graded functions
called by name), so it can be pasted as-is into the answer cell of that exercise.

The "mutant module" of an entry is the reference source with the entry's file executed
after it in the same namespace: graded names resolve to the mutant where the file
overrides them and to the reference elsewhere (the reference ``lstm_step_forward`` then
calls a mutant ``lstm_gates``). The grader diagnoses with these modules.

``AFFECTS`` lists the exercises on which the real grader takes points from the "mutant
notebook": the release notebook with the reference in every answer cell, then the entry's
definitions pasted over theirs. The grader judges an exercise on the student's own upstream
functions and, where its forward pass behaves exactly like an entry already named, against
that entry's backward (no double penalty): a forward mistake costs the one exercise where it
is made; a backward mistake also costs lstm_backward when lstm_backward repeats it (the
catalogue's backward entries write both passes). ``tests/test_misconceptions_grading.py``
grades every entry that way and checks AFFECTS and the diagnosis; ``python -m autograder
mutants --assignment lstm`` prints the same table.

The files are parsed with ``ast`` and executed only through ``Misconception.namespace``;
they are never imported as modules.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONSTANTS = ("TITLE", "AFFECTS", "SECTION", "HINT")


@dataclass(frozen=True)
class Misconception:
    """One catalogue entry, read from ``<name>.py``."""

    name: str                 # file stem, unique
    title: str
    affects: tuple            # exercise ids that lose points
    section: str
    hint: str
    sources: dict = field(compare=False)   # function name -> source text of its def, as in the file
    file_source: str = field(compare=False, repr=False)   # the whole file

    def namespace(self, reference_source: str) -> dict:
        """Run the reference module source, then this entry's file, in one fresh namespace.

        Returns the namespace (a dict): graded names resolve to the mutant functions where
        this entry defines them, to the reference functions elsewhere.
        """
        ns: dict = {"__name__": f"misconception_{self.name}", "__builtins__": __builtins__}
        exec(compile(reference_source, "<reference>", "exec"), ns)
        exec(compile(self.file_source, f"<misconception {self.name}>", "exec"), ns)
        return ns


def parse_entry(path: Path) -> Misconception:
    """Read one catalogue file; raises ValueError when a constant is missing or malformed."""
    text = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    constants: dict = {}
    sources: dict = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in CONSTANTS):
            constants[node.targets[0].id] = ast.literal_eval(node.value)
        elif isinstance(node, ast.FunctionDef):
            sources[node.name] = ast.get_source_segment(text, node)
    missing = [c for c in CONSTANTS if c not in constants]
    if missing:
        raise ValueError(f"{path.name}: missing {', '.join(missing)}")
    affects = constants["AFFECTS"]
    if isinstance(affects, str) or not all(isinstance(a, str) for a in affects):
        raise ValueError(f"{path.name}: AFFECTS must be a tuple of exercise ids")
    for c in ("TITLE", "SECTION", "HINT"):
        if not isinstance(constants[c], str) or not constants[c].strip():
            raise ValueError(f"{path.name}: {c} must be a non-empty string")
    if not sources:
        raise ValueError(f"{path.name}: defines no function")
    return Misconception(
        name=path.stem, title=constants["TITLE"], affects=tuple(affects),
        section=constants["SECTION"], hint=constants["HINT"],
        sources=sources, file_source=text)


def load_catalogue(directory: Path | str | None = None) -> list[Misconception]:
    """All entries of the catalogue folder (this package by default), sorted by name."""
    folder = Path(directory) if directory is not None else HERE
    return [parse_entry(p) for p in sorted(folder.glob("*.py"), key=lambda p: p.stem)
            if not p.name.startswith("_")]
