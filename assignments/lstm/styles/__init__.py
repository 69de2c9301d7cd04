"""Correct work in other styles: the grader must give each full marks and no diagnosis.

Each ``<name>.py`` here is written like a catalogue entry (``assignments/lstm/misconceptions``)
minus three of its constants: a ``TITLE``, then complete definitions of graded functions,
each pasteable into its answer cell, which replace the reference's in a solved notebook.
Every one of them is right; they differ from the reference in the ways students differ
(their own cache layout, loops over the step functions, np.split, np.errstate, prints and
warnings, copies modified in place). ``tests/test_misconceptions_grading.py`` grades them.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Style:
    name: str
    title: str
    sources: dict = field(compare=False)     # function name -> source of its def
    file_source: str = field(compare=False, repr=False)


def parse_style(path: Path) -> Style:
    text = Path(path).read_text(encoding="utf-8")
    title, sources = None, {}
    for node in ast.parse(text, filename=str(path)).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "TITLE"):
            title = ast.literal_eval(node.value)
        elif isinstance(node, ast.FunctionDef):
            sources[node.name] = ast.get_source_segment(text, node)
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"{path.name}: TITLE must be a non-empty string")
    if not sources:
        raise ValueError(f"{path.name}: defines no function")
    return Style(Path(path).stem, title, sources, text)


def load_styles(directory: Path | str | None = None) -> list[Style]:
    folder = Path(directory) if directory is not None else HERE
    return [parse_style(p) for p in sorted(folder.glob("*.py"), key=lambda p: p.stem)
            if not p.name.startswith("_")]
