"""Random-weight transformers models, exported as users export them, run their attention on the accelerator.

Each architecture is built from a small config (2 layers, hidden 64; no downloads) with eager and
SDPA attention and exported by torch's dynamo exporter at opsets 18 and 23, at a sequence length
that is not a multiple of any tile. At keep 1.0 the compiled model matches onnxruntime within 1e-4
and every attention is placed on the accelerator, one kernel per layer. Exports are cached per
session: each one is made once. Skipped without torch and transformers (the `eval` extra).
"""

from __future__ import annotations

import functools
import io
import re
import warnings
from typing import Any

import numpy as np
import onnx
import pytest

import sofa_compiler
from sofa_compiler.frontend import FrontendWarning
from tests.fp16_tolerance import assert_close_to_fp32_reference
from tests.frontend.frontend_harness import run_onnxruntime

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxscript")  # torch's dynamo exporter needs it

LENGTH, LAYERS, VOCAB, POSITIONS = 50, 2, 100, 128
"""LENGTH is not a multiple of any tile."""
PADDED = 7
"""BERT's attention_mask hides its last PADDED keys."""
ACCELERATOR = re.compile(r"attention \S+: accelerator \(kernel attn\d+\)")
SIZES: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": LAYERS}
HEADS: dict[str, Any] = {"num_attention_heads": 4, "max_position_embeddings": POSITIONS, "vocab_size": VOCAB}


def config(name: str) -> Any:
    """A small config of each architecture: GQA for Llama and Mistral, MQA for Qwen2."""
    if name == "llama":
        return transformers.LlamaConfig(**SIZES, **HEADS, num_key_value_heads=2)
    if name == "qwen2":
        return transformers.Qwen2Config(**SIZES, **HEADS, num_key_value_heads=1)
    if name == "phi3":
        return transformers.Phi3Config(**SIZES, **HEADS, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if name == "gpt_neox":
        return transformers.GPTNeoXConfig(**SIZES, **HEADS)
    if name == "gpt2":
        return transformers.GPT2Config(n_embd=64, n_layer=LAYERS, n_head=4, n_positions=POSITIONS, vocab_size=VOCAB)
    if name == "opt":
        sizes = {"hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": LAYERS, "word_embed_proj_dim": 64}
        return transformers.OPTConfig(**sizes, **HEADS, pad_token_id=1)
    if name == "bert":
        return transformers.BertConfig(**SIZES, **HEADS)
    if name == "mistral":
        # A window shorter than LENGTH is a general mask (the masks issue); this one covers every key.
        return transformers.MistralConfig(**SIZES, **HEADS, num_key_value_heads=2, sliding_window=POSITIONS)
    raise ValueError(name)


MODELS = ["llama", "qwen2", "phi3", "gpt_neox", "gpt2", "opt", "bert", "mistral"]
ROTARY = {"llama", "qwen2", "phi3", "gpt_neox", "mistral"}


class LastHidden(torch.nn.Module):
    """The base model's last hidden state, without a KV cache; BERT also takes its padding mask."""

    def __init__(self, model: Any, padding_mask: bool) -> None:
        super().__init__()
        self.model = model
        self.padding_mask = padding_mask

    def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
        options = {"attention_mask": attention_mask} if self.padding_mask else {"use_cache": False}
        return self.model(input_ids=input_ids, **options).last_hidden_state


def build(name: str, attention: str, layer_config: Any = None) -> tuple[Any, tuple[Any, ...]]:
    """The random-weight model (seeded) and its example inputs."""
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(layer_config or config(name), attn_implementation=attention).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # biases and norms start at 0 and 1: make them count
            parameter.add_(torch.randn_like(parameter), alpha=0.02)
    ids = torch.zeros(1, LENGTH, dtype=torch.int64)
    if name == "bert":
        return LastHidden(model, padding_mask=True), (ids, torch.ones(1, LENGTH, dtype=torch.int64))
    return LastHidden(model, padding_mask=False), (ids,)


@functools.cache
def exported(name: str, attention: str, opset: int) -> onnx.ModelProto:
    """The model exported by torch's dynamo exporter (made once per session)."""
    module, args = build(name, attention)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, verbose=False)
    return program.model_proto


def model_inputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(0).integers(0, VOCAB, (1, LENGTH)).astype(np.int64)
    feeds = {"input_ids": ids}
    if any(value.name == "attention_mask" for value in model.graph.input):
        feeds["attention_mask"] = (np.arange(LENGTH) < LENGTH - PADDED).astype(np.int64)[None]
    return feeds


def check_on_accelerator(model: onnx.ModelProto, layers: int = LAYERS) -> sofa_compiler.CompiledModel:
    """Compile without a warning, place every attention on the accelerator, and match onnxruntime."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrontendWarning)
        compiled = sofa_compiler.compile(model, keep=1.0)
    lines = [placement.line() for placement in compiled.placements]
    assert len(lines) == layers, lines
    assert all(ACCELERATOR.fullmatch(line) for line in lines), lines
    inputs = model_inputs(model)
    outputs, report = compiled.run(inputs)
    assert len(report.kernels) == layers
    (expected,) = run_onnxruntime(model, inputs)
    (actual,) = outputs.values()
    assert_close_to_fp32_reference(actual, expected)
    return compiled


@pytest.mark.parametrize("opset", [18, 23])
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("name", MODELS)
def test_model_runs_attention_on_accelerator(name: str, attention: str, opset: int) -> None:
    check_on_accelerator(exported(name, attention, opset))


@pytest.mark.parametrize("name", MODELS)
def test_on_demand_kv_only_without_rotary_embeddings(name: str) -> None:
    """K = RoPE(X W_k) is no plain projection: rotary models read host-computed K and V, never
    `sofa.kv_projection`. (Where a model without RoPE gets one depends on how the exporter writes
    its projections, so only the rotary side is pinned down here.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(exported(name, "eager", 23), keep=1.0)
    projections = compiled.ir("onnx-ir").count("sofa.kv_projection ")
    if name in ROTARY:
        assert projections == 0
    elif name in ("bert", "opt", "gpt2"):
        assert projections == LAYERS


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_gpt2_torchscript_exporter(attention: str) -> None:
    """The TorchScript exporter (dynamo=False) at opset 23 writes the causal mask its own way."""
    from transformers import masking_utils

    module, args = build("gpt2", attention)
    buffer = io.BytesIO()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        # Packed-sequence detection uses aten::diff, which the TorchScript exporter lacks; one sequence is not packed.
        patch.setattr(masking_utils, "find_packed_sequence_indices", lambda position_ids: None)
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=23, input_names=["input_ids"])
    check_on_accelerator(onnx.load_from_string(buffer.getvalue()))


def test_sliding_window_shorter_than_the_sequence_runs_on_the_accelerator() -> None:
    """Mistral's window of 16 < LENGTH keys is a banded mask: a closed-form `#sofa.tile_mask`, on the accelerator."""
    module, args = build(
        "mistral", "sdpa", transformers.MistralConfig(**SIZES, **HEADS, num_key_value_heads=2, sliding_window=16)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.onnx.export(module, args, dynamo=True, opset_version=23, verbose=False).model_proto
    check_on_accelerator(model)
