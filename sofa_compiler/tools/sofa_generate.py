"""`sofa-generate`: generate tokens on the simulated accelerator, prefill then decode steps over a resident KV cache.

Takes a prefill graph and a decode-step graph that follow `sofa_compiler.generation.contract`
(e.g. `examples/smollm2/export_cached.py`), runs the prompt, then one decode step per new token
after the first, greedy or sampled (``--temperature``, ``--seed``) for the decode graph's M
samples. Prints, per token: the simulated cycles of its attention kernels, their latency at
the target clock, their DRAM traffic, the bytes the host wrote into the resident cache, the
energy; and the totals. ``--json`` prints the same as one JSON document.

Decode steps run on the decode kernel (``--decode``): ``auto`` (default) lets the cost model
choose, per layer, the standard lowering or the bifurcated one that streams the prompt's
cache (the prefix every sample shares) once for all M samples; the choice is printed.
``prefill`` runs decode steps on the prefill kernel instead. At a decode keep below 1
(``--decode-keep``, default ``--keep``) the decode steps run on the sparse decode kernel: DLZS
over 4-bit codes of the cached keys, SADS keeping ceil(keep * 64) keys of each 64-key tile per
query, only the selected K/V rows fetched (docs/generation.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sofa_compiler.cli import add_budget_option, exit_statuses, positive_int, user_warnings

if TYPE_CHECKING:
    import numpy as np

    from sofa_compiler.generation import StepReport


def user_errors() -> tuple[type[Exception], ...]:
    from sofa_compiler.driver import CompileError
    from sofa_compiler.frontend.errors import FrontendError
    from sofa_compiler.generation import GenerationError
    from sofa_compiler.sim.config import ConfigError
    from sofa_compiler.sim.limits import LimitError

    return CompileError, FrontendError, ConfigError, LimitError, GenerationError


def read_prompt(text: str) -> np.ndarray:
    """Token ids from ``1,2,3``, a ``.npy`` file, or a ``.npz`` file's ``input_ids``."""
    import numpy as np

    from sofa_compiler.generation import GenerationError

    if not text.endswith((".npy", ".npz")):
        try:
            return np.array([int(part) for part in text.split(",")], np.int64)
        except ValueError:
            raise GenerationError(f"--prompt: '{text}' is neither comma-separated token ids nor a .npy/.npz file")
    try:
        with np.load(Path(text), allow_pickle=False) as data:
            if isinstance(data, np.ndarray):
                return data
            if "input_ids" not in data.files:
                raise GenerationError(f"--prompt: {text} has no 'input_ids' array (it has {', '.join(data.files)})")
            return data["input_ids"]
    except (OSError, ValueError) as error:
        raise GenerationError(f"--prompt: cannot read {text}: {error}") from None


DECODE_CHOICES = ("auto", "standard", "bifurcated", "prefill")


def decode_summary(options: dict[str, Any] | None, sparse_layers: int = 0, keep: float = 1.0) -> str:
    """One line: how decode steps ran, and the cost model's predictions where it chose."""
    if options is None or not options["enabled"]:
        return "decode steps: prefill kernel"
    if sparse_layers:
        from dialects.numerics import keep_count
        from dialects.sofa import DECODE_TILE

        kept = keep_count(keep, DECODE_TILE)
        return (
            f"decode steps: sparse decode kernel at keep {keep:g} on {sparse_layers} layers "
            f"(each query keeps {kept} of every {DECODE_TILE} cached keys)"
        )
    line = f"decode steps: decode kernel, {options['lowering']}, shared prefix {options['prefix']} rows"
    choices = options.get("choices") or []
    if not choices:
        return line
    chosen = sorted({choice["lowering"] for choice in choices})
    predicted = ", ".join(
        f"{name} {cycles:,} cycles {dram:,} B" for name, (cycles, dram) in choices[0]["predicted"].items()
    )
    return f"{line}; cost model chose {'/'.join(chosen)} ({len(choices)} layers; layer 0 predicted: {predicted})"


def totals(reports: list[StepReport]) -> dict[str, Any]:
    keys = ("cycles", "latency_us", "dram_read_bytes", "dram_write_bytes", "host_write_bytes", "energy_pj", "wall_s")
    return {"steps": len(reports), **{key: sum(getattr(r, key) for r in reports) for key in keys}}


