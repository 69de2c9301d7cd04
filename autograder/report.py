"""What grading writes: grades.csv, results/<student>.json, feedback/<student>.html, and the
table printed at the end. Feedback shows scores, what failed and hints: never hidden inputs,
hidden test code or reference code (the results hold none of them to begin with)."""
import csv
import html
import json
from pathlib import Path

STATUS_WORDS = {
    "passed": "correct", "partial": "partly correct", "failed": "incorrect",
    "not_implemented": "not implemented yet", "error": "raised an error", "timeout": "too slow (timed out)",
    "crashed": "crashed the process", "missing": "missing",
}


def write_all(config, results, out):
    """Write every output file for `results` (sorted by student id) under `out`."""
    out = Path(out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    write_csv(config, results, out / "grades.csv")
    for result in results:
        (out / "results" / f"{result['student_id']}.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "feedback" / f"{result['student_id']}.html").write_text(feedback_html(result))


def write_csv(config, results, path):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", *config.points, "total", "max_score"])
        for result in results:
            points = {e["id"]: e["points"] for e in result["exercises"]}
            writer.writerow([result["student_id"], *(fmt(points.get(e, 0.0)) for e in config.points),
                             fmt(result["score"]), fmt(result["max_score"])])


def fmt(number):
    """Points as text: 2, 1.5, 0.6667 (no float noise, same text every run)."""
    return f"{round(float(number), 4):g}"


def feedback_html(result):
    e = html.escape
    rows = []
    for ex in result["exercises"]:
        words = STATUS_WORDS.get(ex["status"], ex["status"])
        detail = e(ex["message"]) if ex["message"] else ""
        if ex.get("misconception"):
            m = ex["misconception"]
            detail += (f"<div class='hint'><b>This looks like a known mistake: {e(m['title'])}.</b> "
                       f"{e(m['hint'])} <i>See Section {e(m['section'])}.</i></div>")
        rows.append(f"<tr class='{e(ex['status'])}'><td><code>{e(ex['id'])}</code></td>"
                    f"<td>{fmt(ex['points'])} / {fmt(ex['max_points'])}</td><td>{e(words)}</td><td>{detail}</td></tr>")
    notes = ""
    if result.get("reason"):
        notes += f"<p class='reason'><b>Your submission could not be graded:</b> {e(result['reason'])}</p>"
    if result.get("cell_errors"):
        items = "".join(f"<li>cell {c['cell']}: {e(c['error'])}</li>" for c in result["cell_errors"])
        notes += f"<p>Some cells of your notebook raised errors while it ran (the grader went on):</p><ul>{items}</ul>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {e(result['assignment'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; vertical-align: top; }}
tr.passed td:nth-child(3) {{ color: #176a2c; }} tr:not(.passed) td:nth-child(3) {{ color: #a4161a; }}
.hint {{ margin-top: .3rem; padding: .4rem; background: #fff6d6; border-left: 3px solid #e0b000; }}
</style></head><body>
<h1>Feedback: {e(result['assignment'])}, {e(result['student_id'])}</h1>
<p><b>Score: {fmt(result['score'])} / {fmt(result['max_score'])}</b> (auto-graded exercises; written answers are graded by hand).</p>
{notes}
<table><tr><th>Exercise</th><th>Points</th><th>Result</th><th>What to look at</th></tr>
{''.join(rows)}
</table>
<p>Your functions were called on hidden inputs drawn for you (other sizes than the public checks:
a single sample, a single step, input size different from hidden size, a non-zero initial state,
saturated gates). Backward passes are also checked against a numerical gradient of your own forward
pass, so one mistake costs one exercise where possible.</p>
</body></html>
"""


def table(config, results):
    """The grade table as text: one row per student, then the class average per exercise."""
    ids = list(config.points)
    short = [i.replace("lstm_", "")[:14] for i in ids]
    width = max([len("student")] + [len(r["student_id"]) for r in results])
    lines = [f"{'student':<{width}}  " + "  ".join(f"{s:>14}" for s in short) + f"  {'total':>7}"]
    for r in results:
        points = {e["id"]: e["points"] for e in r["exercises"]}
        lines.append(f"{r['student_id']:<{width}}  " + "  ".join(f"{fmt(points.get(i, 0)):>14}" for i in ids)
                     + f"  {fmt(r['score']):>7}" + (f"  ({r['status']})" if r["status"] != "graded" else ""))
    if results:
        means = [sum({e['id']: e['points'] for e in r['exercises']}.get(i, 0) for r in results) / len(results) for i in ids]
        lines.append(f"{'mean':<{width}}  " + "  ".join(f"{m:>14.2f}" for m in means)
                     + f"  {sum(r['score'] for r in results) / len(results):>7.2f}")
        lines.append(f"{'max':<{width}}  " + "  ".join(f"{fmt(config.points[i]):>14}" for i in ids)
                     + f"  {fmt(config.max_score):>7}")
    return "\n".join(lines)
