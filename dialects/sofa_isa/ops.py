"""The instruction ops: one explicit `IsaInstructionOp` class per instruction of `OPS`.

Each class names its instruction's `OpSpec` (``SPEC``) and declares that
instruction's fields as properties, in encoding order; the base class adds
the ``wait`` and ``signal`` masks and does parsing, printing and
verification from the spec. `tests/dialects/test_sofa_isa_ops.py` checks that
these classes and the table agree one-to-one (names, fields, kinds), so they
cannot drift. `loop` and `loopr` are region ops (`dialects.sofa_isa.control`).

Four classes carry an ``Isa`` prefix (`IsaSadsOp`, `IsaDlzsKeyOp`,
`IsaDlzsScoreOp`, `IsaMul4ScoreOp`) so that they do not clash with the `sofa` dialect's
tensor-level ops of the same names.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import I64, Float32Type, FloatAttr, IntegerAttr, StringAttr
from xdsl.irdl import irdl_op_definition, prop_def

from dialects.sofa_isa.attrs import DramAttr, SramAttr
from dialects.sofa_isa.instruction import IsaInstructionOp
from dialects.sofa_isa.specs import BY_MNEMONIC, OpSpec

# --- ctrl ---------------------------------------------------------------------


@irdl_op_definition
class HaltOp(IsaInstructionOp):
    """`halt` (opcode 0x01, unit ctrl): Stop the machine once every unit is idle."""

    name = "sofa_isa.halt"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["halt"]


@irdl_op_definition
class SetOp(IsaInstructionOp):
    """`set` (opcode 0x02, unit ctrl): rd = imm."""

    name = "sofa_isa.set"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["set"]

    rd = prop_def(IntegerAttr[I64])
    imm = prop_def(IntegerAttr[I64])


@irdl_op_definition
class AddiOp(IsaInstructionOp):
    """`addi` (opcode 0x03, unit ctrl): rd = rs + imm (32-bit two's complement, wrapping)."""

    name = "sofa_isa.addi"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["addi"]

    rd = prop_def(IntegerAttr[I64])
    rs = prop_def(IntegerAttr[I64])
    imm = prop_def(IntegerAttr[I64])


@irdl_op_definition
class TloadOp(IsaInstructionOp):
    """`tload` (opcode 0x08, unit ctrl): rd = rs + a word of a constant table (a mask's index lists)."""

    name = "sofa_isa.tload"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["tload"]

    rd = prop_def(IntegerAttr[I64])
    rs = prop_def(IntegerAttr[I64])
    src = prop_def(DramAttr)


@irdl_op_definition
class SoftcapOp(IsaInstructionOp):
    """`softcap` (opcode 0x09, unit ctrl): set the SADS and SU-FA units' score-cap register (0: no cap)."""

    name = "sofa_isa.softcap"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["softcap"]

    cap = prop_def(FloatAttr[Float32Type])


@irdl_op_definition
class BarrierOp(IsaInstructionOp):
    """`barrier` (opcode 0x05, unit ctrl): Wait until every unit is idle."""

    name = "sofa_isa.barrier"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["barrier"]


@irdl_op_definition
class PostOp(IsaInstructionOp):
    """`post` (opcode 0x06, unit ctrl): Increment the semaphores in the signal mask (initial credits)."""

    name = "sofa_isa.post"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["post"]


# --- dma_load -----------------------------------------------------------------


class StridedLoadOp(IsaInstructionOp):
    """The fields `dma.load` and `dma.prefetch` share (they differ only in their queue)."""

    dst = prop_def(SramAttr)
    src = prop_def(DramAttr)
    rows = prop_def(IntegerAttr[I64])
    row_bytes = prop_def(IntegerAttr[I64])
    src_stride = prop_def(IntegerAttr[I64])


@irdl_op_definition
class DmaLoadOp(StridedLoadOp):
    """`dma.load` (opcode 0x10, unit dma_load): 2-D strided copy DRAM -> SRAM."""

    name = "sofa_isa.dma_load"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dma.load"]


@irdl_op_definition
class DmaPrefetchOp(StridedLoadOp):
    """`dma.prefetch` (opcode 0x12, unit dma_prefetch): `dma.load` on the second load queue."""

    name = "sofa_isa.dma_prefetch"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dma.prefetch"]


@irdl_op_definition
class DmaGatherOp(IsaInstructionOp):
    """`dma.gather` (opcode 0x11, unit dma_load): Indexed row gather DRAM -> SRAM (on-demand K/V/X rows)."""

    name = "sofa_isa.dma_gather"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dma.gather"]

    dst = prop_def(SramAttr)
    src = prop_def(DramAttr)
    list = prop_def(SramAttr)
    key_base = prop_def(IntegerAttr[I64])
    window = prop_def(IntegerAttr[I64])
    row_bytes = prop_def(IntegerAttr[I64])
    src_stride = prop_def(IntegerAttr[I64])


# --- dma_store ----------------------------------------------------------------


@irdl_op_definition
class DmaScatterOp(IsaInstructionOp):
    """`dma.scatter` (opcode 0x19, unit dma_store): indexed row scatter SRAM -> DRAM."""

    name = "sofa_isa.dma_scatter"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dma.scatter"]

    src = prop_def(SramAttr)
    dst = prop_def(DramAttr)
    list = prop_def(SramAttr)
    key_base = prop_def(IntegerAttr[I64])
    window = prop_def(IntegerAttr[I64])
    row_bytes = prop_def(IntegerAttr[I64])
    dst_stride = prop_def(IntegerAttr[I64])


@irdl_op_definition
class DmaStoreOp(IsaInstructionOp):
    """`dma.store` (opcode 0x18, unit dma_store): 2-D strided copy SRAM -> DRAM."""

    name = "sofa_isa.dma_store"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dma.store"]

    src = prop_def(SramAttr)
    dst = prop_def(DramAttr)
    rows = prop_def(IntegerAttr[I64])
    row_bytes = prop_def(IntegerAttr[I64])
    dst_stride = prop_def(IntegerAttr[I64])


# --- dlzs ---------------------------------------------------------------------


@irdl_op_definition
class IsaDlzsKeyOp(IsaInstructionOp):
    """`dlzs.key` (opcode 0x20, unit dlzs): DLZS phase 1: K-hat = X ."""

    name = "sofa_isa.dlzs_key"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dlzs.key"]

    x = prop_def(SramAttr)
    xexp = prop_def(SramAttr)
    w = prop_def(SramAttr)
    out = prop_def(SramAttr)
    rows = prop_def(IntegerAttr[I64])
    hidden = prop_def(IntegerAttr[I64])
    cols = prop_def(IntegerAttr[I64])
    base = prop_def(IntegerAttr[I64])


@irdl_op_definition
class IsaDlzsScoreOp(IsaInstructionOp):
    """`dlzs.score` (opcode 0x21, unit dlzs): DLZS phase 2: A-hat = LZ(Q) ."""

    name = "sofa_isa.dlzs_score"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dlzs.score"]

    q = prop_def(SramAttr)
    khat = prop_def(SramAttr)
    out = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])
    depth = prop_def(IntegerAttr[I64])


