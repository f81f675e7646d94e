"""The command-line options that choose how a model is compiled, shared by `sofa-compile` and `sofa-run`."""

from __future__ import annotations

import argparse
from typing import Any

from sofa_compiler.driver import PRESETS, CompiledModel, compile_model


def add_compile_options(parser: argparse.ArgumentParser) -> None:
    """The model argument and the options `compile_from_options` reads."""
    parser.add_argument("model", help="an ONNX model (.onnx)")
    parser.add_argument("--target", metavar="FILE.toml", help="hardware config (default: the paper's sofa-28nm)")
    parser.add_argument("--keep", type=float, default=1.0, help="top-k keep ratio, 0 < k <= 1 (1.0 = exact)")
    parser.add_argument("--tile", type=int, help="KV tile size Bc (default: chosen from the target's SRAM)")
    parser.add_argument("--radius", type=float, help="SADS sphere radius in logits (default: no clip)")
    parser.add_argument(
        "--pipeline",
        default="coordinated",
        help=f"{' or '.join(PRESETS)}: SOFA's coordinated tiling, or the separate-stage baseline",
    )
    parser.add_argument(
        "--no-kv-generation",
        dest="kv_generation",
        action="store_false",
        help="read host-computed K/V rows instead of generating only the selected rows on chip",
    )


def compile_from_options(args: argparse.Namespace, on_stage: Any = None, **extra: Any) -> CompiledModel:
    """`compile_model` with the options `add_compile_options` declared."""
    return compile_model(
        args.model,
        args.target,
        args.keep,
        args.tile,
        args.radius,
        args.pipeline,
        on_stage,
        kv_generation=args.kv_generation,
        **extra,
    )
