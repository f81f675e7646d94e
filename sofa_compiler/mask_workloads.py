"""Sparse attention mask patterns of long-context models, seeded and deterministic.

Each pattern is a boolean ``[S, S]`` mask, True where query i may see key j:

- `longformer`: a symmetric sliding window plus global tokens (Beltagy et al. 2020): the global
  tokens see every key and every query sees them;
- `bigbird`: block-sparse (Zaheer et al. 2020): per block row a window of blocks, global blocks
  (whole rows and columns) and random blocks, the random ones drawn so that the whole layout has
  the requested block density;
- `mistral`: causal with a window of ``window`` keys (the query's own and ``window - 1`` before it);
- `dilated`: a symmetric band that keeps every ``dilation``-th key (Longformer's dilated window);
- `document_packing`: several documents packed in one sequence, each attending only within itself
  (causal inside a document by default), with lengths drawn from the seed.

`MaskWorkload` names one pattern at one length; `mask()` builds it (a 16K x 16K mask is 256 MiB, so
it is built on demand, in row chunks, never through an ``[S, S]`` integer array). The band patterns
(`mistral`, `dilated`) also have a closed form, `band()`, for analyses that need no dense mask.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dialects.numerics import BandMask
from dialects.sofa import TileMaskAttr
from passes.masked_attention import TILE_MASK_ATTRIBUTE
from sofa_compiler.driver import CompiledModel, compile_model
from sofa_compiler.kernels import AttentionProblem, attention_model
from sofa_compiler.sim.report import Report, combine_reports
from sofa_compiler.workloads import random_inputs, run_kernels

SCORED_TILES_UNIT = "dlzs"
"""The unit that runs one instruction per visited (query tile, KV tile) pair: DLZS scores each visited KV tile."""

ROW_CHUNK = 1024
"""Rows built (or, in the exact reference, scored) at a time: one chunk's S x ROW_CHUNK arrays stay small."""

BLOCK = 128
"""BigBird's block edge: the accelerator's 128 query lanes, so a block row is one query tile."""

LENGTHS = (4096, 8192, 16384)
"""The sequence lengths of the masked workloads (issue 17: S = 4K-16K)."""


class MaskPatternError(ValueError):
    """A pattern's parameters do not describe a mask; the message says which and why."""


