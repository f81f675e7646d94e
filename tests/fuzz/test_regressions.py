"""Regression tests for the bugs the fuzzers found: each input once gave a traceback, a hang or a crash."""

from __future__ import annotations

import io
import struct
import time
import zipfile

import numpy as np
import onnx
import pytest
from fuzzlib import FIXTURES, call_main, fix_crc, npz_bytes, run_ir_inputs, small_attention
from onnx import TensorProto, helper

from sofa_compiler.frontend import FrontendError, import_model
from sofa_compiler.isa.asm import assemble
from sofa_compiler.isa.container import ContainerError, Program
from sofa_compiler.tools import sofa_import, sofa_opt, sofa_run_ir, sofa_sim


def clean_error(outcome, *needles: str) -> None:
    assert outcome.kind == "error", outcome.summary()
    for needle in needles:
        assert needle in outcome.stderr, outcome.stderr


# --- MLIR (sofa-opt, sofa-run-ir): xDSL parser bugs ----------------------------------------------


def test_unterminated_string_literal_fails_fast(tmp_path) -> None:
    """xDSL's string regex backtracked exponentially: 40 characters without a closing quote hung for hours."""
    path = tmp_path / "x.mlir"
    path.write_text('sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566\n')
    start = time.perf_counter()
    clean_error(call_main(sofa_opt.main, [str(path)], timeout=10), "closing string literal")
    clean_error(call_main(sofa_run_ir.main, [str(path)], timeout=10), "closing string literal")
    assert time.perf_counter() - start < 5


def test_absurd_integer_width_is_a_parse_error(tmp_path) -> None:
    """`i644294967296` made xDSL compute 1 << 644294967296 (MemoryError)."""
    path = tmp_path / "x.mlir"
    path.write_text('"test.op"() {a = 0 : i644294967296} : () -> ()\n')
    clean_error(call_main(sofa_opt.main, [str(path)], timeout=10), "x.mlir:1:")


def test_parser_assertion_is_a_user_error(tmp_path) -> None:
    """A malformed complex literal tripped an assert in xDSL's parser (AssertionError traceback)."""
    path = tmp_path / "x.mlir"
    path.write_text(
        "func.func @main() -> tensor<2x2xf32> {\n"
        "  %a = host.constant dense<[[1.0, 2.0], (3.0, 4.0]]> : tensor<2x2xf32>\n"
        "  func.return %a : tensor<2x2xf32>\n}\n"
    )
    clean_error(call_main(sofa_opt.main, [str(path)]), "malformed input", "expected")
    clean_error(call_main(sofa_run_ir.main, [str(path)]), "malformed input")


# --- .sofa containers and sofa-sim ----------------------------------------------------------------


def with_dram(blob: bytes, dram: int) -> bytes:
    return fix_crc(blob[:40] + struct.pack("<Q", dram) + blob[48:])


def test_container_rejects_dram_past_32_bits() -> None:
    """A header asking for 2^63 bytes of DRAM reached np.zeros (ValueError / MemoryError traceback)."""
    blob = assemble("halt\n").to_bytes()
    for dram in (0, (1 << 32) + 1, (1 << 64) - 1):
        with pytest.raises(ContainerError, match="DRAM size"):
            Program.from_bytes(with_dram(blob, dram))
    assert Program.from_bytes(with_dram(blob, 1 << 32)).dram_bytes == 1 << 32


def test_sim_dram_bytes_option_traps_instead_of_allocating(tmp_path) -> None:
    """`--dram-bytes` bounds the machine; a program that needs more traps at load (not 4 GiB of zero-fill)."""
    path = tmp_path / "p.sofa"
    path.write_bytes(with_dram(assemble("halt\n").to_bytes(), 1 << 32))
    outcome = call_main(sofa_sim.main, [str(path), "--dram-bytes", "65536", "--json"])
    assert outcome.rc == 2, outcome.summary()
    assert "needs 4294967296 bytes of DRAM" in outcome.stderr


def test_sim_instruction_budget_traps_runaway_loops(tmp_path) -> None:
    """Four nested loops of 2^24 - 1 iterations: a trap after the budget, not 2^96 instructions."""
    source = "".join(f"{'  ' * i}loop count=16777215, body={4 - i}\n" for i in range(4)) + "        barrier\nhalt\n"
    path = tmp_path / "p.sofa"
    path.write_bytes(assemble(source).to_bytes())
    start = time.perf_counter()
    outcome = call_main(sofa_sim.main, [str(path), "--max-instructions", "5000"], timeout=20)
    assert outcome.rc == 2, outcome.summary()
    assert "past the instruction budget of 5,000; refused before running" in outcome.stderr
    assert time.perf_counter() - start < 10
    assert sofa_sim.parse_arguments([str(path)]).max_instructions == sofa_sim.DEFAULT_MAX_INSTRUCTIONS
    clean_error(call_main(sofa_sim.main, [str(path), "--max-instructions", "0"]), "positive integer")


