"""grading.yml -> an AssignmentConfig; the assignment module it names -> its exercises."""
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """grading.yml or the assignment module is missing something the grader needs."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float
    call_seconds: float
    memory_mb: int        # address space of the student's process; with tmpfs_mb, its cgroup's memory
    tmpfs_mb: int = 256   # the student's tmpfs: bubblewrap's /tmp (working folder inside), else the working folder
    processes: int = 32   # processes and threads of one submission at a time
    # On a derivation case the student's forward and backward passes together may take this many
    # times the reference's, in wall time and in CPU time (README, "derivation cases"), never less
    # than the floors: the wall clock's covers a loaded machine, the CPU clock's the channel.
    derive_factor: float = 100.0
    derive_floor_seconds: float = 0.15
    derive_cpu_floor_seconds: float = 0.01


@dataclass(frozen=True)
class AssignmentConfig:
    name: str
    notebook: str
    seed: int
    skip_cell_tags: tuple
    limits: Limits
    tolerance: dict
    input_modified_penalty: float
    points: dict           # exercise id -> points, in notebook order
    manual: dict           # nbgrader grade_id -> points, graded by hand
    module: object         # the assignment module: EXERCISES, CATALOGUE, SAMPLES
    reference: object      # the reference module
    late: object = None    # late.LatePolicy from grading.yml's `late:`, or None
    canvas_id: str = None  # grading.yml `canvas_id`: the assignment's id in Canvas (export finds its column)

    @property
    def release_dir(self):
        return REPO / "release" / self.name

    @property
    def exercises(self):
        """The assignment's Exercise objects, in grading.yml's order."""
        by_id = {e.id: e for e in self.module.EXERCISES}
        return [by_id[i] for i in self.points]

    @property
    def max_score(self):
        return float(sum(self.points.values()))

    @property
    def full_points(self):
        """Auto-graded plus written-answer points: what a late penalty's percent is of."""
        return self.max_score + float(sum(self.manual.values()))

    def parameter_names(self):
        """fn name -> argument names, from the reference's signatures (for messages)."""
        return {name: tuple(inspect.signature(fn).parameters)
                for name, fn in vars(self.reference).items()
                if inspect.isfunction(fn) and not name.startswith("_")}


def _late_policy(section):
    from autograder.outputs import late
    try:
        return late.load(section)
    except late.PolicyError as exc:
        raise ConfigError(f"grading.yml: {exc}") from None


def load(assignment, path=REPO / "grading.yml"):
    """Read one assignment's section of grading.yml and import what it names."""
    try:
        known = (yaml.safe_load(Path(path).read_text()) or {}).get("assignments") or {}
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    if not isinstance(known, dict) or assignment not in known:
        names = ", ".join(sorted(map(str, known))) if isinstance(known, dict) and known else "none"
        raise ConfigError(f"no assignment '{assignment}' in {path} (it has: {names}; names are case-sensitive)")
    section = known[assignment]
    module = importlib.import_module(section["module"])
    limits = section["limits"]
    config = AssignmentConfig(
        name=assignment, notebook=section["notebook"], seed=int(section["seed"]),
        skip_cell_tags=tuple(section.get("skip_cell_tags", ())),
        limits=Limits(float(limits["wall_seconds"]), float(limits["call_seconds"]), int(limits["memory_mb"]),
                      int(limits.get("tmpfs_mb", Limits.tmpfs_mb)), int(limits.get("processes", Limits.processes)),
                      float(limits.get("derive_factor", Limits.derive_factor)),
                      float(limits.get("derive_floor_seconds", Limits.derive_floor_seconds)),
                      float(limits.get("derive_cpu_floor_seconds", Limits.derive_cpu_floor_seconds))),
        tolerance={k: float(v) for k, v in section["tolerance"].items()},
        input_modified_penalty=float(section.get("input_modified_penalty", 0.5)),
        points={k: float(v) for k, v in section["exercises"].items()},
        manual={k: float(v) for k, v in (section.get("manual") or {}).items()},
        module=module, reference=importlib.import_module(section["reference"]),
        late=_late_policy(section.get("late")),
        canvas_id=str(section["canvas_id"]) if section.get("canvas_id") else None)
    missing = set(config.points) - {e.id for e in module.EXERCISES}
    if missing:
        raise ConfigError(f"grading.yml names exercises {sorted(missing)} that {section['module']} does not define")
    return config