def _rows(seq: int, visible: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``[seq, seq]`` booleans from ``visible(rows [r, 1], keys [1, seq])``, built ROW_CHUNK rows at a time."""
    mask = np.empty((seq, seq), np.bool_)
    keys = np.arange(seq, dtype=np.int64)[None, :]
    for start in range(0, seq, ROW_CHUNK):
        rows = np.arange(start, min(seq, start + ROW_CHUNK), dtype=np.int64)[:, None]
        mask[start : start + ROW_CHUNK] = visible(rows, keys)
    return mask


def band_mask(seq: int, band: BandMask) -> np.ndarray:
    """The dense ``[seq, seq]`` mask of a band (the mask analysis's closed form), built in row chunks."""
    return _rows(seq, lambda rows, keys: band.visible(rows[:, 0], keys[0]))


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise MaskPatternError(f"{name} must be >= 1, got {value}")


def mistral_band(window: int) -> BandMask:
    _positive(window=window)
    return BandMask(window - 1, 0)


def dilated_band(window: int, dilation: int) -> BandMask:
    """``window`` kept keys on each side of the query, ``dilation`` apart."""
    _positive(window=window, dilation=dilation)
    return BandMask(window * dilation, window * dilation, dilation=dilation)


def mistral(seq: int, window: int = 4096) -> np.ndarray:
    return band_mask(seq, mistral_band(window))


def dilated(seq: int, window: int = 256, dilation: int = 4) -> np.ndarray:
    return band_mask(seq, dilated_band(window, dilation))


def longformer(seq: int, window: int = 512, global_tokens: int = 16) -> np.ndarray:
    """A symmetric window of ``window`` keys (``window // 2`` each side) plus the first ``global_tokens`` tokens
    as global ones."""
    _positive(seq=seq, window=window)
    if not 0 <= global_tokens <= seq:
        raise MaskPatternError(f"global_tokens must be in 0..{seq}, got {global_tokens}")
    mask = band_mask(seq, BandMask(window // 2, window // 2))
    mask[:global_tokens, :] = True
    mask[:, :global_tokens] = True
    return mask


def bigbird_layout(
    blocks: int, density: float, window_blocks: int = 3, global_blocks: int = 1, seed: int = 0
) -> np.ndarray:
    """BigBird's ``[blocks, blocks]`` block layout at `density` (fraction of blocks kept).

    Window (``window_blocks`` centred on the diagonal) and global blocks (the first ``global_blocks``
    block rows and columns) come first; random blocks are then added in the other block rows, an
    equal share each (the first rows take the remainder), so the layout keeps
    ``round(density * blocks^2)`` blocks exactly. Deterministic in `seed`.
    """
    _positive(blocks=blocks, window_blocks=window_blocks)
    if not 0 < density <= 1:
        raise MaskPatternError(f"density must be in (0, 1], got {density}")
    if not 0 <= global_blocks < blocks:
        raise MaskPatternError(f"global_blocks must be in 0..{blocks - 1}, got {global_blocks}")
    half = window_blocks // 2
    index = np.arange(blocks)
    layout = np.abs(index[:, None] - index[None, :]) <= half
    layout[:global_blocks, :] = True
    layout[:, :global_blocks] = True
    target = round(density * blocks * blocks)
    missing = target - int(np.count_nonzero(layout))
    if missing < 0:
        floor = np.count_nonzero(layout) / blocks**2
        raise MaskPatternError(
            f"density {density:g} is below the window and global blocks' own density {floor:.3f} at {blocks} blocks"
        )
    rng = np.random.default_rng(seed)
    rows = np.arange(global_blocks, blocks)
    share, extra = divmod(missing, len(rows))
    for position, row in enumerate(rows):
        free = np.flatnonzero(~layout[row])
        wanted = min(share + (position < extra), len(free))
        layout[row, rng.choice(free, size=wanted, replace=False)] = True
    if (shortfall := target - int(np.count_nonzero(layout))) > 0:  # rows that filled up: top up the others
        free_rows, free_cols = np.nonzero(~layout)
        pick = rng.choice(len(free_rows), size=shortfall, replace=False)
        layout[free_rows[pick], free_cols[pick]] = True
    return layout


def bigbird(
    seq: int, density: float = 0.1, block: int = BLOCK, window_blocks: int = 3, global_blocks: int = 1, seed: int = 0
) -> np.ndarray:
    """The dense mask of `bigbird_layout` (``seq`` must be a multiple of ``block``)."""
    _positive(seq=seq, block=block)
    if seq % block:
        raise MaskPatternError(f"seq ({seq}) must be a multiple of block ({block})")
    layout = bigbird_layout(seq // block, density, window_blocks, global_blocks, seed)
    return np.repeat(np.repeat(layout, block, axis=0), block, axis=1)


def document_lengths(seq: int, documents: int, seed: int = 0) -> np.ndarray:
    """``documents`` lengths >= 1 summing to `seq`, drawn uniformly (cut points of the sequence)."""
    _positive(seq=seq, documents=documents)
    if documents > seq:
        raise MaskPatternError(f"{documents} documents do not fit in {seq} tokens")
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, seq), size=documents - 1, replace=False))
    return np.diff(np.concatenate(([0], cuts, [seq])))


def document_packing(seq: int, documents: int = 8, causal: bool = True, seed: int = 0) -> np.ndarray:
    """Block-diagonal: each token sees the tokens of its own document (only earlier ones when causal)."""
    document = np.repeat(np.arange(documents), document_lengths(seq, documents, seed))

    def visible(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
        same = document[rows] == document[keys]
        return same & (keys <= rows) if causal else same

    return _rows(seq, visible)


GENERATORS: Mapping[str, Callable[..., np.ndarray]] = {
    "longformer": longformer,
    "bigbird": bigbird,
    "mistral": mistral,
    "dilated": dilated,
    "document_packing": document_packing,
}
"""Every pattern by name; each takes ``seq`` first and its own keyword parameters."""

BANDS: Mapping[str, Callable[..., BandMask]] = {"mistral": mistral_band, "dilated": dilated_band}
"""The patterns with a closed form, by name (their parameters, without ``seq``)."""


@dataclass(frozen=True)
class MaskWorkload:
    """One masked attention layer: a pattern at one length with its parameters."""

    pattern: str
    seq: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pattern not in GENERATORS:
            raise MaskPatternError(f"unknown mask pattern '{self.pattern}' (known: {', '.join(GENERATORS)})")

    @property
    def name(self) -> str:
        details = "".join(f"-{key}{value:g}" for key, value in sorted(self.params.items()))
        return f"{self.pattern}-{self.seq}{details}"

    def mask(self) -> np.ndarray:
        return GENERATORS[self.pattern](self.seq, **self.params)

    def band(self) -> BandMask | None:
        """The closed form, for the band patterns; None for the others."""
        make = BANDS.get(self.pattern)
        return None if make is None else make(**self.params)


PATTERN_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "longformer": {"window": 512, "global_tokens": 16},
    "bigbird": {"density": 0.1, "window_blocks": 1},
    "mistral": {"window": 4096},
    "dilated": {"window": 256, "dilation": 4},
    "document_packing": {"documents": 8},
}
"""The parameters of the issue's masked workloads, by pattern (the report's and `sofa-dse --mask`'s defaults)."""


def mask_workloads(lengths: tuple[int, ...] = LENGTHS) -> list[MaskWorkload]:
    """The issue's masked workloads at each length: Longformer, BigBird (10%), Mistral, dilated, packing."""
    return [MaskWorkload(pattern, seq, params) for seq in lengths for pattern, params in PATTERN_PARAMS.items()]


def mask_workload(pattern: str, seq: int, overrides: Mapping[str, Any] | None = None) -> MaskWorkload:
    """`pattern` at `seq` with `PATTERN_PARAMS` updated by `overrides`; `MaskPatternError` names a parameter the
    pattern does not take."""
    if pattern not in GENERATORS:
        raise MaskPatternError(f"unknown mask pattern '{pattern}' (known: {', '.join(GENERATORS)})")
    overrides = overrides or {}
    known = [name for name in inspect.signature(GENERATORS[pattern]).parameters if name != "seq"]
    if unknown := sorted(set(overrides) - set(known)):
        raise MaskPatternError(f"{pattern} has no parameter {', '.join(unknown)} (it takes {', '.join(known)})")
    return MaskWorkload(pattern, seq, {**PATTERN_PARAMS[pattern], **overrides})


def masked_attention_model(
    heads: int, seq: int, depth: int, mask: np.ndarray, constant: bool = True
) -> onnx.ModelProto:
    """An opset-23 `Attention` layer on Q, K, V ``[1, heads, seq, depth]`` with a boolean ``attn_mask`` ``[seq, seq]``:
    an initializer when `constant`, else the model's fourth input ``mask`` (a mask known only at run time)."""
    if mask.shape != (seq, seq) or mask.dtype != np.bool_:
        raise MaskPatternError(f"the mask must be boolean [{seq}, {seq}], got {mask.dtype} {list(mask.shape)}")
    model = attention_model(AttentionProblem(seq, seq, depth, depth, q_heads=heads, kv_heads=heads))
    graph = model.graph
    graph.node[0].input.append("mask")
    if constant:
        graph.initializer.append(numpy_helper.from_array(mask, "mask"))
    else:
        graph.input.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [seq, seq]))
    return model


