"""ISA encoding, container, assembler, IR and functional-machine tests."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from dialects import numerics
from dialects.sofa_isa import OPS, Dram, Sram
from sofa_compiler.interpreters.sofa_isa import run_ir
from sofa_compiler.isa.asm import AsmError, assemble, disassemble
from sofa_compiler.isa.container import ContainerError, Program, Segment, Symbol, dtype_name
from sofa_compiler.isa.encoding import DecodeError, EncodeError, Instruction, decode, encode, make
from sofa_compiler.isa.ir import ir_to_program, program_to_ir
from sofa_compiler.kernels import AttentionKernel, AttentionProblem, compile_attention
from sofa_compiler.sim.events import Buffer, Unit
from sofa_compiler.sim.functional import InputError, Machine
from sofa_compiler.sim.traps import Trap, TrapKind
from tests.fp16_tolerance import assert_fp16_close, fp16


def sample_value(field):
    """A legal, non-trivial value for every field kind (exercises high bits)."""
    match field.kind:
        case "sram":
            return Sram("temp", 7, 4096 * 3)
        case "dram":
            return Dram(15, 0xFFFF_FF00)
        case "reg":
            return 9
        case "int":
            return field.lo + 3
        case "f32":
            return 0.125 if field.name == "scale" else 6.5
        case "dtype":
            return "f16"
        case "flag":
            return 1
        case _:
            return field.hi if field.name != "m" else 1


@pytest.mark.parametrize("spec", OPS, ids=lambda s: s.mnemonic)
def test_encoding_round_trip_every_opcode(spec):
    args = {f.name: sample_value(f) for f in spec.fields}
    if spec.mnemonic in ("sads",):
        args["keys"] = args["m"] = 17
    if spec.mnemonic == "sads.budget":
        args.update(keys=17, m=17, quota=9, far=5)
    if spec.mnemonic == "sufa.step":
        args["window"], args["m"] = 20, 20
    signal = 0b1010_0101 if spec.unit != "ctrl" or spec.mnemonic == "post" else 0
    wait = 0b0101_1010 if spec.unit != "ctrl" else 0
    instr = make(spec.mnemonic, wait, signal, **args)
    word = encode(instr)
    assert len(word) == 32
    assert word[0] == spec.opcode
    assert decode(word) == instr
    # Text round trip too.
    program = Program([instr])
    assert assemble(disassemble(program)).to_bytes() == program.to_bytes()


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("set", {"rd": 16, "imm": 0}, "field 'rd' = r16 out of range [0, 15]"),
        ("set", {"rd": 1, "imm": 1 << 31}, "field 'imm' = 2147483648 out of range"),
        ("loop", {"count": 0, "body": 1}, "field 'count' = 0 out of range [1, 16777215]"),
        ("sufa.init", {"lanes": 4096, "vdepth": 8}, "field 'lanes' = 4096 out of range [1, 4095]"),
        (
            "dma.load",
            {"dst": Sram("scratch", 0, 0), "src": Dram(0, 0), "rows": 1, "row_bytes": 1, "src_stride": 0},
            "unknown SRAM buffer 'scratch'",
        ),
        (
            "dma.load",
            {"dst": Sram("temp", 0, 1 << 18), "src": Dram(0, 0), "rows": 1, "row_bytes": 1, "src_stride": 0},
            "SRAM offset 262144 out of range",
        ),
        (
            "sufa.norm",
            {"out": Sram("temp", 0, 1), "lanes": 1, "vdepth": 1},
            "offset 1 is not aligned to its 2-byte elements",
        ),
        ("rass", {"idx": Sram("temp", 0, 0), "out": Sram("temp", 0, 0), "lanes": 1}, "missing field(s) m"),
    ],
)
def test_field_range_errors(op, args, message):
    with pytest.raises(EncodeError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make(op, **args)


def test_mask_and_cross_field_errors():
    with pytest.raises(EncodeError, match="wait mask 256 out of range"):
        make("sufa.init", wait=256, lanes=1, vdepth=1)
    with pytest.raises(EncodeError, match="control instructions cannot wait"):
        make("barrier", wait=1)
    with pytest.raises(EncodeError, match="m = 9 exceeds keys = 8"):
        make(
            "sads",
            scores=Sram("temp", 0, 0),
            out=Sram("temp", 0, 0),
            lanes=1,
            keys=8,
            m=9,
            radius=math.inf,
            key_base=0,
            query_base=0,
            kv_len=8,
            causal=0,
        )
    with pytest.raises(EncodeError, match=r"'radius' = -1\.0 must be positive"):
        make(
            "sads",
            scores=Sram("temp", 0, 0),
            out=Sram("temp", 0, 0),
            lanes=1,
            keys=8,
            m=1,
            radius=-1.0,
            key_base=0,
            query_base=0,
            kv_len=8,
            causal=0,
        )


def test_decoder_rejects_illegal_words():
    with pytest.raises(DecodeError, match="illegal opcode 0x00"):
        decode(bytes(32))
    with pytest.raises(DecodeError, match="illegal opcode 0xff"):
        decode(b"\xff" + bytes(31))
    word = bytearray(encode(make("halt")))
    word[31] = 1
    with pytest.raises(DecodeError, match="reserved bits"):
        decode(bytes(word))
    word = bytearray(
        encode(make("dma.load", dst=Sram("temp", 0, 0), src=Dram(0, 0), rows=1, row_bytes=1, src_stride=0))
    )
    word[3] |= 0b11  # buffer code 3
    with pytest.raises(DecodeError, match="illegal SRAM buffer code 3"):
        decode(bytes(word))
    with pytest.raises(DecodeError, match="expected 32"):
        decode(bytes(5))


def test_container_round_trip_and_corruption():
    kernel = compile_attention(AttentionProblem(128, 64, 16, 16), keep=0.5, tile=32)
    # The compiled kernel (bound to its target's config hash) plus a DRAM-image segment.
    program = replace(kernel.program, segments=[Segment(0, np.arange(10, dtype=np.int8).tobytes())])
    blob = program.to_bytes()
    again = Program.from_bytes(blob)
    assert again.to_bytes() == blob
    assert again.config_hash == bytes.fromhex(kernel.compiled.config.config_hash()) != bytes(32)
    assert again.symbols == program.symbols
    assert again.segments == program.segments
    with pytest.raises(ContainerError, match="truncated container"):
        Program.from_bytes(blob[:50])
    with pytest.raises(ContainerError, match="truncated container"):
        Program.from_bytes(blob[:-3])
    with pytest.raises(ContainerError, match="magic"):
        Program.from_bytes(b"ELF!" + blob[4:])
    corrupt = bytearray(blob)
    corrupt[200] ^= 0xFF
    with pytest.raises(ContainerError, match="checksum mismatch"):
        Program.from_bytes(bytes(corrupt))
    with pytest.raises(ContainerError, match="trailing bytes"):
        Program.from_bytes(blob + b"\0")


def test_asm_errors_name_line_and_column():
    with pytest.raises(AsmError, match=r"t\.s:2:1: unknown instruction 'frob'"):
        assemble("halt\nfrob x=1\n", "t.s")
    with pytest.raises(AsmError, match=r"t\.s:1:12: set: field 'imm' = 4294967296 out of range"):
        assemble("set rd=r1, imm=0x100000000\n", "t.s")
    with pytest.raises(AsmError, match=r"t\.s:1:12: set has no field 'bogus'"):
        assemble("set rd=r1, bogus=3\n", "t.s")
    with pytest.raises(AsmError, match=r"t\.s:1:1: unknown directive '.frob'"):
        assemble(".frob 1\n", "t.s")


def _attention_case(
    problem: AttentionProblem, keep: float, radius: float | None = None, tile: int = 64, seed: int = 0
) -> tuple[AttentionKernel, tuple[np.ndarray, ...]]:
    """The compiler's kernel for `problem` (``radius`` in logits) and random fp32 Q, K, V for it."""
    kernel = compile_attention(problem, keep=keep, tile=tile, radius=radius)
    rng = np.random.default_rng(seed)
    return kernel, tuple(rng.standard_normal(problem.shapes[name]).astype(np.float32) for name in "qkv")


