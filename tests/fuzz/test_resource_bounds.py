"""Resource bounds: one instruction budget everywhere, memory that does not grow with the run, size limits."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fuzzlib import FIXTURES, bundle_seeds, call_main, small_attention
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sofa_compiler.isa.asm import assemble
from sofa_compiler.isa.container import Program
from sofa_compiler.sim.budget import executed_instructions
from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.sim.functional import Machine
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS, MAX_DRAM_BYTES
from sofa_compiler.sim.report import build_report
from sofa_compiler.sim.timing import BATCH, QUEUE_DEPTH, UNITS, StreamingTiming, program_units, simulate
from sofa_compiler.sim.traps import Trap, TrapKind
from sofa_compiler.tools import sofa_run_ir, sofa_sim

FOREVER = """\
# About 2^48 iterations: only the instruction budget stops it.
loop count=16777215, body=4
  loop count=16777215, body=3
    dma.load dst=temp[r0+0], src=dram[r0+0], rows=1, row_bytes=16, src_stride=16 ; signal=0b1
    dma.store src=temp[r0+0], dst=dram[r0+64], rows=1, row_bytes=16, dst_stride=16 ; wait=0b1
    addi rd=r1, rs=r1, imm=1
halt
"""

FOREVER_LOOPR = """\
# Run-time counts of 2^31 - 1, nested: counted from the registers before running.
set rd=r2, imm=2147483647
loopr count=r2, body=2
  loopr count=r2, body=1
    barrier
halt
"""

FOREVER_COPYING = """\
# A body that steps r2 and copies it to r3, which a loopr reads: counted only by walking, pass by pass.
loop count=16777215, body=3
  loop count=16777215, body=2
    addi rd=r2, rs=r2, imm=1
    addi rd=r3, rs=r2, imm=1
loopr count=r3, body=1
  barrier
