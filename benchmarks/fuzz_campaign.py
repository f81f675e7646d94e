"""A long fuzz campaign over the SOFA entry points, in-process (no subprocess per input).

    python benchmarks/fuzz_campaign.py --entry all --count 100000 --seed 0 [--jobs 2] [--out fuzz-out]

Entry points: ``mlir`` (sofa-opt), ``onnx`` (sofa-import), ``sofa`` (binary
programs into sofa-objdump and sofa-sim), ``bundle`` (model bundles into
sofa-objdump and sofa-sim), ``asm`` (sofa-as), ``toml``
(sofa-sim --config), ``npz`` (sofa-sim and sofa-run-ir --inputs). Each input
is a mutation of a seed (see tests/fuzz/fuzzlib.py) and is classified as ok, a
clean error, a crash (traceback, unexpected exception, internal error, no
message) or a hang (over --timeout seconds). For each entry it prints

    entry: tried N, ok A, clean errors B, crashes C, hangs H (R inputs/s)

and saves the first --keep crash and hang reproducers per entry, with their
output, under --out. The same --seed gives the same inputs; --jobs splits the
count over worker processes (each in-process).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

import fuzzlib


def worker(job: tuple[str, int, int, int, float, int]) -> tuple[Counter[str], list[tuple[int, str, bytes, str]], float]:
    """Run inputs [start, stop) of one entry; return counts and the first `keep` failures."""
    entry, seed, start, stop, timeout, keep = job
    targets = fuzzlib.Targets(timeout=timeout)
    counts: Counter[str] = Counter()
    failures: list[tuple[int, str, bytes, str]] = []
    slowest = 0.0
    try:
        for index in range(start, stop):
            # One generator per input: any input can be replayed from (seed, index) alone.
            rng = random.Random(f"{entry}:{seed}:{index}")
            data = targets.generate(entry, rng)
            outcome = targets.run(entry, data, variant=index)
            counts[outcome.kind] += 1
            slowest = max(slowest, outcome.seconds)
            if outcome.kind in (fuzzlib.CRASH, fuzzlib.HANG) and len(failures) < keep:
                report = f"{outcome.summary()}\n\n{outcome.detail}\n--- stdout\n{outcome.stdout[-4000:]}\n"
                report += f"--- stderr\n{outcome.stderr[-4000:]}\n"
                failures.append((index, outcome.kind, data, report))
    finally:
        targets.close()
    return counts, failures, slowest


SUFFIX = {"mlir": ".mlir", "onnx": ".onnx", "sofa": ".sofa", "bundle": ".sofa", "asm": ".s", "toml": ".toml",
          "npz": ".npz"}  # fmt: skip


def campaign(entry: str, args: argparse.Namespace, pool: multiprocessing.pool.Pool | None) -> bool:
    chunk = max(1, min(2000, args.count // max(1, args.jobs * 4)))
    jobs = [
        (entry, args.seed, start, min(args.count, start + chunk), args.timeout, args.keep)
        for start in range(0, args.count, chunk)
    ]
    counts: Counter[str] = Counter()
    failures: list[tuple[int, str, bytes, str]] = []
    slowest = 0.0
    begin = time.perf_counter()
    results = pool.imap(worker, jobs) if pool else map(worker, jobs)
    for part, bad, slow in results:
        counts.update(part)
        failures.extend(bad)
        slowest = max(slowest, slow)
    elapsed = time.perf_counter() - begin
    tried = sum(counts.values())
    print(
        f"{entry}: tried {tried}, ok {counts[fuzzlib.OK]}, clean errors {counts[fuzzlib.ERROR]}, "
        f"crashes {counts[fuzzlib.CRASH]}, hangs {counts[fuzzlib.HANG]} "
        f"({tried / elapsed:.0f} inputs/s, {elapsed:.0f} s, slowest input {slowest:.2f} s)",
        flush=True,
    )
    failures.sort()
    if failures:
        out = Path(args.out) / entry
        out.mkdir(parents=True, exist_ok=True)
        for index, kind, data, report in failures[: args.keep]:
            stem = out / f"{kind}-{args.seed}-{index}"
            stem.with_suffix(SUFFIX[entry]).write_bytes(data)
            stem.with_suffix(".txt").write_text(report)
            first = report.splitlines()[0]
            print(f"  reproducer {stem.with_suffix(SUFFIX[entry])}: {first[:200]}")
    return not failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entry", choices=[*fuzzlib.ENTRIES, "all"], default="all")
    parser.add_argument("--count", type=int, default=1000, help="inputs per entry point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (each runs inputs in-process)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before an input counts as a hang")
    parser.add_argument("--keep", type=int, default=5, help="reproducers to save per entry")
    parser.add_argument("--out", default="fuzz-out", help="directory for crash reproducers")
    args = parser.parse_args(argv)
    entries = fuzzlib.ENTRIES if args.entry == "all" else (args.entry,)
    clean = True
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs, maxtasksperchild=4) as pool:
            for entry in entries:
                clean &= campaign(entry, args, pool)
    else:
        for entry in entries:
            clean &= campaign(entry, args, None)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