@dataclass(frozen=True)
class MaskedRun:
    """One masked layer compiled and run on the simulator (all simulated heads)."""

    compiled: CompiledModel
    report: Report
    output: np.ndarray
    """``[1, heads, seq, depth]`` on `random_inputs`."""

    @property
    def cycles(self) -> int:
        return self.report.total_cycles

    @property
    def dram_bytes(self) -> int:
        return self.report.dram_read_bytes + self.report.dram_write_bytes

    @property
    def plans(self) -> list[TileMaskAttr]:
        """The `#sofa.tile_mask` plan of each masked attention, as the tiling pass chose it."""
        tiled = [stage for stage in self.compiled.stages if stage.name == "tiled"][-1].snapshot
        found = (op.attributes.get(TILE_MASK_ATTRIBUTE) for op in tiled.walk())
        return [attr for attr in found if isinstance(attr, TileMaskAttr)]

    @property
    def visited_tiles(self) -> int:
        """(query tile, KV tile) pairs the kernels scored, counted from the simulator's instructions."""
        return self.report.units[SCORED_TILES_UNIT].instructions


def simulate_masked(
    mask: np.ndarray | None,
    heads: int,
    depth: int,
    keep: float = 1.0,
    seq: int | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    **options: Any,
) -> MaskedRun:
    """Compile an `Attention` layer with the constant `mask` (None: unmasked, at `seq`); run it on `inputs`
    (``q``, ``k``, ``v`` ``[1, heads, S, depth]``; default `random_inputs`)."""
    if mask is None:
        if seq is None:
            raise MaskPatternError("an unmasked layer needs its sequence length")
        model = attention_model(AttentionProblem(seq, seq, depth, depth, q_heads=heads, kv_heads=heads))
    else:
        seq = mask.shape[0]
        model = masked_attention_model(heads, seq, depth, mask)
    compiled = compile_model(model, keep=keep, **options)
    outputs, runs = run_kernels(compiled, random_inputs(heads, seq, depth) if inputs is None else inputs)
    report = combine_reports([run.report for run in runs]) if runs else None
    if report is None:
        raise MaskPatternError("the layer ran no kernel: its attention was placed on the host")
    return MaskedRun(compiled, report, outputs["o"])


