"""What is in a folder of submissions (nbgrader's layout ROOT/<student>/<assignment>/<notebook>):
which notebook each student folder holds, and whether the folder looks like that layout at all."""
from pathlib import Path


class LayoutError(Exception):
    """The folder does not look like submissions in nbgrader's layout; the message says what it
    looks like instead and what to run."""


def student_folders(root):
    """Every folder directly under root, sorted: each is a student and gets a row, whatever its
    name (a name starting with "." included)."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir())


def notebooks_in(folder):
    """The .ipynb files directly in folder, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".ipynb")


def pick_notebook(folder, notebook):
    """folder/<notebook> when it is there; else the one other notebook there (a renamed
    `lstm (1).ipynb`), else None."""
    path = folder / notebook
    if path.is_file():
        return path
    others = notebooks_in(folder)
    return others[0] if len(others) == 1 else None


def find_submissions(root, assignment, notebook):
    """nbgrader layout ROOT/<student>/<assignment>/<notebook> -> sorted [(student, path or None)].

    Every student folder gets an entry; a renamed notebook is taken when it is the only one
    (CONTRACT section 2, see note()); no notebook is None (graded as missing)."""
    return [(s.name, pick_notebook(s / assignment, notebook)) for s in student_folders(root)]


def note(root, student, assignment, notebook, path):
    """What the TA and the student should know about how this folder was read, or None:
    a renamed notebook graded in its place, or what is there when nothing could be graded."""
    if path is not None:
        if path.name != notebook:
            return f"graded {path.name}: the submission has no {notebook} and this is its only notebook"
        return None
    folder = Path(root) / student / assignment
    others = notebooks_in(folder)
    if others:
        names = ", ".join(p.name for p in others)
        return f"no {notebook}, and {len(others)} other notebooks ({names}): rename the one to grade {notebook}"
    stray = sorted(p for p in (Path(root) / student).rglob("*.ipynb")
                   if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    if stray:
        return f"{stray[0].relative_to(root)} is not in {student}/{assignment}/"
    return None


def diagnose(root, assignment, notebook, submissions, allow_missing=False):
    """Raise LayoutError when root does not look like nbgrader's layout for this assignment:
    notebooks directly in root (a flat LMS download), no student folder at all, or (unless
    allow_missing) most students without a notebook where one was looked for."""
    root = Path(root)
    flat = notebooks_in(root)
    hint = f"run `python -m autograder collect {root} --assignment {assignment} --into ROOT` first"
    if flat:
        raise LayoutError(f"{root} holds notebooks directly ({flat[0].name}, ...): it looks like an LMS "
                          f"download, not ROOT/<student>/{assignment}/{notebook}; {hint}")
    if not submissions:
        raise LayoutError(f"{root} has no student folders (expected ROOT/<student>/{assignment}/{notebook})")
    missing = [s for s, path in submissions if path is None]
    if len(missing) * 2 > len(submissions) and not allow_missing:
        seen = [n for n in (note(root, s, assignment, notebook, None) for s in missing) if n][:3]
        raise LayoutError(f"{len(missing)} of {len(submissions)} student folders under {root} have no notebook in "
                          f"<student>/{assignment}/" + (f" ({'; '.join(seen)})" if seen else "") +
                          f". Expected ROOT/<student>/{assignment}/{notebook}: {hint}, or pass --allow-missing "
                          "when most students really did not submit")
