"""Is any test slower than at an earlier commit?  The test suite's per-test times, compared.

    python -m benchmarks.bench_tests BASE_REV [--runs 3] [--show 15]

BASE_REV (a commit, tag or branch) is checked out into a temporary git worktree, and the
suite runs ALTERNATELY there and here (base, here, base, here, ...), each run a fresh
``pytest --durations=0`` with the current Python.  One run of each goes first and is not
counted: it fills each tree's Numba cache.  Per test (setup + call + teardown) the table
takes the fastest of the counted runs on each side (noise only ever adds time), over the
tests that both trees have by the same name and that every run timed (pytest leaves out
those under 5 ms).  Printed: the totals, and the tests that got slower by the most.

A test that runs a kernel first in its tree's suite order pays for loading that kernel from
Numba's cache (0.05-0.3 s), so a new test placed before it can shift that cost: rerun such
a test on its own before calling it slower.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import re
import subprocess
import tempfile
from collections import defaultdict

from benchmarks._common import ROOT, header

DURATION = re.compile(r"\s*([\d.]+)s (?:call|setup|teardown)\s+(\S+)")


def suite_times(tree):
    """{test id: seconds} from one ``pytest --durations=0`` run in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--durations=0"], cwd=tree, env=env, capture_output=True, text=True)
    times = defaultdict(float)
    for line in out.stdout.splitlines():
        match = DURATION.match(line)
        if match:
            times[match.group(2)] += float(match.group(1))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare against")
    parser.add_argument("--runs", type=int, default=3, help="counted runs on each side")
    parser.add_argument("--show", type=int, default=15, help="how many of the slowest to list")
    args = parser.parse_args(argv)
    header(f"per-test times: {args.base} against this tree, {args.runs} alternated runs each")
    with tempfile.TemporaryDirectory() as parent:
        base = os.path.join(parent, "base")
        subprocess.run(["git", "worktree", "add", "--detach", "-f", base, args.base], cwd=ROOT,
                       check=True, capture_output=True)
        # Data-reading tests look for ../shared beside the tree, as they do beside this one.
        shared = ROOT.parent / "shared"
        if shared.exists():
            os.symlink(shared, os.path.join(parent, "shared"))
        try:
            runs = {"base": [], "here": []}
            for r in range(args.runs + 1):                    # run 0 fills the caches
                for name, tree in (("base", base), ("here", ROOT)):
                    times = suite_times(tree)
                    if r > 0:
                        runs[name].append(times)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", base], cwd=ROOT,
                           capture_output=True)
    every = [times for side in runs.values() for times in side]
    common = set.intersection(*(set(times) for times in every))
    fastest = {name: {t: min(times[t] for times in side) for t in common}
               for name, side in runs.items()}
    rows = sorted(((fastest["here"][t] - fastest["base"][t], t) for t in common), reverse=True)
    print(f"{len(common)} tests in both, timed in every run; fastest run's total: "
          f"base {sum(fastest['base'].values()):.1f} s, here {sum(fastest['here'].values()):.1f} s")
    print("\nslower by the most (here - base, seconds):")
    for change, test in rows[:args.show]:
        print(f"  {change:+.2f}  base {fastest['base'][test]:.2f}  here "
              f"{fastest['here'][test]:.2f}  {test}")


if __name__ == "__main__":
    main()
