"""Run-time additive masks (a bias) and softcap on the accelerator: bit-identical to the tiled `sofa`
interpreter, exact at keep 1.0 against softmax attention on the stored (fp16) inputs, and priced."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.interpreter import Interpreter
from xdsl.parser import Parser
from xdsl.passes import ModulePass

from passes.coordinated_tiling import CoordinatedTilingPass
from passes.lower_to_isa import LowerToIsaPass
from sofa_compiler.interpreters import register_all
from sofa_compiler.runtime import KernelError, KernelRunner
from sofa_compiler.tools.sofa_run_ir import register_kernels, sofa_context
from tests.fp16_tolerance import assert_fp16_close, fp16
from tests.sim.test_masked_kernels import bigbird, random_qkv


def module_text(
    q_len: int, kv_len: int, heads: int, depth: int, mask_shape: tuple[int, ...] | None, *, causal: bool = False,
    softcap: float = 0.0, batch: int = 1, mask_type: str = "f32",
) -> str:  # fmt: skip
    """One `sofa.attention` whose float mask (when given) is an argument of @main (known only at run time)."""
    q_type = f"tensor<{batch}x{heads}x{q_len}x{depth}xf32>"
    kv_type = f"tensor<{batch}x{heads}x{kv_len}x{depth}xf32>"
    mask = f"tensor<{'x'.join(map(str, mask_shape))}x{mask_type}>" if mask_shape is not None else None
    arguments = f"%q: {q_type}, %k: {kv_type}, %v: {kv_type}" + (f", %m: {mask}" if mask else "")
    operands = "%q, %k, %v" + (" mask %m" if mask else "")
    cap = f" softcap {softcap}" if softcap else ""
    flag = " causal" if causal else ""
    types = f"{q_type}, {kv_type}, {kv_type}" + (f", {mask}" if mask else "")
    return (
        f"func.func @main({arguments}) -> {q_type} {{\n"
        f"  %o = sofa.attention {operands} scale {depth**-0.5}{cap} heads {heads} / {heads}{flag} : "
        f"{types} -> {q_type}\n"
        f"  func.return %o : {q_type}\n}}\n"
    )


class Compiled:
    """A module compiled once (tiled, and lowered unless `lower` is false), callable many times."""

    def __init__(self, text: str, passes: list[ModulePass]):
        ctx = sofa_context()
        self.module = Parser(ctx, text).parse_module()
        for compiler_pass in passes:
            compiler_pass.apply(ctx, self.module)
        self.interpreter = Interpreter(self.module)
        register_all(self.interpreter)
        self.runner: KernelRunner | None = register_kernels(self.interpreter, self.module, "simulator")

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        (value,) = self.interpreter.call_op(self.interpreter.get_op_for_symbol("main"), inputs)
        return np.asarray(value.data, np.float32).reshape((*inputs[0].shape[:3], inputs[2].shape[3]))

    def opcodes(self) -> dict[str, int]:
        assert self.runner is not None
        return dict(self.runner.runs[-1].timing.opcodes)


def exact(inputs: list[np.ndarray], bias: np.ndarray, scale: float, softcap: float = 0.0) -> np.ndarray:
    """Softmax attention on the stored (fp16) inputs in ONNX's order (scale, softcap, + bias); rows whose bias
    is all -inf give zeros."""
    q, k, v = (fp16(x) for x in inputs)
    scores = q @ k.transpose(0, 1, 3, 2) * scale
    if softcap:
        scores = softcap * np.tanh(scores / softcap)
    scores = scores + np.asarray(bias, np.float32)
    top = scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = weights.sum(axis=-1, keepdims=True)
    return np.where(total > 0, (weights @ v) / np.where(total > 0, total, 1.0), 0.0)


def random_bias(shape: tuple[int, ...], hidden: float, seed: int, spread: float = 2.0) -> np.ndarray:
    """A float mask: a bias of N(0, spread) with a fraction `hidden` of -inf entries."""
    rng = np.random.default_rng(seed)
    bias = (spread * rng.standard_normal(shape)).astype(np.float32)
    bias[rng.random(shape) < hidden] = -np.inf
    return bias


def check(
    bias: np.ndarray, q_len: int, kv_len: int, *, heads: int = 2, depth: int = 16, keep: float = 1.0,
    causal: bool = False, softcap: float = 0.0, batch: int = 1, tile: int = 32,
) -> tuple[np.ndarray, Compiled]:  # fmt: skip
    """Run `bias` at launch: the simulator equals the tiled interpreter bit for bit; at keep 1.0 both are exact
    attention on the fp16 inputs. Returns the output and the lowered module."""
    text = module_text(q_len, kv_len, heads, depth, bias.shape, causal=causal, softcap=softcap, batch=batch)
    tiling = CoordinatedTilingPass(keep=keep, tile=tile)
    lowered, tiled = Compiled(text, [tiling, LowerToIsaPass()]), Compiled(text, [tiling])
    inputs = random_qkv(3, heads, q_len, kv_len, depth, batch)
    out = lowered(*inputs, bias)
    assert out.tobytes() == tiled(*inputs, bias).tobytes()
    if keep == 1.0:
        visible = np.broadcast_to(bias, (batch, heads, q_len, kv_len))
        if causal:
            visible = np.where(np.tri(q_len, kv_len, dtype=bool), visible, -np.inf)
        assert_fp16_close(out, exact(inputs, visible, depth**-0.5, softcap), inputs[2])
    return out, lowered


PATTERNS = {
    "dense_bias": lambda s: random_bias((s, s), 0.0, 1),
    "scattered": lambda s: random_bias((s, s), 0.3, 2),
    "blocks": lambda s: np.where(bigbird(s, 32, 0.3), random_bias((s, s), 0.0, 3), -np.inf).astype(np.float32),
    "lowest_value": lambda s: np.where(bigbird(s, 32, 0.3), 0.0, np.finfo(np.float32).min).astype(np.float32),
}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_runtime_bias_is_exact_and_matches_the_interpreter(pattern: str) -> None:
    bias = PATTERNS[pattern](150)
    _, lowered = check(bias, 150, 150)
    opcodes = lowered.opcodes()
    assert opcodes["sads.bias"] > 0
    assert opcodes["sufa.bias"] == opcodes["sads.bias"]
    assert "sads.mask" not in opcodes
    assert "sufa.step" not in opcodes


def test_bias_per_batch_and_head_with_causal_and_fully_masked_rows() -> None:
    bias = random_bias((2, 2, 100, 120), 0.4, 5)
    bias[1, 0, [3, 50]] = -np.inf
    out, _ = check(bias, 100, 120, causal=True, batch=2)
    assert (out[1, 0, [3, 50]] == 0).all()


def test_bias_broadcast_over_queries_and_heads() -> None:
    """A ``[Skv]``-per-head bias (rank 4, one query row) is not key padding: it runs on the biased kernel."""
    check(random_bias((1, 2, 1, 90), 0.2, 6), 70, 90)


def test_top_k_under_a_bias_matches_the_interpreter() -> None:
    check(random_bias((256, 256), 0.5, 7), 256, 256, keep=0.25, tile=64, depth=32, heads=1)


def test_the_tiles_visited_are_the_non_empty_ones_and_the_bias_is_priced() -> None:
    """An all -inf block pattern visits only its non-empty tiles; each visited tile loads its fp32 bias tile."""
    length, heads, tile = 256, 1, 32
    mask = bigbird(length, tile, 0.25, seed=4)
    bias = np.where(mask, random_bias((length, length), 0.0, 8), -np.inf).astype(np.float32)
    _, lowered = check(bias, length, length, heads=heads, tile=tile)
    assert lowered.runner is not None
    (run,) = lowered.runner.runs
    lanes = 128
    pairs = mask.reshape(length // lanes, lanes, length // tile, tile).any(axis=(1, 3))
    assert run.timing.opcodes["sads.bias"] == heads * int(pairs.sum())
    boolean = Compiled(module_text(length, length, heads, 16, mask.shape, mask_type="i1"), [
        CoordinatedTilingPass(keep=1.0, tile=tile), LowerToIsaPass()])  # fmt: skip
    boolean(*random_qkv(3, heads, length, length, 16), mask)
    assert boolean.runner is not None
    bitmap_bytes = boolean.runner.runs[0].report.dram_read_bytes
    # The bias tiles (lanes x Bc x 4 bytes a visited pair) are what a bias costs beyond the bitmaps.
    extra = run.report.dram_read_bytes - bitmap_bytes
    assert 0.9 * int(pairs.sum()) * lanes * tile * 4 < extra < 1.1 * int(pairs.sum()) * lanes * tile * 4


def test_a_float_mask_of_the_wrong_shape_is_a_clear_error() -> None:
    text = module_text(64, 64, 2, 16, (1, 2, 64, 64))
    lowered = Compiled(text, [CoordinatedTilingPass(keep=1.0, tile=32), LowerToIsaPass()])
    with pytest.raises(KernelError, match="compiled for masks of"):
        lowered(*random_qkv(3, 2, 64, 64, 16), np.zeros((1, 3, 64, 64), np.float32))


# --- softcap ------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_softcap_without_a_mask(causal: bool) -> None:
    length, depth = 130, 16
    text = module_text(length, length, 2, depth, None, causal=causal, softcap=0.5)
    tiling = CoordinatedTilingPass(keep=1.0, tile=32)
    lowered, tiled = Compiled(text, [tiling, LowerToIsaPass()]), Compiled(text, [tiling])
    inputs = random_qkv(9, 2, length, length, depth)
    out = lowered(*inputs)
    assert out.tobytes() == tiled(*inputs).tobytes()
    bias = np.where(np.tri(length, dtype=bool), 0.0, -np.inf) if causal else np.zeros((length, length))
    assert_fp16_close(out, exact(inputs, bias, depth**-0.5, 0.5), inputs[2])
    assert lowered.opcodes()["softcap"] == 1
    uncapped = exact(inputs, bias, depth**-0.5)
    assert np.abs(out - uncapped).max() > 10 * np.abs(out - exact(inputs, bias, depth**-0.5, 0.5)).max()


def test_softcap_with_a_runtime_bias_and_top_k() -> None:
    bias = random_bias((1, 2, 120, 120), 0.3, 10)
    check(bias, 120, 120, softcap=2.0, causal=True)
    check(bias, 120, 120, softcap=2.0, keep=0.5)


def test_softcap_with_a_key_padding_mask_is_not_folded() -> None:
    """A cap applies before the mask, so a key-padding mask cannot ride in the dot product: it is a general one."""
    padding = np.zeros((1, 1, 1, 80), np.float32)
    padding[..., 60:] = -np.inf
    _, lowered = check(padding, 50, 80, softcap=1.0)
    assert "sads.bias" in lowered.opcodes()


def bias_costs(length: int = 2048, depth: int = 64, density: float = 0.25) -> None:
    """Print simulated cycles and DRAM bytes read of one head under a BigBird-style mask given as a boolean mask,
    as an additive one (the same visibility plus a bias) and as that with a softcap: the figures docs/cost-model.md
    quotes (`python tests/sim/test_bias_masks.py`)."""
    mask = bigbird(length, 64, density, seed=1)
    bias = np.where(mask, random_bias((length, length), 0.0, 2), -np.inf).astype(np.float32)
    inputs = random_qkv(3, 1, length, length, depth)
    for name, value, element, cap in (("boolean", mask, "i1", 0.0), ("additive", bias, "f32", 0.0),
                                      ("additive+softcap", bias, "f32", 30.0)):  # fmt: skip
        text = module_text(length, length, 1, depth, value.shape, mask_type=element, softcap=cap)
        compiled = Compiled(text, [CoordinatedTilingPass(keep=1.0), LowerToIsaPass()])
        compiled(*inputs, value)
        assert compiled.runner is not None
        report = compiled.runner.runs[-1].report
        print(f"{name:17s} cycles {report.total_cycles:>9,}  DRAM read {report.dram_read_bytes:>11,} B")


if __name__ == "__main__":
    bias_costs()