def corrupt_member(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz whose first member's data has a flipped byte (bad CRC-32)."""
    blob = bytearray(npz_bytes(arrays))
    with zipfile.ZipFile(io.BytesIO(bytes(blob))) as archive:
        info = archive.infolist()[0]
    blob[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF
    return bytes(blob)


def test_sim_corrupt_npz_is_a_clean_error(tmp_path) -> None:
    """A member with a bad CRC raised zipfile.BadZipFile through sofa-sim; a .npy crashed `with`."""
    _, program = small_attention()
    prog = tmp_path / "p.sofa"
    prog.write_bytes(program.to_bytes())
    bad = tmp_path / "bad.npz"
    bad.write_bytes(corrupt_member({"q": np.zeros((8, 8), np.float32)}))
    clean_error(call_main(sofa_sim.main, [str(prog), "--inputs", str(bad)]), "not a valid .npz file")
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    clean_error(call_main(sofa_sim.main, [str(prog), "--inputs", str(npy)]), "not an .npz archive")


def test_run_ir_corrupt_npz_is_a_clean_error(tmp_path) -> None:
    from fuzzlib import RUN_IR_SOURCE

    source = tmp_path / "f.mlir"
    source.write_text(RUN_IR_SOURCE)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(corrupt_member(run_ir_inputs()))
    clean_error(call_main(sofa_run_ir.main, [str(source), "--inputs", str(bad)]), "not a valid .npz file")


# --- ONNX (sofa-import) ---------------------------------------------------------------------------


def fixture(name: str) -> onnx.ModelProto:
    return onnx.load(str(FIXTURES / f"{name}.onnx"))


def expect_frontend_error(model: onnx.ModelProto, match: str, tmp_path) -> None:
    with pytest.raises(FrontendError, match=match):
        import_model(model)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    clean_error(call_main(sofa_import.main, [str(path)]), "sofa-import: error:")


def test_dangling_input_is_invalid_onnx(tmp_path) -> None:
    """A node input nobody produces was a KeyError ("internal error")."""
    model = fixture("torch_sdpa_mask")
    model.graph.node[-1].input[1] = "missing"
    expect_frontend_error(model, "not valid ONNX", tmp_path)


def test_unknown_element_type_in_value_info(tmp_path) -> None:
    """elem_type 99 in value_info was a KeyError in tensor_dtype_to_np_dtype."""
    model = fixture("attn23_mha_4d")
    model.graph.output[0].type.tensor_type.elem_type = 99
    with pytest.raises(FrontendError):
        import_model(model)


def test_corrupt_initializer_data(tmp_path) -> None:
    """raw_data shorter than the dims was a numpy reshape ValueError."""
    model = fixture("attn24_projection")
    init = model.graph.initializer[0]
    init.raw_data = init.raw_data[:3]
    with pytest.raises(FrontendError):
        import_model(model)


def test_attention_operand_shapes_that_do_not_fit(tmp_path) -> None:
    """K and V lengths that differ surfaced as "internal error: the imported IR does not verify"."""
    model = fixture("attn23_mha_4d")
    model.graph.input[2].type.tensor_type.shape.dim[2].dim_value = 6
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 5
    expect_frontend_error(model, "Attention node .*shapes do not fit together", tmp_path)


def test_bfloat16_input_is_unsupported_not_internal(tmp_path) -> None:
    model = fixture("torch_sdpa_mask")
    model.graph.input[3].type.tensor_type.elem_type = TensorProto.BFLOAT16
    with pytest.raises(FrontendError) as info:
        import_model(model)
    assert "internal" not in info.value.message


def test_3d_hidden_size_not_divisible_by_heads(tmp_path) -> None:
    """q_num_heads larger than the hidden size gave a zero head dim and ZeroDivisionError."""
    model = fixture("attn23_gqa_3d_causal")
    for attr in model.graph.node[0].attribute:
        if attr.name == "q_num_heads":
            attr.i = 64
        if attr.name == "kv_num_heads":
            attr.i = 32
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_param = "hidden"
    expect_frontend_error(model, "Q hidden size 32 does not split into 64 heads", tmp_path)


def test_past_causal_mask_that_does_not_broadcast(tmp_path) -> None:
    """A mask with a past cache and is_causal went to np.broadcast_shapes (ValueError)."""
    model = fixture("attn24_past_causal")
    node = model.graph.node[0]
    node.input[3] = "mask"
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [3, 5]))
    expect_frontend_error(model, "attn_mask shape", tmp_path)


def test_pattern_with_mismatched_ranks(tmp_path) -> None:
    """A MatMul-Softmax-MatMul core with a 5-D K reached the IR verifier ("internal error")."""
    model = fixture("torch_sdpa_mask")
    model.graph.input[1].type.tensor_type.shape.dim.add().dim_value = 4
    model.graph.ClearField("value_info")
    with pytest.raises(FrontendError) as info:
        import_model(model)
    assert "internal" not in info.value.message


