"""Reading a submitted notebook: every way it can be unreadable becomes a reason, not a crash."""
import json

MAX_BYTES = 64 * 2**20      # a notebook larger than this is not read


class Unreadable(Exception):
    """The file is not a notebook the grader can run; the message says why, for the student."""


def read_cells(path, skip_tags):
    """Path of an .ipynb -> [(cell index, source)] of the code cells the grader runs.

    Skipped: markdown, cells tagged with one of `skip_tags` (slow demos), and nbgrader test
    cells (grade: true without solution: true), which hold the public checks, not student code.
    """
    try:
        if path.stat().st_size > MAX_BYTES:
            raise Unreadable(f"the notebook is larger than {MAX_BYTES // 2**20} MB")
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
    except RecursionError:
        raise Unreadable("the notebook's JSON is nested too deeply to be a notebook") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise Unreadable("the file is JSON but not a Jupyter notebook (no list of cells)")
    if nb.get("nbformat") != 4:
        raise Unreadable(f"notebook format {nb.get('nbformat')!r} is not supported (expected 4)")
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
        if {t for t in tags if isinstance(t, str)} & set(skip_tags):
            continue
        grading = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        if grading.get("grade") is True and grading.get("solution") is not True:
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise Unreadable(f"cell {index} has a source that is not text")
        cells.append((index, source))
    return cells