def nonempty_tiles(mask: np.ndarray, lanes: int, tile: int) -> int:
    """(query tile of `lanes` rows, KV tile of `tile` keys) pairs in which `mask` keeps some key (counted directly)."""
    seq_q, seq_kv = mask.shape
    rows, cols = -(-seq_q // lanes), -(-seq_kv // tile)
    padded = np.zeros((rows * lanes, cols * tile), np.bool_)
    padded[:seq_q, :seq_kv] = mask
    return int(np.count_nonzero(padded.reshape(rows, lanes, cols, tile).any(axis=(1, 3))))


def exact_masked_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """One head's exact attention ``[S, d]`` under `mask` (None: unmasked) in float64; rows without a visible key
    give zeros, as ONNX's spec says."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    out = np.zeros((q.shape[0], v.shape[1]))
    for start in range(0, q.shape[0], ROW_CHUNK):
        scores = q[start : start + ROW_CHUNK] @ k.T / np.sqrt(q.shape[1])
        if mask is not None:
            scores = np.where(mask[start : start + ROW_CHUNK], scores, -np.inf)
        top = scores.max(axis=1, keepdims=True)
        weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
        total = weights.sum(axis=1, keepdims=True)
        out[start : start + ROW_CHUNK] = (weights @ v) / np.where(total > 0, total, 1.0)
    return out


def relative_error(output: np.ndarray, reference: np.ndarray) -> float:
    """``||output - reference|| / ||reference||`` (Frobenius, in float64)."""
    return float(np.linalg.norm(output.astype(np.float64) - reference) / np.linalg.norm(reference))
