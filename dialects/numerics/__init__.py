"""Golden numeric kernels for SOFA's three stages.

These pure numpy functions define what the hardware computes. The `sofa`
dialect's interpreter and the ISA simulator both call them, tile by tile, so
the two levels agree bit for bit.

Modules: `formats` (the number formats: LZ codes, 8-bit token rows, fp16,
4-bit rows; see docs/isa.md for the hardware view), `prediction` (DLZS and
the baseline's 4-bit predictor), `kv_generation`, `sads_tiles` (SADS and the
baseline's whole-row top-k), `sads_budget` (budgeted SADS: row budgets that move
between tiles), `sufa_tiles` (SU-FA tile steps and their
merge), `tile_masks` (a mask's empty, full and partial tiles, closed
forms, bitmaps) and `pipelines` (whole tensors, dense and SOFA attention).
Every public name is re-exported here: use ``from dialects import numerics``.

Q, K, V and O are fp16 (`DATAPATH`); products of fp16 operands are exact, and
accumulations use fp64 or int64 (at least the hardware's fp32 accumulators),
so results do not depend on summation order or tile shapes. `sufa_tiles`
states where values are rounded.
"""

from dialects.numerics.formats import (
    ACCUMULATOR,
    DATAPATH,
    FP16_MAX,
    FP32_OVERFLOW,
    LZ_EXPONENT_LEVELS,
    LZ_ZERO_CODE,
    NO_INDEX,
    X_INT_MAX,
    Element,
    floor_log2,
    fp32_overflow,
    lz_base_exponent,
    lz_decode,
    q_lz_exponent,
    q_lz_power,
    quantize4_rows,
    quantize_token_rows,
    to_datapath,
    to_fp16_saturating,
    wk_to_lz,
)
from dialects.numerics.key_codes import decode_key_codes, encode_key_codes, key_code_row_bytes
from dialects.numerics.kv_generation import KVGEN_CHUNK, kv_rows
from dialects.numerics.pipelines import (
    biased_sads_inputs,
    dense_attention,
    expand_kv_heads,
    has_bias,
    mask_to_bias,
    pad_keys,
    predict_scores,
    sads,
    sofa_attention,
    sufa,
)
from dialects.numerics.prediction import (
    dlzs_key,
    dlzs_key_heads,
    dlzs_key_quantized,
    dlzs_multiply,
    dlzs_score,
    dlzs_score_power,
    exact_score,
    mul4_score,
)
from dialects.numerics.sads_budget import budget_slots, far_count, last_valid_keys, sads_budget_tile, tiles_to_last
from dialects.numerics.sads_tiles import (
    biased_ranking,
    keep_count,
    sads_tile,
    sads_tile_sphere,
    soft_cap,
    tile_count,
    topk_mask_rows,
)
from dialects.numerics.sufa_tiles import (
    SufaPartial,
    SufaState,
    sufa_accumulate,
    sufa_finish,
    sufa_tile_step,
)

# Private, re-exported for tests/sim/test_speed_paths.py, which checks it against a naive count.
from dialects.numerics.sufa_tiles import _max_updates as _max_updates
from dialects.numerics.tile_masks import (
    UNBOUNDED,
    BandMask,
    MaskError,
    TileMask,
    bitmap_valid,
    boolean_mask,
    boolean_masks,
    detect_band,
    tile_bitmap,
    tile_mask_of_array,
    tile_mask_of_band,
)

__all__ = [
    "ACCUMULATOR",
    "DATAPATH",
    "FP16_MAX",
    "FP32_OVERFLOW",
    "KVGEN_CHUNK",
    "LZ_EXPONENT_LEVELS",
    "LZ_ZERO_CODE",
    "NO_INDEX",
    "UNBOUNDED",
    "X_INT_MAX",
    "BandMask",
    "Element",
    "MaskError",
    "SufaPartial",
    "SufaState",
    "TileMask",
    "biased_ranking",
    "biased_sads_inputs",
    "bitmap_valid",
    "boolean_mask",
    "boolean_masks",
    "budget_slots",
    "decode_key_codes",
    "dense_attention",
    "detect_band",
    "dlzs_key",
    "dlzs_key_heads",
    "dlzs_key_quantized",
    "dlzs_multiply",
    "dlzs_score",
    "dlzs_score_power",
    "encode_key_codes",
    "exact_score",
    "expand_kv_heads",
    "far_count",
    "floor_log2",
    "fp32_overflow",
    "has_bias",
    "keep_count",
    "key_code_row_bytes",
    "kv_rows",
    "last_valid_keys",
    "lz_base_exponent",
    "lz_decode",
    "mask_to_bias",
    "mul4_score",
    "pad_keys",
    "predict_scores",
    "q_lz_exponent",
    "q_lz_power",
    "quantize4_rows",
    "quantize_token_rows",
    "sads",
    "sads_budget_tile",
    "sads_tile",
    "sads_tile_sphere",
    "sofa_attention",
    "soft_cap",
    "sufa",
    "sufa_accumulate",
    "sufa_finish",
    "sufa_tile_step",
    "tile_bitmap",
    "tile_count",
    "tile_mask_of_array",
    "tile_mask_of_band",
    "tiles_to_last",
    "to_datapath",
    "to_fp16_saturating",
    "topk_mask_rows",
    "wk_to_lz",
]