def _run(kernel: AttentionKernel, qkv: tuple[np.ndarray, ...], program: Program | None = None):
    program = program or kernel.program
    return Machine(None, program.dram_bytes).run(program, kernel.inputs(*qkv))


def _reference(kernel: AttentionKernel, qkv: tuple[np.ndarray, ...], keep: float, radius: float | None = None):
    p = kernel.problem
    bias = numerics.mask_to_bias(None, p.causal, p.sq, p.skv)
    tile = kernel.tiling.tile.data
    return numerics.sofa_attention(*qkv, bias, p.logit_scale, keep, tile, radius or math.inf)


ONE_HEAD = AttentionProblem(256, 200, 64, 32)


@pytest.mark.parametrize(
    ("problem", "radius"),
    [
        (ONE_HEAD, None),
        (replace(ONE_HEAD, causal=True), 1.0),
        (AttentionProblem(200, 136, 64, 32, batch=2, q_heads=4, kv_heads=2, causal=True), None),
    ],
    ids=["one-head", "causal-sphere", "gqa-batch-causal"],
)
def test_attention_pipeline_matches_sofa_semantics_exactly(problem, radius):
    kernel, qkv = _attention_case(problem, 0.25, radius)
    # Through the container, as a .sofa file would be.
    result = _run(kernel, qkv, Program.from_bytes(kernel.program.to_bytes()))
    assert np.array_equal(kernel.output(result.outputs["o"]), _reference(kernel, qkv, 0.25, radius))
    # Bounded program size: loops, not unrolled tiles, so 4x or 8x longer sequences give the same code size
    # (a causal period unrolls a few rounds of up to four tile steps, `tile_plan.DEEP_BUFFER_SETS`).
    longer = [
        compile_attention(replace(problem, sq=problem.sq * f, skv=problem.skv * f), keep=0.25, tile=64, radius=radius)
        for f in (4, 8)
    ]
    assert len(longer[0].program.code) == len(longer[1].program.code) < 240