@irdl_op_definition
class IsaMul4ScoreOp(IsaInstructionOp):
    """`mul4.score` (opcode 0x22, unit dlzs): Baseline predictor (ablation only): A-hat = Q4 ."""

    name = "sofa_isa.mul4_score"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["mul4.score"]

    q = prop_def(SramAttr)
    k = prop_def(SramAttr)
    out = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])
    depth = prop_def(IntegerAttr[I64])


# --- sads ---------------------------------------------------------------------


class SadsFieldsOp(IsaInstructionOp):
    """The fields `sads`, `sads.mask`, `sads.band` and `sads.budget` share (masked ones put the mask's first)."""

    scores = prop_def(SramAttr)
    out = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])
    m = prop_def(IntegerAttr[I64])
    radius = prop_def(FloatAttr[Float32Type])
    key_base = prop_def(IntegerAttr[I64])
    query_base = prop_def(IntegerAttr[I64])
    kv_len = prop_def(IntegerAttr[I64])
    causal = prop_def(IntegerAttr[I64])


@irdl_op_definition
class IsaSadsOp(SadsFieldsOp):
    """`sads` (opcode 0x30, unit sads): Top-m per lane with the sphere clip."""

    name = "sofa_isa.sads"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sads"]


@irdl_op_definition
class SadsMaskOp(SadsFieldsOp):
    """`sads.mask` (opcode 0x35, unit sads): `sads` with a mask bitmap (a partial tile of a general mask)."""

    name = "sofa_isa.sads_mask"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sads.mask"]

    bitmap = prop_def(SramAttr)


@irdl_op_definition
class SadsBiasOp(IsaInstructionOp):
    """`sads.bias` (opcode 0x37, unit sads): `sads` ranking cap(scale A-hat) + an fp32 bias tile (-inf: masked)."""

    name = "sofa_isa.sads_bias"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sads.bias"]

    bias = prop_def(SramAttr)
    scores = prop_def(SramAttr)
    out = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])
    m = prop_def(IntegerAttr[I64])
    radius = prop_def(FloatAttr[Float32Type])
    key_base = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr[Float32Type])


