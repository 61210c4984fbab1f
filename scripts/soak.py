"""Soak test (``make soak``; docs/reliability.md): smoke sweeps under random SIGKILLs.

For ``--minutes`` (default $SOAK_MINUTES or 20), batches of 4 smoke jobs (2 methods x 2 seeds,
new seeds per batch) run as ``python -m bench sweep --jobs 2 --threads 1`` while this script
SIGKILLs, at random moments, either one job's worker process or the whole sweep, and restarts
the sweep until the batch is complete.  Then every run is recomputed without kills (same
spec, another results folder) and compared record by record: alphas, cells, selections.
Prints jobs, kills, restarts and mismatches; exits 1 on any mismatch or unfinished run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = """experiment = "soak"
profile = "smoke"
methods = ["darts", "nap"]
seeds = {seeds}
results = "{results}"
[overrides]
epochs = 3
weight_size = 256
alpha_size = 256
[select]
criteria = ["magnitude", "ostr"]
epochs = "all"
valid_size = 64
"""


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    found = [int(p) for p in out]
    return found + [c for p in found for c in children(p)]


def sweep(spec: Path, data_dir: str, quiet: bool = True) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "bench", "sweep", str(spec), "--jobs", "2",
                             "--threads", "1", "--quiet", "--data-dir", data_dir],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def outcome(folder: Path) -> dict:
    def lines(path: Path) -> list[dict]:
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]

    return {run.name: ([(r["epoch"], r["alpha"], r["cell"]) for r in lines(run / "epochs.jsonl")],
                       sorted((r["epoch"], r["criterion"], r["cell"], json.dumps(r["scores"]))
                              for r in lines(run / "selections.jsonl")),
                       (run / "done").exists())
            for run in sorted(folder.iterdir()) if (run / "config.json").exists()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 20)))
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    kills = {"worker": 0, "sweep": 0}
    restarts = batches = 0
    end = time.monotonic() + 60 * args.minutes
    while time.monotonic() < end:
        seeds = [2 * batches, 2 * batches + 1]
        spec = work / f"batch{batches}.toml"
        spec.write_text(SPEC.format(seeds=seeds, results=work / "killed"))
        while True:
            proc = sweep(spec, args.data_dir)
            deadline = time.monotonic() + rng.uniform(2.0, 20.0)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is not None:
                break  # the batch is complete (every job done)
            victims = children(proc.pid)
            if victims and rng.random() < 0.6:
                os.kill(rng.choice(victims), signal.SIGKILL)
                kills["worker"] += 1
                proc.wait(timeout=600)  # the sweep goes on without the job; the rerun resumes it
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills["sweep"] += 1
            restarts += 1
        batches += 1
        print(f"batch {batches} done: kills {kills}, restarts {restarts}", flush=True)
    print("recomputing every run without kills ...", flush=True)
    for b in range(batches):
        twin = work / f"twin{b}.toml"
        twin.write_text(SPEC.format(seeds=[2 * b, 2 * b + 1], results=work / "twin"))
        proc = sweep(twin, args.data_dir)
        proc.wait()
    killed, clean = outcome(work / "killed" / "soak"), outcome(work / "twin" / "soak")
    unfinished = [name for name, (_, _, done) in killed.items() if not done]
    mismatches = [name for name in clean if killed.get(name) != clean[name]]
    print(f"jobs {len(killed)}, batches {batches}, kills {sum(kills.values())} ({kills['worker']} workers, "
          f"{kills['sweep']} whole sweeps), recoveries {restarts}, unfinished {len(unfinished)}, "
          f"mismatches {len(mismatches)} {mismatches}; folder {work}")
    return 1 if mismatches or unfinished or len(killed) != len(clean) else 0


if __name__ == "__main__":
    sys.exit(main())