def test_attention_pipeline_keep_one_is_dense_attention():
    kernel, qkv = _attention_case(ONE_HEAD, 1.0)
    out = kernel.output(_run(kernel, qkv).outputs["o"])
    stored = [fp16(x) for x in qkv]  # exact attention on the fp16 inputs the kernel computes on
    dense = numerics.dense_attention(*stored, numerics.mask_to_bias(None, False, 256, 200), kernel.problem.logit_scale)
    assert_fp16_close(out, dense, qkv[2])


def test_attention_pipeline_is_deterministic_and_counts_work():
    kernel, qkv = _attention_case(replace(ONE_HEAD, causal=True), 0.25)
    again, _ = _attention_case(replace(ONE_HEAD, causal=True), 0.25)
    assert kernel.program.to_bytes() == again.program.to_bytes()
    a, b = _run(kernel, qkv), _run(again, qkv)
    assert np.array_equal(a.outputs["o"], b.outputs["o"])
    assert a.events == b.events
    units = {e.unit for e in a.events}
    assert {Unit.DMA_LOAD, Unit.DMA_PREFETCH, Unit.DMA_STORE, Unit.DLZS, Unit.SADS, Unit.SUFA, Unit.CTRL} <= units
    steps = [e for e in a.events if e.opcode == "sufa.step"]
    # Causal: the first query tile (keys < 128) needs KV tiles 0 and 1 only, the second all 4 tiles.
    assert len(steps) == 2 + 4
    assert all(e.work.exps > 0 and e.work.macs > 0 for e in steps)
    assert all(e.work.dense_ops == 2 * 128 * 64 * (64 + 32) for e in steps)
    sads = [e for e in a.events if e.opcode == "sads"]
    assert len(sads) == len(steps)
    assert all(e.work.sort_rounds > 0 for e in sads)
    stores = [e for e in a.events if e.opcode == "dma.store"]
    assert sum(e.work.dram_write_bytes for e in stores) == 256 * 32 * numerics.DATAPATH.nbytes
    gathers = [e for e in a.events if e.opcode == "dma.gather"]
    # On-demand K/V: the gathers read less than the whole K and V per query tile.
    assert sum(e.work.dram_read_bytes for e in gathers) < 2 * 200 * (64 + 32) * numerics.DATAPATH.nbytes
    assert a.sram_peak.bytes_used[Buffer.TEMP] > 0
    # Token masks are recorded for the timing model: SADS waits for A-hat (s1) and a free index set (s6).
    assert (sads[0].wait_mask, sads[0].signal_mask) == (0b100_0010, 0b10_0100)
    assert sads[0].text.startswith("sads scores=temp[")


