"""Writing CSV files that a spreadsheet opens safely.

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula (a student id `=HYPERLINK(...)` would be a live
link in the TA's gradebook). Such a cell gets a leading apostrophe, OWASP's advice; numbers,
negative ones included, are written as they are. Control characters (a student's ANSI codes)
are removed first."""
import csv

from autograder.outputs.student_text import printable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def safe(value):
    """One cell as text a spreadsheet shows as text (numbers stay numbers), without control characters."""
    if value is None:
        return ""
    text = printable(value, newlines=True)
    if text.startswith(FORMULA_START) and not (isinstance(value, (int, float)) or _is_number(text)):
        return "'" + text
    return text


def write_csv(path, header, rows):
    """Write header and rows (iterables of cells) to path, every cell through safe()."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([safe(h) for h in header])
        for row in rows:
            writer.writerow([safe(v) for v in row])
