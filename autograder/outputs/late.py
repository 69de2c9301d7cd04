"""The late policy of grading.yml (`late:`) and nbgrader's submission timestamps.

    late:
      due: "2026-12-11 23:59:00 UTC"        # the deadline
      grace_minutes: 15                     # submissions up to this much later count as on time
      percent_per_day: 10                   # or percent_per_hour: of the assignment's full points
                                            # (auto + written), per started day (hour) after `due`
      zero_after: "2026-12-18 23:59:00 UTC" # optional: later submissions score 0

The penalty never exceeds the score it is taken from. A submission without a timestamp
(nbgrader's `timestamp.txt` next to the notebook) is never late.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

TIMESTAMP_FILE = "timestamp.txt"
UNITS = {"percent_per_hour": 3600.0, "percent_per_day": 86400.0}


class PolicyError(ValueError):
    """grading.yml's `late:` section cannot be read."""


def parse_time(text):
    """A time as nbgrader writes or reads it ("2026-12-11 23:59:00.000000 UTC", ISO 8601, ...)
    -> an aware UTC datetime. Naive times are UTC."""
    from dateutil.parser import parse
    value = parse(str(text))
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_time(moment):
    """nbgrader's timestamp.txt format: 2026-12-11 23:59:00.000000 UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def read_timestamp(folder):
    """The submission time in folder/timestamp.txt, or None (absent or unreadable)."""
    path = Path(folder) / TIMESTAMP_FILE
    try:
        return parse_time(path.read_text().strip())
    except (OSError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class LatePolicy:
    due: datetime
    grace: timedelta
    percent: float            # of the full points, per unit started after `due`
    unit_seconds: float       # 3600 or 86400
    zero_after: datetime = None

    def seconds_late(self, submitted):
        """Seconds after the due date (0 when on time, within the grace period or unknown)."""
        if submitted is None:
            return 0.0
        late = (submitted - self.due).total_seconds()
        return late if late > self.grace.total_seconds() else 0.0

    def penalty(self, submitted, score, full_points):
        """Points taken from `score` for a submission at `submitted` (a datetime or None)."""
        late = self.seconds_late(submitted)
        if late <= 0:
            return 0.0
        if self.zero_after is not None and submitted > self.zero_after:
            return max(0.0, float(score))
        units = math.ceil(late / self.unit_seconds)
        return round(min(max(0.0, float(score)), units * self.percent / 100.0 * full_points), 4)

    def describe(self):
        """The policy in one sentence, for feedback pages."""
        unit = "hour" if self.unit_seconds == 3600 else "day"
        text = f"Due {format_time(self.due)[:16]} UTC"
        if self.grace:
            text += f" (grace period {self.grace.total_seconds() / 60:g} min)"
        if self.percent:
            text += f"; {self.percent:g}% of the full points per started {unit} late"
        if self.zero_after is not None:
            text += f"; 0 after {format_time(self.zero_after)[:16]} UTC"
        return text + "."


def load(section):
    """grading.yml's `late:` mapping -> LatePolicy, or None when there is none."""
    if not section:
        return None
    if not isinstance(section, dict) or "due" not in section:
        raise PolicyError("late: needs at least a `due` date")
    unknown = set(section) - {"due", "grace_minutes", "zero_after", *UNITS}
    if unknown:
        raise PolicyError(f"late: unknown keys {sorted(unknown)}")
    rates = [k for k in UNITS if k in section]
    if len(rates) > 1:
        raise PolicyError("late: give percent_per_hour or percent_per_day, not both")
    try:
        return LatePolicy(
            due=parse_time(section["due"]), grace=timedelta(minutes=float(section.get("grace_minutes", 0))),
            percent=float(section[rates[0]]) if rates else 0.0,
            unit_seconds=UNITS[rates[0]] if rates else UNITS["percent_per_day"],
            zero_after=parse_time(section["zero_after"]) if section.get("zero_after") else None)
    except (ValueError, OverflowError, TypeError) as exc:
        raise PolicyError(f"late: {exc}") from None


def annotate(result, policy, submitted, full_points):
    """Add result["late"]: when it was submitted, how late, and the penalty on the auto score."""
    late = policy.seconds_late(submitted) if policy else 0.0
    result["late"] = {"submitted": format_time(submitted) if submitted else None, "seconds_late": round(late, 1),
                      "penalty": policy.penalty(submitted, result["score"], full_points) if late else 0.0,
                      "policy": policy.describe() if late else ""}
    return result
