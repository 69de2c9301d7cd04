"""What grading writes: grades.csv, results/<student>.json, feedback/<student>.html, and the
table printed at the end. Feedback shows scores, what failed and hints: never hidden inputs,
hidden test code or reference code (the results hold none of them to begin with). Every string
on a page or in the printed table is text: HTML-escaped, its control characters removed."""
import html
import json
from collections import Counter
from pathlib import Path

from autograder.outputs.student_text import printable

STATUS_WORDS = {
    "passed": "correct", "partial": "partly correct", "failed": "incorrect",
    "not_implemented": "not implemented yet", "error": "raised an error", "timeout": "too slow (timed out)",
    "crashed": "crashed the process", "missing": "missing",
}


def write_all(config, results, out, only=None, manuals=None):
    """Write grades.csv for `results` (sorted by student id) under `out`, and the result JSON and
    feedback page of each student in `only` (default: all of them); manuals: {student: what the
    gradebook holds for the page (scores.Final.for_feedback)}, for the students it has."""
    out = Path(out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    write_csv(config, results, out / "grades.csv")
    for result in results:
        if only is None or result["student_id"] in only:
            (out / "results" / f"{result['student_id']}.json").write_text(json.dumps(result, indent=1) + "\n")
            (out / "feedback" / f"{result['student_id']}.html").write_text(
                feedback_html(result, (manuals or {}).get(result["student_id"])))


def read_results(out):
    """The result dicts already under out/results, sorted by student id."""
    paths = sorted((Path(out) / "results").glob("*.json"))
    return sorted((json.loads(p.read_text()) for p in paths), key=lambda r: r["student_id"])


def late_penalty(result):
    return float((result.get("late") or {}).get("penalty") or 0.0)


def total(result):
    """The auto-graded score after the late penalty."""
    return round(result["score"] - late_penalty(result), 4)


def write_csv(config, results, path):
    """grades.csv: student_id, one column per exercise, late_penalty (as a negative number, so
    the columns still add up to total), total, max_score."""
    from autograder.outputs.tables import write_csv as write_table   # here: the Gradescope zip ships report.py alone
    rows = []
    for result in results:
        points = {e["id"]: e["points"] for e in result["exercises"]}
        rows.append([result["student_id"], *(fmt(points.get(e, 0.0)) for e in config.points),
                     fmt(-late_penalty(result)), fmt(total(result)), fmt(result["max_score"])])
    write_table(path, ["student_id", *config.points, "late_penalty", "total", "max_score"], rows)


def status_counts(results):
    """'graded 20, missing 1, unreadable 1': how many results have each status."""
    counts = Counter(r["status"] for r in results)
    return ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))


def fmt(number):
    """Points as text: 2, 1.5, 0.6667 (no float noise, same text every run)."""
    text = f"{round(float(number), 4):g}"
    return "0" if text == "-0" else text


def text(value):
    """A string for a page: control characters removed, then HTML-escaped."""
    return html.escape(printable(value, newlines=True))


def late_html(result, penalty=None):
    """The late paragraph: when, how late, and the penalty (`penalty`: the gradebook's, on auto +
    written points, when the page shows them; else the auto-graded score's). Times to the minute."""
    late = result.get("late") or {}
    penalty = (late.get("penalty") or 0.0) if penalty is None else penalty
    if not penalty and not late.get("seconds_late"):
        return ""
    hours = late["seconds_late"] / 3600
    submitted = f"{str(late['submitted'])[:16]} UTC" if late.get("submitted") else "at an unknown time"
    return (f"<p class='late'><b>Late:</b> submitted {text(submitted)}, {hours:.1f} h after the "
            f"due date; late penalty {fmt(penalty)} point(s). {text(late.get('policy', ''))}</p>")


def manual_html(manual):
    """The written answers as graded by a TA, and the final score: manual = {"questions": [{id,
    score, max_score, comment, pending}], "exercises", "auto", "written", "late_penalty",
    "final", "max_score", "pending"} (scores.Final.for_feedback)."""
    if not manual:
        return ""
    e = text
    rows = []
    for q in manual["questions"]:
        points = "not graded yet" if q["score"] is None else fmt(q["score"])
        if q.get("pending") and q["score"] is not None:
            points += " (pending regrade: your answer changed since it was graded)"
        rows.append(f"<tr><td><code>{e(q['id'])}</code></td><td>{points} / {fmt(q['max_score'])}</td>"
                    f"<td>{e(q['comment'] or '')}</td></tr>")
    pending = manual.get("pending") or []
    return (f"<h2>Written answers</h2><table class='written'><tr><th>Question</th><th>Points</th>"
            f"<th>Comment from your TA</th></tr>{''.join(rows)}</table><p class='final'><b>Final score: "
            f"{fmt(manual['final'])} / {fmt(manual['max_score'])}</b> ({breakdown(manual)})."
            + (f" Provisional: {len(pending)} grade(s) wait for a TA." if pending else "") + "</p>")


