"""Reading a submitted notebook: every way it can be unreadable becomes a reason, not a crash."""
import json


class Unreadable(Exception):
    """The file is not a notebook the grader can run; the message says why, for the student."""


def read_cells(path, skip_tags):
    """Path of an .ipynb -> [(cell index, source)] of the code cells the grader runs.

    Skipped: markdown, cells tagged with one of `skip_tags` (slow demos), and nbgrader test
    cells (grade: true without solution: true), which hold the public checks, not student code.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read the notebook: {exc.strerror}") from None
    if not raw.strip():
        raise Unreadable("the notebook file is empty")
    try:
        nb = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Unreadable("the notebook is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(f"the notebook is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}); was it truncated or edited outside Jupyter?") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise Unreadable("the file is JSON but not a Jupyter notebook (no list of cells)")
    if nb.get("nbformat") != 4:
        raise Unreadable(f"notebook format {nb.get('nbformat')!r} is not supported (expected 4)")
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata") or {}
        if set(meta.get("tags") or ()) & set(skip_tags):
            continue
        grading = meta.get("nbgrader") or {}
        if grading.get("grade") and not grading.get("solution"):
            continue
        source = cell.get("source", "")
        cells.append((index, "".join(source) if isinstance(source, list) else str(source)))
    return cells