def test_ir_round_trip_and_interpreter_match_machine():
    kernel, qkv = _attention_case(AttentionProblem(128, 128, 64, 32), 0.25)
    program = kernel.program
    module = program_to_ir(program)
    module.verify()
    assert ir_to_program(module).to_bytes() == program.to_bytes()
    text = disassemble(program)
    assert disassemble(assemble(text)) == text
    assert assemble(text).to_bytes() == program.to_bytes()
    via_ir = run_ir(module, kernel.inputs(*qkv))
    direct = _run(kernel, qkv)
    assert np.array_equal(via_ir.outputs["o"], direct.outputs["o"])
    assert via_ir.events == direct.events


def _slot_symbols(entries: list[tuple[str, str, np.ndarray]]) -> list[Symbol]:
    """DRAM symbols for (name, kind, value), one 4 KiB slot each (every value here fits one)."""
    return [
        Symbol(name, kind, dtype_name(value.dtype), value.shape, 4096 * slot, value.nbytes)
        for slot, (name, kind, value) in enumerate(entries)
    ]


def test_dlzs_key_and_kvgen_match_numerics():
    rng = np.random.default_rng(3)
    rows, hidden, cols = 16, 32, 8
    x = rng.standard_normal((rows, hidden)) * 3
    w = rng.standard_normal((hidden, cols))
    x_int, x_exp = numerics.quantize_token_rows(x)
    codes, base = numerics.wk_to_lz(w)
    xf = x.astype(np.float32)
    wv = w.astype(np.float32)
    inputs = {
        "x": x_int,
        "xexp": x_exp.astype(np.int8),
        "xf": xf,
        "wv": wv,
        "list": np.array([3, 103, 100, 115], np.int32),
    }
    outputs = {"khat": np.zeros((rows, cols), np.float16), "vrows": np.zeros((rows, cols), np.float32)}
    symbols = _slot_symbols(
        [*((n, "input", a) for n, a in inputs.items()), ("wk", "const", codes)]
        + [(n, "output", a) for n, a in outputs.items()]
    )
    at = {symbol.name: symbol for symbol in symbols}

    def load(name: str, dst: Sram) -> Instruction:
        sym = at[name]
        return make("dma.load", dst=dst, src=Dram(0, sym.address), rows=1, row_bytes=sym.size, src_stride=0)

    def store(name: str, src: Sram) -> Instruction:
        sym = at[name]
        return make("dma.store", src=src, dst=Dram(0, sym.address), rows=1, row_bytes=sym.size, dst_stride=0)

    # SRAM places, by buffer: tokens (8-bit, exponents, fp32), weights (LZ codes, W_v), temp (K-hat, list, V rows).
    x8, exps, x32 = Sram("token", 0, 0), Sram("token", 0, 1024), Sram("token", 0, 2048)
    lz, w_v = Sram("weight", 0, 0), Sram("weight", 0, 4096)
    khat, listed, v_rows = Sram("temp", 0, 0), Sram("temp", 0, 4096), Sram("temp", 0, 8192)
    generate = {"key_base": 7, "window": rows, "hidden": hidden, "cols": cols, "dtype": "f32", "mode": 0}
    code = [
        load("x", x8),
        load("xexp", exps),
        load("wk", lz),
        make("dlzs.key", x=x8, xexp=exps, w=lz, out=khat, rows=rows, hidden=hidden, cols=cols, base=base),
        store("khat", khat),
        make("set", rd=7, imm=100),
        load("xf", x32),
        load("wv", w_v),
        load("list", listed),
        make("kvgen", x=x32, w=w_v, out=v_rows, list=listed, bias=lz, **generate),
        store("vrows", v_rows),
        make("halt"),
    ]
    segments = [Segment(at["wk"].address, codes.tobytes())]
    program = Program(code, symbols, segments, dram_bytes=4096 * len(symbols))
    result = Machine(None, program.dram_bytes).run(program, inputs)
    assert np.array_equal(result.outputs["khat"], numerics.dlzs_key_quantized(x_int, x_exp, codes, base))
    expected = numerics.kv_rows(xf, wv)
    for i in (3, 0, 15):
        assert np.array_equal(result.outputs["vrows"][i], expected[i])
    assert not result.outputs["vrows"][1].any()
    key_event = next(e for e in result.events if e.opcode == "dlzs.key")
    assert 0 < key_event.work.shift_adds <= rows * hidden * cols
    kv_event = next(e for e in result.events if e.opcode == "kvgen")
    assert kv_event.work.macs == 3 * hidden * cols


