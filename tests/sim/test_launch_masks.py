"""Masks computed at run time on the accelerator: the host builds the index lists and bitmaps at launch
(`lower_to_isa.masked.launch_tables`) into the kernel's worst-case inputs."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.interpreter import Interpreter
from xdsl.parser import Parser

from dialects.numerics import tile_mask_of_array
from dialects.sofa_isa import ProgramOp
from passes.coordinated_tiling import CoordinatedTilingPass
from passes.lower_to_isa import LowerToIsaPass
from sofa_compiler.interpreters import register_all
from sofa_compiler.isa.container import Program
from sofa_compiler.isa.ir import ir_to_program
from sofa_compiler.runtime import KernelError, KernelRunner
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine, random_inputs, run_with_timing
from sofa_compiler.tools.sofa_run_ir import register_kernels, sofa_context
from tests.fp16_tolerance import assert_fp16_close
from tests.sim.test_masked_kernels import PATTERNS, bigbird, exact_masked, random_qkv

TILING = CoordinatedTilingPass(keep=1.0, tile=32)
TILING_CHOSEN = CoordinatedTilingPass(keep=1.0)


def runtime_mask_module(mask_shape: tuple[int, ...], heads: int, depth: int, q_len: int, kv_len: int,
                        causal: bool = False, batch: int = 1) -> str:  # fmt: skip
    """One `sofa.attention` whose boolean mask is an argument of @main (known only at run time)."""
    q_type = f"tensor<{batch}x{heads}x{q_len}x{depth}xf32>"
    kv_type = f"tensor<{batch}x{heads}x{kv_len}x{depth}xf32>"
    mask_type = f"tensor<{'x'.join(map(str, mask_shape))}xi1>"
    flag = " causal" if causal else ""
    return (
        f"func.func @main(%q: {q_type}, %k: {kv_type}, %v: {kv_type}, %m: {mask_type}) -> {q_type} {{\n"
        f"  %o = sofa.attention %q, %k, %v mask %m scale {depth**-0.5} heads {heads} / {heads}{flag} : "
        f"{q_type}, {kv_type}, {kv_type}, {mask_type} -> {q_type}\n"
        f"  func.return %o : {q_type}\n}}\n"
    )


class Compiled:
    """A module compiled once (tiled, and lowered unless `lower` is false), callable many times."""

    def __init__(self, text: str, lower: bool = True):
        ctx = sofa_context()
        self.module = Parser(ctx, text).parse_module()
        for compiler_pass in [TILING, LowerToIsaPass()] if lower else [TILING]:
            compiler_pass.apply(ctx, self.module)
        self.interpreter = Interpreter(self.module)
        register_all(self.interpreter)
        self.runner: KernelRunner | None = register_kernels(self.interpreter, self.module, "simulator")

    def __call__(self, inputs: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
        main = self.interpreter.get_op_for_symbol("main")
        (value,) = self.interpreter.call_op(main, (*inputs, mask))
        return np.asarray(value.data, np.float32).reshape((*inputs[0].shape[:3], inputs[2].shape[3]))


def check(mask: np.ndarray, heads: int = 2, depth: int = 16, causal: bool = False, batch: int = 1) -> Compiled:
    """Run `mask` at launch: equal to the tiled interpreter bit for bit and to exact masked attention
    within fp16 tolerance; returns the lowered program."""
    q_len, kv_len = mask.shape[-2:]
    text = runtime_mask_module(mask.shape, heads, depth, q_len, kv_len, causal, batch)
    inputs = random_qkv(3, heads, q_len, kv_len, depth, batch)
    lowered, tiled = Compiled(text), Compiled(text, lower=False)
    assert lowered.runner is not None
    assert tiled.runner is None
    out = lowered(inputs, mask)
    assert out.tobytes() == tiled(inputs, mask).tobytes()
    visible = mask & np.tri(q_len, kv_len, dtype=bool) if causal else mask
    assert_fp16_close(out, exact_masked(inputs, visible), inputs[2])
    return lowered


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_runtime_mask_is_exact_and_matches_the_interpreter(pattern: str) -> None:
    check(PATTERNS[pattern](300))


def test_runtime_mask_per_batch_and_head_with_causal() -> None:
    rng = np.random.default_rng(11)
    check(rng.random((2, 2, 150, 170)) < 0.3, causal=True, batch=2)


def test_runtime_mask_broadcast_over_queries() -> None:
    """A ``[B, 1, 1, Skv]``-style mask of rank 3 broadcasts over heads and queries at launch."""
    mask = np.random.default_rng(2).random((1, 1, 90)) < 0.5
    lowered = Compiled(runtime_mask_module(mask.shape, 2, 16, 70, 90))
    inputs = random_qkv(4, 2, 70, 90, 16)
    out = lowered(inputs, mask)
    assert_fp16_close(out, exact_masked(inputs, np.broadcast_to(mask[0], (70, 90))), inputs[2])


def test_two_masks_through_one_program() -> None:
    """The same compiled program gives each mask its own result; the tiles visited follow each mask."""
    length, heads = 256, 2
    masks = [bigbird(length, 32, 0.2, seed=1), bigbird(length, 32, 0.6, seed=2)]
    lowered = Compiled(runtime_mask_module(masks[0].shape, heads, 16, length, length))
    inputs = random_qkv(5, heads, length, length, 16)
    outs = [lowered(inputs, mask) for mask in masks]
    for out, mask in zip(outs, masks, strict=True):
        assert_fp16_close(out, exact_masked(inputs, mask), inputs[2])
    assert not np.allclose(outs[0], outs[1])
    assert lowered.runner is not None
    runs = lowered.runner.runs
    lanes = 128
    for run, mask in zip(runs, masks, strict=True):
        visited = tile_mask_of_array(mask, lanes, 32).visited
        assert sum(n for op, n in run.timing.opcodes.items() if op.startswith("sads")) == heads * visited
        assert run.mask_build_seconds > 0
    assert runs[0].report.total_cycles < runs[1].report.total_cycles


def test_all_false_rows_give_zeros() -> None:
    mask = PATTERNS["scattered"](200)
    mask[[0, 77, 199]] = False
    lowered = check(mask)
    inputs = random_qkv(3, 2, 200, 200, 16)
    out = lowered(inputs, mask)
    assert (out[:, :, [0, 77, 199]] == 0).all()
    assert (lowered(inputs, np.zeros_like(mask)) == 0).all()


def test_a_mask_of_the_wrong_shape_is_a_clear_error() -> None:
    lowered = Compiled(runtime_mask_module((1, 2, 64, 64), 2, 16, 64, 64))
    inputs = random_qkv(3, 2, 64, 64, 16)
    with pytest.raises(KernelError, match="compiled for masks of"):
        lowered(inputs, np.ones((1, 3, 64, 64), bool))


def launch_program(text: str, tiling: CoordinatedTilingPass = TILING) -> Program:
    """The one kernel program `text` lowers to."""
    ctx = sofa_context()
    module = Parser(ctx, text).parse_module()
    tiling.apply(ctx, module)
    LowerToIsaPass().apply(ctx, module)
    return ir_to_program(next(op for op in module.walk() if isinstance(op, ProgramOp)))


def test_random_inputs_give_a_valid_launch_table() -> None:
    """Standalone runs (`sofa-sim` on a program) draw random inputs: the launch tables are zeros, a valid walk
    that visits nothing (every key masked), so the output is zeros."""
    program = launch_program(runtime_mask_module((64, 64), 2, 16, 64, 64))
    inputs = random_inputs(program, seed=1)
    assert not inputs["masktab"].any()
    config = load_config(None)
    machine = Machine.from_target(config.as_target_dict(), dram_bytes=program.dram_bytes)
    result, _ = run_with_timing(machine, program, inputs, config)
    assert not result.outputs["o"].any()


def launch_build_times(length: int = 4096, depth: int = 128) -> None:
    """Print the host's build time of a run-time mask's tables (S x S, one shared mask) and the worst-case
    table sizes: the figure docs/isa.md quotes (`python tests/sim/test_launch_masks.py`)."""
    import time

    from sofa_compiler.runtime import stage_launch_mask

    # The tile the tiling pass chooses.
    program = launch_program(runtime_mask_module((length, length), 1, depth, length, length), TILING_CHOSEN)
    sizes = {symbol.name: symbol.size for symbol in program.symbols}
    masks = {
        "bigbird 10%": bigbird(length, 64, 0.10),
        "scattered 20%": np.random.default_rng(0).random((length, length)) < 0.2,
        "causal": np.tri(length, length, dtype=bool),
    }
    for name, mask in masks.items():
        start = time.perf_counter()
        seconds = min(stage_launch_mask(program, mask, (1, 1, length, depth), length).seconds for _ in range(3))
        total = (time.perf_counter() - start) / 3
        print(
            f"{length} x {length} {name:14s} host build {seconds * 1e3:6.1f} ms (whole staging, mean of 3: {total * 1e3:6.1f} ms);"
            f" worst case: masktab {sizes['masktab']} B, maskbits {sizes['maskbits']} B"
        )


if __name__ == "__main__":
    launch_build_times()
