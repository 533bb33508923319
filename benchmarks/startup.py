"""Start-up time and memory of the three command lines (`--help`), target < 1 s each.

    nice .venv/bin/python benchmarks/startup.py [--runs 5]

Each command runs in a fresh process `--runs` times, interleaved so that machine noise hits
all three alike; the table gives the median and worst wall time and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = ("synth", "train", "evaluate")


def run_once(command: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `command --help` in a new process."""
    start = time.perf_counter()
    process = subprocess.Popen([str(BIN / command), "--help"], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"{command} --help exited {process.returncode}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {c: [] for c in COMMANDS}
    rss: dict[str, list[float]] = {c: [] for c in COMMANDS}
    for _ in range(args.runs):
        for command in COMMANDS:
            seconds, peak = run_once(command)
            times[command].append(seconds)
            rss[command].append(peak)
    print("| command | median s | worst s | peak RSS MB |")
    print("|---|---|---|---|")
    for command in COMMANDS:
        t = times[command]
        print(f"| `{command} --help` | {statistics.median(t):.2f} | {max(t):.2f} | {max(rss[command]):.0f} |")


if __name__ == "__main__":
    main()