def _run_text(text, inputs=None, **kwargs):
    program = assemble(text, "t.s")
    return Machine({"token": 1024, "weight": 1024, "temp": 1024}, 4096).run(program, inputs or {}, **kwargs)


def test_traps():
    with pytest.raises(Trap) as info:
        _run_text("dma.load dst=temp[r0+0], src=dram[r0+4000], rows=2, row_bytes=64, src_stride=64\nhalt\n")
    assert info.value.kind == TrapKind.ADDRESS
    assert str(info.value).startswith("trap at pc=0 (dma.load dst=temp[r0+0]")
    with pytest.raises(Trap, match="SRAM overflow") as info:
        _run_text("dma.load dst=temp[r0+1000], src=dram[r0+0], rows=1, row_bytes=64, src_stride=64\nhalt\n")
    assert info.value.kind == TrapKind.SRAM_OVERFLOW
    with pytest.raises(Trap, match=r"trap at pc=1 \(\.word 0x0+ff\): illegal instruction: illegal opcode 0xff"):
        _run_text("barrier\n.word 0xff\n")
    with pytest.raises(Trap, match="token deadlock: waits on s3") as info:
        _run_text("sufa.init lanes=1, vdepth=1 ; wait=0b1000\nhalt\n")
    assert info.value.kind == TrapKind.DEADLOCK
    with pytest.raises(Trap, match="config-hash mismatch"):
        _run_text(f".config {'22' * 32}\nhalt\n", expected_config_hash="11" * 32)
    # An all-zero hash marks a hand-written program that is not bound to a target.
    _run_text("halt\n", expected_config_hash="11" * 32)
    with pytest.raises(Trap, match="not initialised"):
        _run_text("sufa.norm out=temp[r0+0], lanes=1, vdepth=1\nhalt\n")
    with pytest.raises(Trap, match="without 'halt'"):
        _run_text("barrier\n")
    with pytest.raises(Trap, match="past its enclosing loop"):
        _run_text("loop count=2, body=3\nloop count=2, body=3\nbarrier\nbarrier\nbarrier\nhalt\n")
    with pytest.raises(Trap, match="address -4 is negative"):
        _run_text("set rd=r1, imm=-4\nsufa.init lanes=1, vdepth=1\nsufa.norm out=temp[r1+0], lanes=1, vdepth=1\nhalt\n")


