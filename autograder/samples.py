"""Building submissions from the release notebook: the bundled samples, the misconception
notebooks, and tests. A sample is the release notebook with some answer cells replaced."""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def answer_cell_name(cell):
    """The graded function an answer cell defines (its first code line is `def <name>(`), or None."""
    if cell.get("cell_type") != "code":
        return None
    source = "".join(cell.get("source", ""))
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            match = re.match(r"def (\w+)\(", line)
            return match.group(1) if match else None
    return None


def notebook_with(release_notebook, replacements=None, extra_cells=()):
    """The release notebook (a path) as a dict, with answer cells replaced.

    replacements: function name -> full source of the new cell (must start with `def name(`);
    extra_cells: sources of code cells appended at the end."""
    nb = json.loads(Path(release_notebook).read_text())
    todo = dict(replacements or {})
    for cell in nb["cells"]:
        name = answer_cell_name(cell)
        if name in todo:
            cell["source"] = todo.pop(name)
            cell["outputs"], cell["execution_count"] = [], None
    if todo:
        raise KeyError(f"the release notebook has no answer cell for {sorted(todo)}")
    for source in extra_cells:
        nb["cells"].append({"cell_type": "code", "metadata": {}, "source": source,
                            "outputs": [], "execution_count": None})
    return nb


def write_submission(root, student_id, assignment, notebook_name, content):
    """Write one submission in nbgrader's layout; content: a notebook dict, bytes, or None
    (an empty folder). Returns the student's folder."""
    folder = Path(root) / student_id / assignment
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(content, dict):
        (folder / notebook_name).write_text(json.dumps(content, indent=1))
    elif content is not None:
        (folder / notebook_name).write_bytes(content)
    return folder.parent


@dataclass(frozen=True)
class Sample:
    """One bundled submission and the grade a careful TA would give it.

    build(config) -> notebook dict, bytes (a broken file) or None (an empty folder);
    expected: exercise id -> points; status: the result's expected status."""
    student_id: str
    description: str
    build: Callable
    expected: dict
    status: str = "graded"
    file_name: str = None
