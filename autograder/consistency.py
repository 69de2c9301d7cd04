"""Does grading.yml agree with the release notebook students got? Points in grading.yml decide
grades.csv; points in the release notebook's nbgrader metadata decide the gradebook and what
students were told. A mismatch is a grading error waiting to happen, so `grade` refuses."""
import json


def release_points(release_notebook):
    """grade_id -> points of every nbgrader grade cell of the release notebook."""
    nb = json.loads(release_notebook.read_text(encoding="utf-8"))
    points = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            points[meta["grade_id"]] = float(meta.get("points", 0))
    return points


def mismatches(config):
    """Sentences naming each disagreement between grading.yml and the release notebook (exercise
    `x` against its check cell `check_x`, written questions against their cells)."""
    release = config.release_dir / config.notebook
    if not release.is_file():
        return [f"{release} is missing: run `make release` first"]
    cells = release_points(release)
    wanted = {f"check_{e}": p for e, p in config.points.items()}
    wanted.update(config.manual)
    problems = []
    for cell, points in wanted.items():
        if cell not in cells:
            problems.append(f"{cell}: {points:g} point(s) in grading.yml, no such grade cell in the release notebook")
        elif cells[cell] != points:
            problems.append(f"{cell}: {points:g} point(s) in grading.yml, {cells[cell]:g} in the release notebook")
    for cell in sorted(set(cells) - set(wanted)):
        problems.append(f"{cell}: {cells[cell]:g} point(s) in the release notebook, not in grading.yml")
    return problems