def test_input_errors_name_the_symbol():
    text = ".symbol x input f32 [2,3] @0\nhalt\n"
    with pytest.raises(InputError, match="missing input 'x'"):
        _run_text(text)
    with pytest.raises(InputError, match=r"input 'x' has shape \[3, 2\]"):
        _run_text(text, {"x": np.zeros((3, 2), np.float32)})
    with pytest.raises(InputError, match="input 'x' has dtype float64"):
        _run_text(text, {"x": np.zeros((2, 3))})


def test_hardware_loops_nest_and_registers():
    text = "set rd=r1, imm=0\nloop count=3, body=3\n  loop count=4, body=1\n    addi rd=r1, rs=r1, imm=1\n  addi rd=r1, rs=r1, imm=100\nhalt\n"
    result = _run_text(text)
    assert result.registers[1] == 3 * (4 + 100)
    with pytest.raises(Trap, match="loops nest 5 deep"):
        _run_text("".join(f"loop count=1, body={5 - i}\n" for i in range(5)) + "barrier\nhalt\n")


def test_instruction_equality_is_value_based():
    a = make("set", rd=1, imm=5)
    assert a == Instruction("set", {"rd": 1, "imm": 5})


def test_scatter_traps_on_a_negative_row_index():
    """dma.scatter, like dma.gather, never writes below DRAM row 0 (numpy would wrap around)."""
    text = (
        ".symbol list const i32 [2] @0\n"
        ".data 0 01000000ffffffff\n"
        "dma.load dst=temp[r0+0], src=dram[r0+0], rows=1, row_bytes=8, src_stride=8\n"
        "barrier\n"
        "set rd=r5, imm=-1\n"
        "dma.scatter src=token[r0+0], dst=dram[r0+1024], list=temp[r0+0], key_base=r5, window=4, row_bytes=8,"
        " dst_stride=8\n"
        "halt\n"
    )
    with pytest.raises(Trap) as info:
        _run_text(text)
    assert "negative row index -1" in str(info.value)
    assert info.value.kind == TrapKind.ADDRESS


@pytest.mark.parametrize(("mode", "out_read", "weight_read"), [(0, 0, 32), (1, 16, 32), (2, 0, 40)])
def test_kvgen_sram_traffic_per_mode(mode: int, out_read: int, weight_read: int):
    """Two listed rows of a 4-wide chunk into 2 columns: only accumulate reads `out`, only bias mode reads the bias."""
    kvgen = make(
        "kvgen",
        x=Sram("token", 0, 0),
        w=Sram("weight", 0, 0),
        out=Sram("temp", 0, 1024),
        list=Sram("temp", 0, 0),
        key_base=0,
        window=8,
        hidden=4,
        cols=2,
        dtype="f32",
        bias=Sram("weight", 0, 512),
        mode=mode,
    )
    program = Program([kvgen, make("halt")], dram_bytes=4096)
    machine = Machine(None, program.dram_bytes)
    machine.sram[Buffer.TEMP][:12] = np.array([2, 1, 5], np.int32).view(np.uint8)  # list: rows 1 and 5
    work = machine.execute(program.code[0], 0).work
    assert work.sram_read_bytes[Buffer.TOKEN] == 2 * 4 * 4  # the two x rows
    assert work.sram_read_bytes[Buffer.WEIGHT] == weight_read  # W (and the bias row)
    assert work.sram_read_bytes[Buffer.TEMP] == 16 + out_read  # the list (and the old out rows)
    assert work.sram_write_bytes == {Buffer.TEMP: 2 * 2 * 4}
    assert work.macs == 2 * 4 * 2