halt
"""

MEASURE = """\
import resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(proc.returncode, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, wall)
print(proc.stderr)
"""


def run_measured(path: Path, *options: str) -> tuple[int, float, float, float, str]:
    """(exit status, peak RSS in MB, CPU seconds, wall seconds, stderr) of `sofa-sim path options` in a subprocess."""
    argv = [sys.executable, "-m", "sofa_compiler.tools.sofa_sim", str(path), "--json", *options]
    proc = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, check=True)
    first, stderr = proc.stdout.split("\n", 1)
    rc, rss_kb, cpu, wall = first.split()
    return int(rc), int(rss_kb) / 1024, float(cpu), float(wall), stderr


def forever_bundle() -> bytes:
    """The test bundle with its kernel behind a loop nest of 2^48 passes."""
    import dataclasses

    import sofa_compiler
    from sofa_compiler.bundle import bundle_bytes

    model = sofa_compiler.compile(FIXTURES / "attn23_mha_4d.onnx")
    name, program = next(iter(model.programs.items()))
    prefix = assemble("loop count=16777215, body=2\n  loop count=16777215, body=1\n    barrier\nhalt\n").code[:-1]
    model.programs[name] = dataclasses.replace(program, code=[*prefix, *program.code])
    return bundle_bytes(model)


@pytest.mark.parametrize("shape", ["loop", "loopr", "copying", "bundle"])
def test_a_program_that_loops_forever_stops_at_the_default_budget_within_10_s_under_500_mb(
    tmp_path: Path, shape: str
) -> None:
    """With sofa-sim's default options. The budget trapped only after it had run: 10M instructions took
    about 120 s (12 µs each); before streaming, 5-6.5 GB. A run's count follows from its code, so it is
    refused before running."""
    path = tmp_path / "forever.sofa"
    sources = {"loop": FOREVER, "loopr": FOREVER_LOOPR, "copying": FOREVER_COPYING}
    path.write_bytes(forever_bundle() if shape == "bundle" else assemble(sources[shape]).to_bytes())
    rc, rss, cpu, wall, stderr = run_measured(path)
    assert rc == 2, stderr
    assert "refused before running" in stderr
    assert f"{DEFAULT_MAX_INSTRUCTIONS:,}" in stderr or "cannot be counted ahead" in stderr
    assert rss < 500
    # CPU time is what the run costs; wall time on the shared 2-core test machine adds other processes' turns.
    assert cpu < 10, f"{wall:.1f} s wall, {cpu:.1f} s CPU"
    assert wall < 60


def test_simulator_memory_does_not_grow_with_the_instructions_run(tmp_path: Path) -> None:
    """Every event was kept until the run ended: 10M instructions took 5-6.5 GB (about 0.6 kB each)."""
    runs = {}
    for passes in (5_000, 60_000):
        path = tmp_path / f"long-{passes}.sofa"
        path.write_bytes(assemble(FOREVER.replace("16777215, body=4", f"{passes}, body=4")
                                  .replace("16777215, body=3", "3, body=3")).to_bytes())  # fmt: skip
        rc, rss, _, _, stderr = run_measured(path)
        assert rc == 0, stderr
        runs[passes] = rss
    assert runs[60_000] < 500
    assert runs[60_000] - runs[5_000] < 60, f"{runs[5_000]:.0f} MB at 50k instructions, {runs[60_000]:.0f} MB at 600k"


def test_the_budget_counts_loops_and_is_the_default_everywhere() -> None:
    """`Machine.run` defaulted to 2^32 instructions; a loop of empty loops never counted against the budget."""
    program = assemble(
        "loop count=16777215, body=2\n  loop count=16777215, body=1\n    addi rd=r1, rs=r1, imm=1\nhalt\n"
    )
    events: list = []
    with pytest.raises(
        Trap, match="at least 281,474,959,933,441 instructions, past the instruction budget of 1,000"
    ) as caught:
        Machine().run(program, {}, max_instructions=1000, on_event=events.append)
    assert caught.value.kind is TrapKind.BUDGET
    assert events == []  # refused before the first instruction
    assert executed_instructions(program.code, 10**20) == (16777215 * (1 + 16777215) + 2, -1)
    assert Machine.run.__defaults__ is not None
    assert DEFAULT_MAX_INSTRUCTIONS in Machine.run.__defaults__


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_the_count_ahead_equals_the_instructions_a_run_executes(data: st.DataObject) -> None:
    """Random loop nests of set/addi/loop/loopr/barrier: `executed_instructions` before = `executed` after."""
    lines = [f"set rd=r{r}, imm={data.draw(st.integers(-2, 4))}" for r in (1, 2, 3)]

    def block(depth: int) -> list[str]:
        body: list[str] = []
        for _ in range(data.draw(st.integers(1, 3))):
            kind = data.draw(st.sampled_from(["addi", "copy", "set", "barrier", "loop", "loopr"]))
            rd, rs = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 3))
            if kind in ("loop", "loopr") and depth < 3:
                inner = block(depth + 1)
                head = f"loop count={data.draw(st.integers(1, 4))}" if kind == "loop" else f"loopr count=r{rs}"
                body += [f"{head}, body={len(inner)}", *inner]
            elif kind == "addi":
                body.append(f"addi rd=r{rd}, rs=r{rd}, imm={data.draw(st.integers(-1, 2))}")
            elif kind == "copy":
                body.append(f"addi rd=r{rd}, rs=r{rs}, imm={data.draw(st.integers(-1, 2))}")
            elif kind == "set":
                body.append(f"set rd=r{rd}, imm={data.draw(st.integers(-1, 3))}")
            else:
                body.append("barrier")
        return body

    program = assemble("\n".join([*lines, *block(0), "halt"]) + "\n")
    count, _ = executed_instructions(program.code, 10**6)
    assume(count <= 20_000)
    assert Machine().run(program, {}).instructions_executed == count


def test_bundle_kernels_obey_the_budget_option(tmp_path: Path) -> None:
    """Kernels in a bundle ran with a 2^32 limit whatever --max-instructions said."""
    path = tmp_path / "model.sofa"
    path.write_bytes(bundle_seeds()[0])
    outcome = call_main(sofa_sim.main, [str(path), "--max-instructions", "20"])
    assert outcome.rc == 2, outcome.summary()
    assert "past the instruction budget of 20;" in outcome.stderr
    assert call_main(sofa_sim.main, [str(path)]).rc == 0


def test_sofa_run_ir_kernels_obey_the_budget_option(tmp_path: Path) -> None:
    path = tmp_path / "model.mlir"
    path.write_text(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sofa_compiler.tools.sofa_compile",
                str(FIXTURES / "attn23_mha_4d.onnx"),
                "--emit",
                "isa",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for engine in ("simulator", "interpreter"):
        argv = [str(path), "--random-inputs", "0", "--kernels", engine, "--max-instructions", "20"]
        outcome = call_main(sofa_run_ir.main, argv, timeout=60)
        assert outcome.rc == 2, outcome.summary()
        assert "past the instruction budget of 20;" in outcome.stderr


def test_a_huge_dram_size_is_refused_before_allocating(tmp_path: Path) -> None:
    """A header asking for 4 GiB was allocated and zero-filled (seconds and gigabytes per run)."""
    path = tmp_path / "big.sofa"
    path.write_bytes(Program(assemble("halt\n").code, dram_bytes=1 << 32).to_bytes())
    start = time.perf_counter()
    outcome = call_main(sofa_sim.main, [str(path)])
    assert outcome.rc == 1, outcome.summary()
    assert f"the program asks for 4,294,967,296 bytes of DRAM; the simulator allocates at most {MAX_DRAM_BYTES:,}" in (
        outcome.stderr
    )
    assert time.perf_counter() - start < 5
    small = tmp_path / "small.sofa"
    small.write_bytes(assemble("halt\n").to_bytes())
    outcome = call_main(sofa_sim.main, [str(small), "--dram-bytes", str(1 << 33)])
    assert outcome.rc == 1
    assert "--dram-bytes asks for" in outcome.stderr


def test_random_inputs_for_a_huge_argument_type_are_refused(tmp_path: Path) -> None:
    """`sofa-run-ir --random-inputs` on tensor<100000x100000x100xf32> raised numpy's _ArrayMemoryError."""
    path = tmp_path / "huge.mlir"
    huge = "tensor<100000x100000x100xf32>"
    path.write_text(f"func.func @main(%a: {huge}) -> {huge} {{\n  func.return %a : {huge}\n}}\n")
    outcome = call_main(sofa_run_ir.main, [str(path), "--random-inputs", "0"])
    assert outcome.kind == "error", outcome.summary()
    assert "8,000,000,000,000 bytes; the limit is" in outcome.stderr


