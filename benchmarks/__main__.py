"""`make bench`: run every benchmarks/bench_*.py in name order; each prints its own section."""
import importlib
import pathlib
import sys


def main():
    here = pathlib.Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    only = sys.argv[1:]
    for name in names:
        if only and not any(word in name for word in only):
            continue
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()
