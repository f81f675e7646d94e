"""The instruction table: every SOFA instruction's mnemonic, opcode, unit and fields.

`OPS` is the single source of truth for the instruction set. The binary
encoder (`sofa_compiler/isa/encoding.py`), the assembler, the functional
simulator, the verifier and printer of the `sofa_isa` ops, and `docs/isa.md`
are all driven by or checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dialects.sofa_isa.fields import (
    ELEM_BYTES,
    HEADER_BITS,
    SEMAPHORES,
    WORD_BITS,
    FieldSpec,
    dram_field,
    dtype_field,
    elem_type,
    f32_field,
    field_problem,
    flag_field,
    int_field,
    reg_field,
    sram_field,
    uint_field,
)


@dataclass(frozen=True)
class OpSpec:
    """One instruction: mnemonic, opcode, unit and fields in encoding order."""

    mnemonic: str
    opcode: int
    unit: str
    fields: tuple[FieldSpec, ...]
    doc: str

    @property
    def ir_name(self) -> str:
        return "sofa_isa." + self.mnemonic.replace(".", "_")

    def layout(self) -> list[tuple[FieldSpec, int]]:
        """(field, first bit) pairs; fields are packed from bit 24 upwards."""
        bit = HEADER_BITS
        out = []
        for field in self.fields:
            out.append((field, bit))
            bit += field.bits
        return out

    @property
    def used_bits(self) -> int:
        return HEADER_BITS + sum(f.bits for f in self.fields)

    def field(self, name: str) -> FieldSpec:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)


_LANES = uint_field("lanes", 12, "query lanes (rows) in the tile; at most the target's lanes")
_DTYPE = dtype_field("dtype", "storage type of q/k/v (or out): f16 or f32")
_ATTENTION_STEP_FIELDS = (
    sram_field("q", "dtype", "Q [lanes, depth]"),
    sram_field("k", "dtype", "K window [window, depth]; key i at row i - key_base"),
    sram_field("v", "dtype", "V window [window, vdepth]"),
    sram_field("idx", "i32", "SADS indices i32 [lanes, m] (descending predicted score)"),
    reg_field("key_base", "register: global index of the window's first key"),
    _LANES,
    uint_field("m", 16, "slots per lane"),
    uint_field("window", 16, "rows in the K/V window (Bc)"),
    uint_field("depth", 12, "head dim d"),
    uint_field("vdepth", 12, "value head dim dv"),
    f32_field("scale", "softmax scale (finite, > 0)"),
    _DTYPE,
)
"""Fields of `sufa.step` and of the baseline's `fa2.step`, which differ only in their costs."""


_STRIDED_LOAD_FIELDS = (
    sram_field("dst", "u8", "destination; rows are packed (stride = row_bytes)"),
    dram_field("src", "source of row 0"),
    uint_field("rows", 16, "rows to copy"),
    uint_field("row_bytes", 20, "bytes per row"),
    uint_field("src_stride", 32, "DRAM bytes between row starts", lo=0),
)
"""Fields of `dma.load` and `dma.prefetch`, which differ only in their queue."""


_SADS_TILE = (
    sram_field("scores", "f16", "A-hat f16 [lanes, keys]"),
    sram_field("out", "i32", "selected global key indices i32 [lanes, m], -1 = empty"),
    _LANES,
    uint_field("keys", 16, "keys in the tile (Bc)"),
)
_SADS_BOUNDS = (
    f32_field("radius", "sphere radius in A-hat units (> 0, inf = no clip)"),
    reg_field("key_base", "register: global index of the tile's first key"),
    reg_field("query_base", "register: global index of lane 0's query"),
    uint_field("kv_len", 32, "valid keys: key_base + j < kv_len", lo=0),
    flag_field("causal", "1: key must be <= query"),
)
"""The fields `sads` and `sads.budget` share: the tile in and out, then the sphere and the validity bounds."""
_GENERATED_ROWS = (
    sram_field("list", "i32", "index list: count, then indices"),
    reg_field("key_base", "register: global index of the window's first row"),
    uint_field("window", 16, "rows in the window"),
)
"""The rows `kvgen` and `kvround` work on: the listed ones of a window."""