def test_a_streamed_schedule_equals_the_whole_list_schedule() -> None:
    """Streaming the events as they execute gives the schedule and report of `simulate` on the whole list."""
    kernel, program = small_attention(sq=16, skv=40, tile=8, keep=0.5, causal=True)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(kernel.problem.shapes[name]) for name in "qkv")
    inputs = kernel.inputs(q, k, v)
    config = HardwareConfig()
    kept = Machine().run(program, inputs)
    whole = simulate(kept.events, config)
    timeline = StreamingTiming(config, units=program_units(program))
    streamed = Machine().run(program, inputs, on_event=timeline.add)
    result = timeline.finish()
    assert streamed.events == []
    assert result.events == []
    assert result.total_cycles == whole.total_cycles
    assert result.units == whole.units
    assert build_report(result).to_json() == build_report(whole).to_json()
    assert result.opcodes == {op: sum(e.opcode == op for e in kept.events) for op in result.opcodes}


def test_a_streamed_run_holds_only_the_unfinished_instructions() -> None:
    """A streamed run keeps no event: the machine's own list stays empty however long it runs."""
    program = assemble(FOREVER.replace("16777215, body=4", "2000, body=4").replace("16777215, body=3", "3, body=3"))
    timeline = StreamingTiming(HardwareConfig(), units=program_units(program))
    machine = Machine(dram_bytes=4096)
    result = machine.run(program, {}, on_event=timeline.add)
    assert result.instructions_executed == 2000 * (1 + 3 * 3) + 2  # outer passes of (inner loop + 3 x 3), loop, halt
    assert machine.events == []
    # The DMA units fall ever further behind the control unit; their full queues hold dispatch back.
    assert len(timeline.info) <= len(UNITS) * QUEUE_DEPTH + BATCH