@irdl_op_definition
class SadsBandOp(SadsFieldsOp):
    """`sads.band` (opcode 0x36, unit sads): `sads` with a closed-form band mask evaluated on chip."""

    name = "sofa_isa.sads_band"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sads.band"]

    left = prop_def(IntegerAttr[I64])
    right = prop_def(IntegerAttr[I64])
    dilation = prop_def(IntegerAttr[I64])


@irdl_op_definition
class RassOp(IsaInstructionOp):
    """`rass` (opcode 0x31, unit sads): reuse-aware schedule of the selected keys."""

    name = "sofa_isa.rass"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["rass"]

    idx = prop_def(SramAttr)
    out = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    m = prop_def(IntegerAttr[I64])


@irdl_op_definition
class KvmarkOp(IsaInstructionOp):
    """`kvmark` (opcode 0x33, unit sads): mark the selected keys in the needed-row bitmap."""

    name = "sofa_isa.kvmark"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["kvmark"]

    idx = prop_def(SramAttr)
    bitmap = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    m = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])


@irdl_op_definition
class KvlistOp(IsaInstructionOp):
    """`kvlist` (opcode 0x34, unit sads): List the window's needed keys (bitmap bits key_base ."""

    name = "sofa_isa.kvlist"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["kvlist"]

    bitmap = prop_def(SramAttr)
    out = prop_def(SramAttr)
    key_base = prop_def(IntegerAttr[I64])
    window = prop_def(IntegerAttr[I64])
    clear = prop_def(IntegerAttr[I64])


@irdl_op_definition
class SadsResetOp(IsaInstructionOp):
    """`sads.reset` (opcode 0x3a, unit sads): zero the per-lane row budgets of budgeted SADS."""

    name = "sofa_isa.sads_reset"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sads.reset"]

    lanes = prop_def(IntegerAttr[I64])


@irdl_op_definition
class SadsBudgetOp(SadsFieldsOp):
    """`sads.budget` (opcode 0x3b, unit sads): budgeted SADS, row budgets carried across KV tiles."""

    name = "sofa_isa.sads_budget"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sads.budget"]

    quota = prop_def(IntegerAttr[I64])
    far = prop_def(IntegerAttr[I64])


@irdl_op_definition
class TopkMaskOp(IsaInstructionOp):
    """`topk.mask` (opcode 0x32, unit sads): baseline whole-row top-k mask."""

    name = "sofa_isa.topk_mask"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["topk.mask"]

    scores = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])
    m = prop_def(IntegerAttr[I64])
    query_base = prop_def(IntegerAttr[I64])
    kv_len = prop_def(IntegerAttr[I64])
    causal = prop_def(IntegerAttr[I64])


# --- kvgen --------------------------------------------------------------------


@irdl_op_definition
class KvgenOp(IsaInstructionOp):
    """`kvgen` (opcode 0x40, unit kvgen): On-demand K/V: out[i] (op)= x[i] ."""

    name = "sofa_isa.kvgen"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["kvgen"]

    x = prop_def(SramAttr)
    w = prop_def(SramAttr)
    out = prop_def(SramAttr)
    list = prop_def(SramAttr)
    key_base = prop_def(IntegerAttr[I64])
    window = prop_def(IntegerAttr[I64])
    hidden = prop_def(IntegerAttr[I64])
    cols = prop_def(IntegerAttr[I64])
    dtype = prop_def(StringAttr)
    bias = prop_def(SramAttr)
    mode = prop_def(IntegerAttr[I64])


@irdl_op_definition
class KvroundOp(IsaInstructionOp):
    """`kvround` (opcode 0x41, unit kvgen): round the listed generated K/V rows to f16."""

    name = "sofa_isa.kvround"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["kvround"]

    src = prop_def(SramAttr)
    out = prop_def(SramAttr)
    list = prop_def(SramAttr)
    key_base = prop_def(IntegerAttr[I64])
    window = prop_def(IntegerAttr[I64])
    cols = prop_def(IntegerAttr[I64])


# --- sufa ---------------------------------------------------------------------


@irdl_op_definition
class SufaInitOp(IsaInstructionOp):
    """`sufa.init` (opcode 0x50, unit sufa): Reset the per-lane accumulators (m = -inf, l = 0, o = 0)."""

    name = "sofa_isa.sufa_init"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sufa.init"]

    lanes = prop_def(IntegerAttr[I64])
    vdepth = prop_def(IntegerAttr[I64])