_SADS_FIELDS = (*_SADS_TILE, uint_field("m", 16, "keys kept per lane (<= keys)"), *_SADS_BOUNDS)
"""Fields of `sads`; `sads.mask` and `sads.band` put their mask's fields before them."""


OPS: tuple[OpSpec, ...] = (
    # --- CTRL: scalar registers, loops, synchronisation -------------------
    OpSpec("halt", 0x01, "ctrl", (), "Stop the machine once every unit is idle."),
    OpSpec(
        "set",
        0x02,
        "ctrl",
        (reg_field("rd", "destination register (r0: no effect)"), int_field("imm", 32, "value")),
        "rd = imm",
    ),
    OpSpec(
        "addi",
        0x03,
        "ctrl",
        (
            reg_field("rd", "destination register (r0: no effect)"),
            reg_field("rs", "source register"),
            int_field("imm", 32, "addend"),
        ),
        "rd = rs + imm (32-bit two's complement, wrapping)",
    ),
    OpSpec(
        "loop",
        0x04,
        "ctrl",
        (uint_field("count", 24, "iterations (>= 1)"), uint_field("body", 16, "instructions in the body (>= 1)")),
        "Hardware loop: run the next `body` instructions `count` times (nest depth <= 4).",
    ),
    OpSpec(
        "loopr",
        0x07,
        "ctrl",
        (
            reg_field("count", "register holding the iteration count (<= 0: skip the body)"),
            uint_field("body", 16, "instructions in the body (>= 1)"),
        ),
        "Hardware loop with a run-time count: run the next `body` instructions r[count] times "
        "(nest depth <= 4, shared with `loop`); used to skip fully masked causal KV tiles.",
    ),
    OpSpec(
        "tload",
        0x08,
        "ctrl",
        (
            reg_field("rd", "destination register (r0: no effect)"),
            reg_field("rs", "register added to the loaded word"),
            dram_field("src", "address of a 32-bit little-endian word of a constant table (4-byte aligned)"),
        ),
        "rd = rs + table word at src (32-bit, wrapping): the sequencer reads a kernel's constant index "
        "lists (mask tables) to set loop counts and tile addresses; no unit writes that memory while it runs.",
    ),
    OpSpec(
        "softcap",
        0x09,
        "ctrl",
        (f32_field("cap", "score cap c (finite, >= 0; 0: no cap)"),),
        "Set the score-cap register of the SADS and SU-FA units: scaled scores s become c tanh(s / c) "
        "(numerics.soft_cap) in `sufa.step`, `sufa.bias`, `fa2.step` and `sads.bias`; a kernel sets it once, "
        "in its prologue, before any unit instruction. Reset: 0.",
    ),
    OpSpec("barrier", 0x05, "ctrl", (), "Wait until every unit is idle."),
    OpSpec("post", 0x06, "ctrl", (), "Increment the semaphores in the signal mask (initial credits)."),
    # --- DMA ----------------------------------------------------------------
    OpSpec("dma.load", 0x10, "dma_load", _STRIDED_LOAD_FIELDS, "2-D strided copy DRAM -> SRAM."),
    OpSpec(
        "dma.prefetch",
        0x12,
        "dma_prefetch",
        _STRIDED_LOAD_FIELDS,
        "`dma.load` on the second load queue (prediction operands such as K-hat), so that they run ahead "
        "of the K/V gathers queued behind `dma.load`; both queues share the DRAM read bandwidth.",
    ),
    OpSpec(
        "dma.lz4",
        0x13,
        "dma_prefetch",
        (
            sram_field("dst", "f16", "K-hat f16 [rows, depth]"),
            dram_field("src", "coded row 0: an int8 row exponent, then depth 4-bit LZ codes, two a byte"),
            uint_field("rows", 16, "rows to load"),
            uint_field("depth", 12, "codes per row (head dim d)"),
            uint_field("src_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "Load the predictor's cache (K as packed 4-bit LZ codes, numerics.key_codes) on the second load "
        "queue and expand it to fp16 K-hat on the way in: prediction reads 1 + d/2 bytes a key, not 2d.",
    ),
    OpSpec(
        "dma.gather",
        0x11,
        "dma_load",
        (
            sram_field("dst", "u8", "destination window; row i lands at dst + (i - key_base) * row_bytes"),
            dram_field("src", "address of DRAM row 0"),
            sram_field("list", "i32", "index list: count, then `count` global row indices"),
            reg_field("key_base", "register holding the window's first row index"),
            uint_field("window", 16, "rows in the destination window; i - key_base must be in [0, window)"),
            uint_field("row_bytes", 20, "bytes per row"),
            uint_field("src_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "Indexed row gather DRAM -> SRAM (on-demand K/V/X rows).",
    ),
    OpSpec(
        "dma.scatter",
        0x19,
        "dma_store",
        (
            sram_field("src", "u8", "source window; row i is read at src + (i - key_base) * row_bytes"),
            dram_field("dst", "address of DRAM row 0"),
            sram_field("list", "i32", "index list: count, then `count` global row indices"),
            reg_field("key_base", "register holding the window's first row index"),
            uint_field("window", 16, "rows in the source window; i - key_base must be in [0, window)"),
            uint_field("row_bytes", 20, "bytes per row"),
            uint_field("dst_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "Indexed row scatter SRAM -> DRAM (generated K/V rows to their DRAM rows).",
    ),
    OpSpec(
        "dma.store",
        0x18,
        "dma_store",
        (
            sram_field("src", "u8", "source; rows are packed"),
            dram_field("dst", "destination of row 0"),
            uint_field("rows", 16, "rows to copy"),
            uint_field("row_bytes", 20, "bytes per row"),
            uint_field("dst_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "2-D strided copy SRAM -> DRAM.",
    ),
    # --- DLZS -----------------------------------------------------------------
    OpSpec(
        "dlzs.key",
        0x20,
        "dlzs",
        (
            sram_field("x", "i8", "tokens int8 [rows, hidden]"),
            sram_field("xexp", "i8", "row exponents int8 [rows]"),
            sram_field("w", "i8", "W_k LZ codes [hidden, cols], one 4-bit code per byte"),
            sram_field("out", "f16", "K-hat f16 [rows, cols]"),
            uint_field("rows", 16, "token rows"),
            uint_field("hidden", 16, "hidden size H (reduction)"),
            uint_field("cols", 12, "K-hat columns (head dim)"),
            int_field("base", 8, "W_k code base exponent"),
        ),
        "DLZS phase 1: K-hat = X . LZ(W_k) (numerics.dlzs_key_quantized).",
    ),
    OpSpec(
        "dlzs.score",
        0x21,
        "dlzs",
        (
            sram_field("q", "f16", "Q f16 [lanes, depth]; the LZEs derive 5-bit LZ codes"),
            sram_field("khat", "f16", "K-hat f16 [keys, depth]"),
            sram_field("out", "f16", "A-hat f16 [lanes, keys]"),
            _LANES,
            uint_field("keys", 16, "keys in the tile"),
            uint_field("depth", 12, "head dim d"),
        ),
        "DLZS phase 2: A-hat = LZ(Q) . K-hat^T (numerics.dlzs_score).",
    ),
    OpSpec(
        "mul4.score",
        0x22,
        "dlzs",
        (
            sram_field("q", "f16", "Q f16 [lanes, depth]"),
            sram_field("k", "f16", "K f16 [keys, depth]"),
            sram_field("out", "f16", "A-hat f16 [lanes, keys]"),
            _LANES,
            uint_field("keys", 16, "keys in the tile"),
            uint_field("depth", 12, "head dim d"),
        ),
        "Baseline predictor (ablation only): A-hat = Q4 . K4^T with 4-bit rows (numerics.mul4_score), "
        "on the prediction array as 4-bit multipliers.",
    ),
    # --- SADS -----------------------------------------------------------------
    OpSpec(
        "sads", 0x30, "sads", _SADS_FIELDS, "Top-m per lane with the sphere clip (numerics.sads_tile), plus key_base."
    ),
    OpSpec(
        "sads.mask",
        0x35,
        "sads",
        (sram_field("bitmap", "u8", "mask bitmap [lanes, ceil(keys / 8)]: bit j % 8 of byte j // 8"), *_SADS_FIELDS),
        "`sads` where only the keys whose bitmap bit is set are valid (numerics.bitmap_valid): a partial "
        "tile of a general attention mask; masked keys are never selected.",
    ),
    OpSpec(
        "sads.bias",
        0x37,
        "sads",
        (
            sram_field("bias", "f32", "bias tile f32 [lanes, keys]; -inf: the key is masked"),
            *_SADS_TILE,
            uint_field("m", 16, "keys kept per lane (<= keys)"),
            f32_field("radius", "sphere radius in logits (> 0, inf = no clip)"),
            reg_field("key_base", "register: global index of the tile's first key"),
            f32_field("scale", "softmax scale (finite, > 0)"),
        ),
        "`sads` over a run-time additive mask's tile: ranks the predicted logits cap(scale A-hat) + bias "
        "(numerics.biased_ranking; cap: the softcap register) and clips at radius logits; keys whose bias is "
        "-inf (masked, causal, padding) are never selected. Plus key_base.",
    ),
    OpSpec(
        "sads.band",
        0x36,
        "sads",
        (
            uint_field("left", 24, "keys before the diagonal (2^24 - 1 reaches every key)", lo=0),
            uint_field("right", 24, "keys after the diagonal (2^24 - 1 reaches every key)", lo=0),
            uint_field("dilation", 16, "keep every dilation-th key of the band (>= 1)"),
            *_SADS_FIELDS,
        ),
        "`sads` where key j is valid for lane l's query q = r[query_base] + l when -left <= j - q <= right "
        "and (j - q) % dilation == 0 (numerics.BandMask.visible): closed-form masks, no mask bytes. A "
        "bottom-right alignment adds its offset Skv - Sq to query_base.",
    ),
    OpSpec(
        "rass",
        0x31,
        "sads",
        (
            sram_field("idx", "i32", "SADS output i32 [lanes, m]"),
            sram_field("out", "i32", "list: count, then the union of indices"),
            _LANES,
            uint_field("m", 16, "slots per lane"),
        ),
        "Reuse-aware schedule: union of selected keys, most-shared first (ties: lower index).",
    ),
    OpSpec(
        "kvmark",
        0x33,
        "sads",
        (
            sram_field("idx", "i32", "SADS output i32 [lanes, m]"),
            sram_field("bitmap", "u8", "needed-row bitmap: bit g (byte g // 8, bit g % 8) for key g"),
            _LANES,
            uint_field("m", 16, "slots per lane"),
            uint_field("keys", 24, "keys the bitmap covers; an index >= keys traps"),
        ),
        "Mark the selected keys as needed: set bitmap bit g for every index g >= 0 in idx.",
    ),
    OpSpec(
        "kvlist",
        0x34,
        "sads",
        (
            sram_field("bitmap", "u8", "needed-row bitmap (see kvmark)"),
            sram_field("out", "i32", "list: count, then the needed keys of the window, ascending"),
            reg_field("key_base", "register: global index of the window's first key"),
            uint_field("window", 16, "keys in the window"),
            flag_field("clear", "1: clear the window's bits after reading them"),
        ),
        "List the window's needed keys (bitmap bits key_base .. key_base + window - 1).",
    ),
    OpSpec(
        "topk.mask",
        0x32,
        "sads",
        (
            sram_field("scores", "f16", "whole rows of A-hat f16 [lanes, keys], masked in place"),
            _LANES,
            uint_field("keys", 16, "keys per row (the whole padded row)"),
            uint_field("m", 16, "keys kept per row (<= keys)"),
            reg_field("query_base", "register: global index of lane 0's query"),
            uint_field("kv_len", 32, "valid keys: j < kv_len", lo=0),
            flag_field("causal", "1: key must be <= query"),
        ),
        "Baseline whole-row top-k: keep each row's m best valid scores, set the rest to -inf "
        "(numerics.topk_mask_rows). Used by the separate-stage pipeline only.",
    ),
    OpSpec(
        "sads.reset",
        0x3A,
        "sads",
        (_LANES,),
        "Zero the per-lane row budgets of budgeted SADS (one query tile starts).",
    ),
    OpSpec(
        "sads.budget",
        0x3B,
        "sads",
        (
            uint_field("quota", 16, "plain SADS's keys per lane and tile (added to the budget)"),
            uint_field("far", 16, "most keys a far tile keeps per lane (<= quota)"),
            *_SADS_TILE,
            uint_field("m", 16, "output slots per lane (<= keys)"),
            *_SADS_BOUNDS,
        ),
        "Budgeted SADS (numerics.sads_budget_tile): the lane's budget grows by min(quota, valid keys); "
        "far tiles keep <= far, the tile before the lane's last keeps its own plus half the carry, "
        "the last spends the rest; top of SADS's order per lane, plus key_base.",
    ),
    # --- KV generation ----------------------------------------------------------
    OpSpec(
        "kvgen",
        0x40,
        "kvgen",
        (
            sram_field("x", "dtype", "token rows [window, hidden]; row i at x + (i - key_base) * hidden"),
            sram_field("w", "dtype", "W_k or W_v rows [hidden, cols] (one hidden chunk)"),
            sram_field("out", "dtype", "K or V rows [window, cols]; row i at (i - key_base)"),
            *_GENERATED_ROWS,
            uint_field("hidden", 16, "hidden columns in this chunk"),
            uint_field("cols", 12, "output columns (head dim)"),
            _DTYPE,
            sram_field("bias", "f32", "bias f32 [cols] (read by mode 2 only)"),
            uint_field("mode", 2, "0: out = x.W; 1: out += x.W (f32 only); 2: out = bias + x.W (f32 only)", lo=0, hi=2),
        ),
        "On-demand K/V: out[i] (op)= x[i] . W for the listed rows only (numerics.kv_rows, fp32 accumulator).",
    ),
    OpSpec(
        "kvround",
        0x41,
        "kvgen",
        (
            sram_field("src", "f32", "generated rows f32 [window, cols]; row i at (i - key_base)"),
            sram_field("out", "f16", "the same rows in the datapath's f16 [window, cols]"),
            *_GENERATED_ROWS,
            uint_field("cols", 12, "columns (head dim)"),
        ),
        "Round the listed generated K/V rows to the 16-bit datapath (numerics.to_datapath: saturating, "
        "NaN and inf kept), once their fp32 accumulation over every hidden chunk is done.",
    ),
    # --- SU-FA ------------------------------------------------------------------
    OpSpec(
        "sufa.init",
        0x50,
        "sufa",
        (_LANES, uint_field("vdepth", 12, "value head dim dv")),
        "Reset the per-lane accumulators (m = -inf, l = 0, o = 0).",
    ),
    OpSpec(
        "sufa.step",
        0x51,
        "sufa",
        _ATTENTION_STEP_FIELDS,
        "One KV tile of SU-FA (numerics.sufa_tile_step + sufa_accumulate).",
    ),
    OpSpec(
        "sufa.bias",
        0x54,
        "sufa",
        (sram_field("bias", "f32", "bias tile f32 [lanes, window] of the window's keys"), *_ATTENTION_STEP_FIELDS),
        "`sufa.step` adding a run-time additive mask's bias to the exact scores, after the softcap register's "
        "cap: s = cap(scale q.k) + bias[lane, key - key_base] (numerics.sufa_tile_step).",
    ),
    OpSpec(
        "fa2.step",
        0x53,
        "sufa",
        _ATTENTION_STEP_FIELDS,
        "Baseline FlashAttention-2 tile step: the same exact result as sufa.step, but the running "
        "max is tracked over every score and l and o are rescaled each tile (more compares and EXPs; "
        "the rescale costs the MACs of SU-FA's tile merge). Used by the separate-stage pipeline only.",
    ),
    OpSpec(
        "sufa.norm",
        0x52,
        "sufa",
        (
            sram_field("out", "f16", "O f16 [lanes, vdepth] (the datapath's element)"),
            _LANES,
            uint_field("vdepth", 12, "value head dim dv"),
        ),
        "O = o / l, rounded to f16 (numerics.sufa_finish).",
    ),
    OpSpec(
        "sufa.dense",
        0x56,
        "sufa",
        (
            sram_field("q", "dtype", "Q rows of the lane range [lanes, depth]"),
            sram_field("k", "dtype", "K window [keys, depth]"),
            sram_field("v", "dtype", "V window [keys, vdepth]"),
            uint_field("lane0", 12, "first accumulator lane the step updates", lo=0),
            _LANES,
            uint_field("keys", 16, "rows of the window, every one attended by every lane"),
            uint_field("depth", 12, "head dim d"),
            uint_field("vdepth", 12, "value head dim dv"),
            f32_field("scale", "softmax scale (finite, > 0)"),
            _DTYPE,
        ),
        "Dense SU-FA step on a lane range: lanes lane0 .. lane0+lanes-1 of the open accumulators attend to "
        "every key of the window (decode: a shared prefix for all lanes, a sample's suffix for its own).",
    ),
)

BY_MNEMONIC: dict[str, OpSpec] = {spec.mnemonic: spec for spec in OPS}
BY_OPCODE: dict[int, OpSpec] = {spec.opcode: spec for spec in OPS}
BY_IR_NAME: dict[str, OpSpec] = {spec.ir_name: spec for spec in OPS}

LOOP_MNEMONICS = ("loop", "loopr")
"""Instructions whose IR form is a region op (`LoopOp`, `LoopRegOp`), not an `IsaInstructionOp`."""

for _spec in OPS:
    assert _spec.used_bits <= WORD_BITS, (_spec.mnemonic, _spec.used_bits)


def instruction_problems(spec: OpSpec, args: Mapping[str, Any], wait: int = 0, signal: int = 0) -> list[str]:
    """Every static problem with one instruction (ranges, alignment, masks, cross-field rules)."""
    problems = []
    names = [f.name for f in spec.fields]
    missing = [n for n in names if n not in args]
    unknown = [n for n in args if n not in names]
    if missing:
        problems.append(f"{spec.mnemonic}: missing field(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"{spec.mnemonic}: unknown field(s) {', '.join(unknown)} (fields: {', '.join(names)})")
    for mask_name, mask in (("wait", wait), ("signal", signal)):
        if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask < (1 << SEMAPHORES):
            problems.append(f"{mask_name} mask {mask!r} out of range [0, 0xff]")
    if spec.unit == "ctrl":
        if wait:
            problems.append(f"{spec.mnemonic}: control instructions cannot wait on semaphores (wait = {wait:#x})")
        if signal and spec.mnemonic != "post":
            problems.append(f"{spec.mnemonic}: only 'post' may signal among control instructions")
    if spec.mnemonic == "post" and not signal:
        problems.append("post: signal mask is empty")
    if missing or unknown:
        return problems
    for field in spec.fields:
        if problem := field_problem(field, args[field.name]):
            problems.append(f"{spec.mnemonic}: {problem}")
    if problems:
        return problems
    for field in spec.fields:
        if field.kind == "sram":
            size = ELEM_BYTES[elem_type(field, args)]
            if args[field.name].offset % size:
                problems.append(
                    f"{spec.mnemonic}: field '{field.name}' offset {args[field.name].offset} "
                    f"is not aligned to its {size}-byte elements"
                )
    if "m" in args and "keys" in args and args["m"] > args["keys"]:
        problems.append(f"{spec.mnemonic}: m = {args['m']} exceeds keys = {args['keys']}")
    if spec.mnemonic == "sads.budget" and not args["far"] <= args["quota"] <= args["m"]:
        problems.append(f"sads.budget: needs far <= quota <= m, got {args['far']}, {args['quota']}, {args['m']}")
    if spec.mnemonic in ("sufa.step", "sufa.bias") and args["m"] > args["window"]:
        problems.append(f"{spec.mnemonic}: m = {args['m']} exceeds window = {args['window']}")
    return problems