def print_table(reports: list[StepReport], clock_mhz: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"generation on the simulator (attention kernels; clock {clock_mhz:g} MHz)")
    for column in ("step", "tokens", "cache", "cycles", "latency µs", "DRAM bytes", "host→DRAM bytes", "energy µJ"):
        table.add_column(column, justify="right")

    def row(name: str, tokens: str, cache: str, figures: dict[str, Any]) -> None:
        table.add_row(
            name, tokens, cache, f"{figures['cycles']:,}", f"{figures['latency_us']:,.1f}",
            f"{figures['dram_read_bytes'] + figures['dram_write_bytes']:,}", f"{figures['host_write_bytes']:,}",
            f"{figures['energy_pj'] / 1e6:,.2f}",
        )  # fmt: skip

    for report in reports:
        name = "prefill" if report.step == 0 else str(report.step)
        row(name, " ".join(map(str, report.tokens)), str(report.cache_length), report.to_dict())
    row("total", "", "", totals(reports))
    Console(width=120).print(table)


@exit_statuses("sofa-generate", deferred_errors=user_errors)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-generate", description=__doc__.split("\n")[0])
    parser.add_argument("prefill", help="the prefill graph (.onnx): input_ids [1, S] -> logits, present_key.i, ...")
    parser.add_argument("decode", help="the decode-step graph (.onnx) with the KV cache as inputs and outputs")
    parser.add_argument("--prompt", required=True, help="token ids: 1,2,3 or a .npy file or a .npz with input_ids")
    parser.add_argument("--tokens", type=positive_int, default=16, help="new tokens per sample (default 16)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    parser.add_argument("--target", metavar="FILE.toml", help="hardware config (default: the paper's sofa-28nm)")
    parser.add_argument("--keep", type=float, default=1.0, help="top-k keep ratio, 0 < k <= 1 (1.0 = exact)")
    parser.add_argument(
        "--decode-keep", type=float, help="keep ratio of the decode steps (default: --keep); < 1 is sparse decode"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--decode", choices=DECODE_CHOICES, default="auto", dest="decode_lowering",
        help="decode-step attention: the decode kernel's lowering (auto: the cost model's), or the prefill kernel",
    )  # fmt: skip
    add_budget_option(parser)
    args = parser.parse_args(argv)
    from sofa_compiler.driver import DecodeOptions, check_options, compile_model
    from sofa_compiler.generation import GenerationSession, GraphPair, Sampling, generate

    decode_keep = args.keep if args.decode_keep is None else args.decode_keep
    check_options(args.keep, None, None)
    check_options(decode_keep, None, None)
    sampling = Sampling(args.temperature, args.seed)
    prompt = read_prompt(args.prompt)
    on_decode_kernel = args.decode_lowering != "prefill"
    lowering = args.decode_lowering if on_decode_kernel else "auto"
    decode = DecodeOptions(on_decode_kernel, lowering, prompt.shape[-1])
    with user_warnings("sofa-generate"):
        pair = GraphPair(
            compile_model(args.prefill, args.target, args.keep),
            compile_model(args.decode, args.target, decode_keep, decode=decode),
        )
    from sofa_compiler.runtime import is_sparse_decode_kernel

    sparse_layers = sum(map(is_sparse_decode_kernel, pair.decode.programs.values()))
    summary = decode_summary(pair.decode.options.get("decode"), sparse_layers, decode_keep)
    session = GenerationSession(pair, sampling, max_instructions=args.max_instructions)
    with token_progress(sys.stderr.isatty() and not args.json, args.tokens) as advance:
        reports = generate(session, prompt, args.tokens, advance)
    clock = pair.decode.config.as_target_dict().get("clock_mhz", 0.0)
    if args.json:
        document = {
            "tokens": session.tokens.tolist(),
            "clock_mhz": clock,
            "decode": pair.decode.options.get("decode"),
            "decode_keep": decode_keep,
            "sparse_decode_layers": sparse_layers,
            "steps": [report.to_dict() for report in reports],
            "total": totals(reports),
        }
        print(json.dumps(document, indent=2))
    else:
        print(summary)
        print_table(reports, clock)
        for sample, tokens in enumerate(session.tokens.tolist()):
            print(f"sample {sample}: {' '.join(map(str, tokens))}")
    return 0


@contextmanager
def token_progress(enabled: bool, total: int) -> Iterator[Callable[[StepReport], None] | None]:
    """A progress bar over the generated tokens on stderr; it yields the session's per-step callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("tokens"), BarColumn(), MofNCompleteColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        task = bars.add_task("", total=total)
        yield lambda report: bars.update(task, advance=1)


if __name__ == "__main__":
    sys.exit(main())
