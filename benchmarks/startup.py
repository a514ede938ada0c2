"""Start-up benchmark: how long drillbook's command line takes before it does anything.

    python benchmarks/startup.py [--runs 10]

Times, as whole processes, ``drillbook --list`` (the console script), ``inv --list``
in the checkout and ``drillbook smoke --rps abc``-style usage errors against a bare
``invoke --list`` of a trivial ``tasks.py`` (one task, nothing imported), run in
turn A B A B so a machine that drifts slows both. Reports each median and the
median of the pair-by-pair ratios. Target (issue 15): no more than 3x bare Invoke.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = 'from invoke import task\n\n\n@task\ndef hello(c):\n    """Say hello."""\n    print("hello")\n'


def timed(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command (default 10)")
    args = parser.parse_args()
    inv = shutil.which("inv") or "inv"
    drillbook = shutil.which("drillbook")
    with tempfile.TemporaryDirectory() as tmp:
        bare_dir = Path(tmp)
        (bare_dir / "tasks.py").write_text(TRIVIAL)
        commands = {"inv --list (checkout)": ([inv, "--list"], ROOT)}
        if drillbook:
            commands["drillbook --list"] = ([drillbook, "--list"], bare_dir)
        commands["usage error (load.run --rps abc)"] = ([inv, "load.run", "--rps", "abc"], ROOT)
        baseline = ([inv, "--list"], bare_dir)
        for argv, cwd in [*commands.values(), baseline]:
            timed(argv, cwd)  # warm-up: page cache, .pyc files
        rows = []
        for label, (argv, cwd) in commands.items():
            ours, bare, ratios = [], [], []
            for _ in range(args.runs):
                a = timed(argv, cwd)
                b = timed(*baseline)
                ours.append(a)
                bare.append(b)
                ratios.append(a / b)
            rows.append((label, statistics.median(ours), statistics.median(bare), statistics.median(ratios)))
    load = os.getloadavg()[0]
    print(f"{args.runs} runs each, load average {load:.2f}, python {sys.version.split()[0]}")
    print("| command | median s | bare invoke --list median s | ratio (median of pairs) |")
    print("|---|---|---|---|")
    for label, ours_s, bare_s, ratio in rows:
        print(f"| {label} | {ours_s:.3f} | {bare_s:.3f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