def breakdown(manual):
    """'auto-graded 18 + written answers 3 - late penalty 21': how the final score is made."""
    parts = f"auto-graded exercises {fmt(manual['auto'])} + written answers {fmt(manual['written'])}"
    return parts + (f" - late penalty {fmt(manual['late_penalty'])}" if manual["late_penalty"] else "")


def feedback_html(result, manual=None):
    """The student's page; with `manual` (what the gradebook holds: the TA's points and comments,
    overrides, the late penalty on auto + written points), the written answers and the final
    score too. Its header, exercise table, late paragraph and last line show the same numbers."""
    e = text
    rows = []
    overrides = (manual or {}).get("exercises") or {}
    for ex in result["exercises"]:
        words = STATUS_WORDS.get(ex["status"], ex["status"])
        detail = e(ex["message"]) if ex["message"] else ""
        if ex.get("misconception"):
            m = ex["misconception"]
            detail += (f"<div class='hint'><b>This looks like a known mistake: {e(m['title'])}.</b> "
                       f"{e(m['hint'])} <i>See Section {e(m['section'])}.</i></div>")
        points = fmt(overrides.get(ex["id"], ex["points"]))
        if overrides.get(ex["id"], ex["points"]) != ex["points"]:
            points += f" (set by your TA; the grader gave {fmt(ex['points'])})"
        rows.append(f"<tr class='{e(ex['status'])}'><td><code>{e(ex['id'])}</code></td>"
                    f"<td>{points} / {fmt(ex['max_points'])}</td><td>{e(words)}</td><td>{detail}</td></tr>")
    notes = "".join(f"<p class='note'><b>Note:</b> {e(n)}</p>" for n in result.get("notes") or ())
    notes += late_html(result, manual["late_penalty"] if manual else None)
    if result.get("reason"):
        notes += f"<p class='reason'><b>Your submission could not be graded:</b> {e(result['reason'])}</p>"
    if result.get("cell_errors"):
        items = "".join(f"<li>cell {c['cell']}: {e(c['error'])}</li>" for c in result["cell_errors"])
        notes += f"<p>Some cells of your notebook raised errors while it ran (the grader went on):</p><ul>{items}</ul>"
    if manual:
        score = f"<b>Score: {fmt(manual['final'])} / {fmt(manual['max_score'])}</b> ({breakdown(manual)})."
    else:
        score = (f"<b>Score: {fmt(total(result))} / {fmt(result['max_score'])}</b> (auto-graded exercises"
                 f"{f', after a late penalty of {fmt(late_penalty(result))}' if late_penalty(result) else ''}; "
                 "written answers are graded by hand).")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {e(result['assignment'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; vertical-align: top; }}
table.exercises tr.passed td:nth-child(3) {{ color: #176a2c; }} table.exercises tr:not(.passed) td:nth-child(3) {{ color: #a4161a; }}
.hint {{ margin-top: .3rem; padding: .4rem; background: #fff6d6; border-left: 3px solid #e0b000; }}
</style></head><body>
<h1>Feedback: {e(result['assignment'])}, {e(result['student_id'])}</h1>
<p>{score}</p>
{notes}
<table class='exercises'><tr><th>Exercise</th><th>Points</th><th>Result</th><th>What to look at</th></tr>
{''.join(rows)}
</table>
{manual_html(manual)}
<p>Your functions were called on hidden inputs drawn for you (other sizes than the public checks:
a single sample, a single step, input size different from hidden size, a non-zero initial state,
saturated gates). Backward passes are also checked against a numerical gradient of your own forward
pass, so one mistake costs one exercise where possible.</p>
</body></html>
"""


def table(config, results):
    """The grade table as text, with what grades.csv holds: one row per student (the exercises,
    the late penalty, the total after it), then the class average per column."""
    ids = list(config.points)
    short = [i.replace("lstm_", "")[:14] for i in ids]
    ids_shown = {r["student_id"]: printable(r["student_id"]) for r in results}
    width = max([len("student")] + [len(shown) for shown in ids_shown.values()])
    lines = [f"{'student':<{width}}  " + "  ".join(f"{s:>14}" for s in short) + f"  {'late':>7}  {'total':>7}"]
    for r in results:
        points = {e["id"]: e["points"] for e in r["exercises"]}
        lines.append(f"{ids_shown[r['student_id']]:<{width}}  " + "  ".join(f"{fmt(points.get(i, 0)):>14}" for i in ids)
                     + f"  {fmt(-late_penalty(r)):>7}  {fmt(total(r)):>7}"
                     + (f"  ({r['status']})" if r["status"] != "graded" else ""))
    if results:
        means = [sum({e['id']: e['points'] for e in r['exercises']}.get(i, 0) for r in results) / len(results) for i in ids]
        lines.append(f"{'mean':<{width}}  " + "  ".join(f"{m:>14.2f}" for m in means)
                     + f"  {(0.0 - sum(map(late_penalty, results))) / len(results):>7.2f}"
                     + f"  {sum(map(total, results)) / len(results):>7.2f}")
        lines.append(f"{'max':<{width}}  " + "  ".join(f"{fmt(config.points[i]):>14}" for i in ids)
                     + f"  {'':>7}  {fmt(config.max_score):>7}")
    return "\n".join(lines)
