"""The `sofa` dialect's interpreter: golden semantics through xDSL's Interpreter."""

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions
from xdsl.parser import Parser

from dialects.sofa import Sofa
from sofa_compiler.interpreters.sofa import SofaFunctions
from tests.fp16_tolerance import assert_fp16_close, fp16

FUSED_AND_STAGED = """
func.func @fused(%q: tensor<1x4x96x16xf32>, %k: tensor<1x2x130x16xf32>, %v: tensor<1x2x130x8xf32>) -> tensor<1x4x96x8xf32> {
  %o = sofa.attention %q, %k, %v scale 0.25 heads 4 / 2 causal sparsity <keep = KEEP, tile = 32, radius = RADIUS> : tensor<1x4x96x16xf32>, tensor<1x2x130x16xf32>, tensor<1x2x130x8xf32> -> tensor<1x4x96x8xf32>
  func.return %o : tensor<1x4x96x8xf32>
}
func.func @staged(%q: tensor<1x4x96x16xf32>, %k: tensor<1x2x130x16xf32>, %v: tensor<1x2x130x8xf32>) -> tensor<1x4x96x8xf32> {
  %s = sofa.dlzs_score %q, %k : tensor<1x4x96x16xf32>, tensor<1x2x130x16xf32> -> tensor<1x4x96x130xf16>
  %i = sofa.sads %s scale 0.25 causal sparsity <keep = KEEP, tile = 32, radius = RADIUS> : tensor<1x4x96x130xf16> -> tensor<1x4x96x5xTILEKEEPxi32>
  %o = sofa.sufa %q, %k, %v, %i scale 0.25 tile 32 causal : tensor<1x4x96x16xf32>, tensor<1x2x130x16xf32>, tensor<1x2x130x8xf32>, tensor<1x4x96x5xTILEKEEPxi32> -> tensor<1x4x96x8xf32>
  func.return %o : tensor<1x4x96x8xf32>
}
"""


def run(source: str, symbol: str, *args: np.ndarray) -> tuple:
    ctx = Context()
    for dialect in (builtin.Builtin, func.Func, Sofa):
        ctx.load_dialect(dialect)
    module = Parser(ctx, source).parse_module()
    module.verify()
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(SofaFunctions())
    return interpreter.call_op(symbol, args)


def inputs(seed: int):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, 4, 96, 16)).astype(np.float32)
    k = rng.standard_normal((1, 2, 130, 16)).astype(np.float32)
    v = rng.standard_normal((1, 2, 130, 8)).astype(np.float32)
    return q, k, v


def numpy_causal_attention(q, k, v, scale):
    k = np.repeat(k, 2, axis=1).astype(np.float64)
    v = np.repeat(v, 2, axis=1).astype(np.float64)
    logits = q.astype(np.float64) @ np.swapaxes(k, -1, -2) * scale
    logits[..., np.triu(np.ones(logits.shape[-2:], dtype=bool), k=1)] = -np.inf
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


def program(keep: float, radius: str) -> str:
    tile_keep = str(int(np.ceil(keep * 32)))
    return FUSED_AND_STAGED.replace("TILEKEEP", tile_keep).replace("KEEP", str(keep)).replace("RADIUS", radius)


def test_keep_one_equals_numpy_softmax_attention():
    q, k, v = inputs(0)
    (out,) = run(program(1.0, "inf"), "fused", q, k, v)
    expected = numpy_causal_attention(fp16(q), fp16(k), fp16(v), 0.25)  # on the fp16 inputs SU-FA computes on
    assert_fp16_close(out, expected, v)


@pytest.mark.parametrize(("keep", "radius"), [(1.0, "inf"), (0.25, "inf"), (0.25, "2.0"), (0.5, "6.0")])
def test_stage_ops_compose_to_attention_exactly(keep, radius):
    q, k, v = inputs(1)
    (fused,) = run(program(keep, radius), "fused", q, k, v)
    (staged,) = run(program(keep, radius), "staged", q, k, v)
    np.testing.assert_array_equal(fused, staged)


def test_sparsity_changes_the_result():
    # A check that cannot pass by accident: keep = 0.25 must differ from exact.
    q, k, v = inputs(2)
    (dense,) = run(program(1.0, "inf"), "fused", q, k, v)
    (sparse,) = run(program(0.25, "inf"), "fused", q, k, v)
    assert not np.allclose(dense, sparse, atol=1e-4)


def test_interpreter_rejects_wrong_runtime_shape():
    from xdsl.utils.exceptions import InterpretationError

    q, k, v = inputs(3)
    with pytest.raises(InterpretationError, match="has shape"):
        run(program(1.0, "inf"), "fused", q[:, :, :10], k, v)