# --- TOML configs and assembly --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[target]\ndram_latency_ns = inf", "must be a finite number"),
        ("[target]\nclock_mhz = nan", "must be a finite number"),
        ("[target]\ntemp_sram = 9223372036854775807", "must be <= 1073741824"),
        ("[timing]\ndma_setup_cycles = 99999999999", "must be <= 1048576"),
        ("[energy]\ndram_pj_per_bit = 1e300", "must be <= 1000000000.0"),
    ],
)
def test_config_rejects_non_finite_and_absurd_values(tmp_path, line: str, message: str) -> None:
    """inf latencies crashed the timing model (OverflowError); 2^63-byte SRAMs crashed np.zeros."""
    from sofa_compiler.sim.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=message):
        parse_config(line + "\n", "x.toml")
    config = tmp_path / "x.toml"
    config.write_text(line + "\n")
    program = tmp_path / "p.sofa"
    program.write_bytes(assemble("halt\n").to_bytes())
    clean_error(call_main(sofa_sim.main, [str(program), "--config", str(config)]), message)


@pytest.mark.parametrize(
    "directive",
    [
        ".symbol o output f32 [128999999999999999999998] @0",
        ".symbol c const f32 [4294967296] @256",
        ".symbol c const f32 [4] @4294967296",
        ".symbol c const f32 [65536,65536] @0",
        ".data -1 0000803f",
    ],
)
def test_assembler_rejects_values_past_32_bits(tmp_path, directive: str) -> None:
    """Huge dims or addresses reached np.prod (OverflowError) or struct.pack (struct.error)."""
    source = tmp_path / "x.s"
    source.write_text(directive + "\nhalt\n")
    from sofa_compiler.tools import sofa_as

    clean_error(call_main(sofa_as.main, [str(source), "-o", str(tmp_path / "x.sofa")]), "x.s:1:")


# --- Saved fuzz reproducers -----------------------------------------------------------------------

CORPUS = sorted((FIXTURES.parent / "fuzz" / "corpus").iterdir())


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_saved_reproducers_fail_cleanly(path, tmp_path) -> None:
    """Inputs that once crashed or hung an entry point (see the file names) now give a clean error.

    MLIR reproducers are stored as `.mlir-fuzz` so lit does not collect them as tests.
    """
    if path.suffix == ".mlir-fuzz":
        copy = tmp_path / path.with_suffix(".mlir").name
        copy.write_bytes(path.read_bytes())
        path = copy
    if path.suffix == ".npz":  # both .npz readers: sofa-sim's and sofa-run-ir's
        from fuzzlib import RUN_IR_SOURCE

        program, source = tmp_path / "p.sofa", tmp_path / "f.mlir"
        program.write_bytes(small_attention()[1].to_bytes())
        source.write_text(RUN_IR_SOURCE)
        clean_error(call_main(sofa_sim.main, [str(program), "--inputs", str(path)]), "npz")
        clean_error(call_main(sofa_run_ir.main, [str(source), "--inputs", str(path)]), "npz")
        return
    main = {".onnx": sofa_import.main, ".mlir": sofa_opt.main}[path.suffix]
    clean_error(call_main(main, [str(path)], timeout=20))


def test_attribute_type_is_checked_against_the_schema(tmp_path) -> None:
    """An INTS attribute given as INT: the ONNX checker now rejects it before the importer's `len(int)`."""
    model = fixture("torch_sdpa_mask")
    node = next(n for n in model.graph.node if n.op_type == "Transpose")
    node.ClearField("attribute")
    node.attribute.append(helper.make_attribute("perm", 3))
    expect_frontend_error(model, "not valid ONNX: Mismatched attribute type", tmp_path)


def test_hexadecimal_float_constants_reparse_as_their_bit_pattern() -> None:
    # xDSL prints -inf in a dense literal as 0xFF800000 but parsed it back as 4286578688.0,
    # so the printed IR of a key-padding mask (a -inf bias column) computed other numbers.
    from sofa_compiler.context import sofa_context
    from sofa_compiler.parser import SofaParser

    text = 'builtin.module { "test.op"() {v = dense<[0xFF800000, 0x7F800000, 1.5]> : tensor<3xf32>} : () -> () }'
    module = SofaParser(sofa_context(), text).parse_module()
    values = next(iter(module.body.block.ops)).attributes["v"].get_values()
    assert list(values) == [-np.inf, np.inf, 1.5]
    half = 'builtin.module { "test.op"() {v = dense<0xFC00> : tensor<2xf16>} : () -> () }'
    module = SofaParser(sofa_context(), half).parse_module()
    assert list(next(iter(module.body.block.ops)).attributes["v"].get_values()) == [-np.inf, -np.inf]


@pytest.mark.parametrize("literal", ["0xFFFFFFFFFF", "-0x1"])
def test_hexadecimal_float_that_does_not_fit_is_a_parse_error(literal: str, tmp_path) -> None:
    source = tmp_path / "hex.mlir"
    source.write_text(f'"test.op"() {{v = dense<[{literal}, 1.0]> : tensor<2xf32>}} : () -> ()\n')
    clean_error(call_main(sofa_opt.main, [str(source)]), f"hexadecimal literal {literal} does not fit f32")
