"""A long fuzz campaign over the SOFA entry points, in-process (no subprocess per input).

    python benchmarks/fuzz_campaign.py [--entry all | ENTRY ...] --count 100000 --seed 0 [--jobs 2] [--out fuzz-out]

Entry points: ``mlir`` (sofa-opt), ``onnx`` (sofa-import), ``sofa`` (binary
programs into sofa-objdump and sofa-sim), ``bundle`` (model bundles into
sofa-objdump and sofa-sim), ``asm`` (sofa-as), ``toml``
(sofa-sim --config), ``npz`` (sofa-sim and sofa-run-ir --inputs), and the
structure-aware ones of tests/fuzz/structured.py: ``mlir-struct``,
``onnx-struct``, ``ieee`` (sofa-run), ``files`` (output targets of every
writing tool), ``signals`` (SIGINT/SIGTERM and concurrent writers, real
processes). Each input is a mutation of a seed (see tests/fuzz/fuzzlib.py) and
is classified as ok, a clean error, a crash (traceback, unexpected exception,
internal error, no message), a hang (over --timeout seconds) or a wrong
success (the structured oracles: it must have failed, or left a file wrong).
For each entry it prints

    entry: tried N, ok A, clean errors B, crashes C, hangs H, wrong successes W (R inputs/s)

and, at the end, the same as one table.

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
import structured

ENTRIES = (*fuzzlib.ENTRIES, *structured.ENTRIES)


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
            if entry in structured.ENTRIES:
                data = structured.generate(targets, entry, rng)
                outcome = structured.run(targets, entry, data, variant=index)
            else:
                data = targets.generate(entry, rng)
                outcome = targets.run(entry, data, variant=index)
            counts[outcome.kind] += 1
            slowest = max(slowest, outcome.seconds)
            if outcome.kind in (fuzzlib.CRASH, fuzzlib.HANG, structured.WRONG) and len(failures) < keep:
                report = f"{outcome.summary()}\n\n{outcome.detail}\n--- stdout\n{outcome.stdout[-4000:]}\n"
                report += f"--- stderr\n{outcome.stderr[-4000:]}\n"
                failures.append((index, outcome.kind, data, report))
    finally:
        targets.close()
    return counts, failures, slowest


SUFFIX = {"mlir": ".mlir", "onnx": ".onnx", "sofa": ".sofa", "bundle": ".sofa", "asm": ".s", "toml": ".toml"}
SUFFIX |= {"npz": ".npz"} | structured.SUFFIX
COLUMNS = (("tried", None), ("ok", fuzzlib.OK), ("clean errors", fuzzlib.ERROR), ("crashes", fuzzlib.CRASH))
COLUMNS += (("hangs", fuzzlib.HANG), ("wrong successes", structured.WRONG))


def campaign(
    entry: str, args: argparse.Namespace, pool: multiprocessing.pool.Pool | None
) -> tuple[bool, Counter[str], float]:
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
        f"crashes {counts[fuzzlib.CRASH]}, hangs {counts[fuzzlib.HANG]}, wrong successes {counts[structured.WRONG]} "
        f"({tried / elapsed:.1f} inputs/s, {elapsed:.0f} s, slowest input {slowest:.2f} s)",
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
    return not failures, counts, elapsed


def print_table(rows: list[tuple[str, Counter[str], float]]) -> None:
    """One row per entry: the counts of `COLUMNS`, and the time per input."""
    header = ["entry", *(name for name, _ in COLUMNS), "s/input"]
    lines = [header]
    for entry, counts, elapsed in rows:
        tried = sum(counts.values())
        cells = [str(tried if kind is None else counts[kind]) for _, kind in COLUMNS]
        lines.append([entry, *cells, f"{elapsed / max(1, tried):.3f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for number, line in enumerate(lines):
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))]
        print("  ".join(cells))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entry", choices=[*ENTRIES, "all"], default=["all"], nargs="+", help="entry points")
    parser.add_argument("--count", type=int, default=1000, help="inputs per entry point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (each runs inputs in-process)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before an input counts as a hang")
    parser.add_argument("--keep", type=int, default=5, help="reproducers to save per entry")
    parser.add_argument("--out", default="fuzz-out", help="directory for crash reproducers")
    args = parser.parse_args(argv)
    entries = ENTRIES if "all" in args.entry else tuple(args.entry)
    rows = []
    pool = multiprocessing.get_context("fork").Pool(args.jobs, maxtasksperchild=4) if args.jobs > 1 else None
    try:
        for entry in entries:
            _, counts, elapsed = campaign(entry, args, pool)
            rows.append((entry, counts, elapsed))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    print()
    print_table(rows)
    return 0 if all(sum(c[k] for k in (fuzzlib.CRASH, fuzzlib.HANG, structured.WRONG)) == 0 for _, c, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