class AttentionStepOp(IsaInstructionOp):
    """The fields `sufa.step` and the baseline's `fa2.step` share (they differ only in their costs)."""

    q = prop_def(SramAttr)
    k = prop_def(SramAttr)
    v = prop_def(SramAttr)
    idx = prop_def(SramAttr)
    key_base = prop_def(IntegerAttr[I64])
    lanes = prop_def(IntegerAttr[I64])
    m = prop_def(IntegerAttr[I64])
    window = prop_def(IntegerAttr[I64])
    depth = prop_def(IntegerAttr[I64])
    vdepth = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr[Float32Type])
    dtype = prop_def(StringAttr)


@irdl_op_definition
class SufaStepOp(AttentionStepOp):
    """`sufa.step` (opcode 0x51, unit sufa): One KV tile of SU-FA."""

    name = "sofa_isa.sufa_step"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sufa.step"]


@irdl_op_definition
class SufaBiasOp(AttentionStepOp):
    """`sufa.bias` (opcode 0x54, unit sufa): `sufa.step` adding an fp32 bias tile to the exact scores."""

    name = "sofa_isa.sufa_bias"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sufa.bias"]

    bias = prop_def(SramAttr)


@irdl_op_definition
class Fa2StepOp(AttentionStepOp):
    """`fa2.step` (opcode 0x53, unit sufa): baseline FlashAttention-2 tile step."""

    name = "sofa_isa.fa2_step"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["fa2.step"]


@irdl_op_definition
class SufaNormOp(IsaInstructionOp):
    """`sufa.norm` (opcode 0x52, unit sufa): O = o / l."""

    name = "sofa_isa.sufa_norm"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sufa.norm"]

    out = prop_def(SramAttr)
    lanes = prop_def(IntegerAttr[I64])
    vdepth = prop_def(IntegerAttr[I64])


@irdl_op_definition
class DmaLz4Op(IsaInstructionOp):
    """`dma.lz4` (opcode 0x13, unit dma_prefetch): load packed 4-bit K codes, expanded to fp16 K-hat."""

    name = "sofa_isa.dma_lz4"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["dma.lz4"]

    dst = prop_def(SramAttr)
    src = prop_def(DramAttr)
    rows = prop_def(IntegerAttr[I64])
    depth = prop_def(IntegerAttr[I64])
    src_stride = prop_def(IntegerAttr[I64])


@irdl_op_definition
class SufaDenseOp(IsaInstructionOp):
    """`sufa.dense` (opcode 0x56, unit sufa): a dense SU-FA step on a range of the accumulator lanes."""

    name = "sofa_isa.sufa_dense"
    SPEC: ClassVar[OpSpec] = BY_MNEMONIC["sufa.dense"]

    q = prop_def(SramAttr)
    k = prop_def(SramAttr)
    v = prop_def(SramAttr)
    lane0 = prop_def(IntegerAttr[I64])
    lanes = prop_def(IntegerAttr[I64])
    keys = prop_def(IntegerAttr[I64])
    depth = prop_def(IntegerAttr[I64])
    vdepth = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr[Float32Type])
    dtype = prop_def(StringAttr)


INSTRUCTION_OPS: dict[str, type[IsaInstructionOp]] = {
    "halt": HaltOp,
    "set": SetOp,
    "addi": AddiOp,
    "tload": TloadOp,
    "softcap": SoftcapOp,
    "barrier": BarrierOp,
    "post": PostOp,
    "dma.load": DmaLoadOp,
    "dma.prefetch": DmaPrefetchOp,
    "dma.lz4": DmaLz4Op,
    "dma.gather": DmaGatherOp,
    "dma.scatter": DmaScatterOp,
    "dma.store": DmaStoreOp,
    "dlzs.key": IsaDlzsKeyOp,
    "dlzs.score": IsaDlzsScoreOp,
    "mul4.score": IsaMul4ScoreOp,
    "sads": IsaSadsOp,
    "sads.mask": SadsMaskOp,
    "sads.bias": SadsBiasOp,
    "sads.band": SadsBandOp,
    "rass": RassOp,
    "kvmark": KvmarkOp,
    "kvlist": KvlistOp,
    "topk.mask": TopkMaskOp,
    "sads.reset": SadsResetOp,
    "sads.budget": SadsBudgetOp,
    "kvgen": KvgenOp,
    "kvround": KvroundOp,
    "sufa.init": SufaInitOp,
    "sufa.step": SufaStepOp,
    "sufa.bias": SufaBiasOp,
    "fa2.step": Fa2StepOp,
    "sufa.norm": SufaNormOp,
    "sufa.dense": SufaDenseOp,
}
"""mnemonic -> op class (e.g. ``INSTRUCTION_OPS["sads"]`` is `IsaSadsOp`); `loop` and `loopr` are region ops."""
