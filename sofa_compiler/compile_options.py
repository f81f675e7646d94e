"""The command-line options that choose how a model is compiled, shared by `sofa-compile` and `sofa-run`.

Declaring the options imports none of the compiler (onnx, xDSL, numpy take
about a second), so the tools' ``--help`` stays fast; `compile_from_options`
imports it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sofa_compiler.cli import InputShapeError, add_input_shape_option, input_shapes

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from sofa_compiler.driver import CompiledModel

EMIT_KINDS = ("onnx-ir", "sofa", "tiled", "isa", "asm", "bin")
"""What `sofa-compile --emit` writes: a stage's IR, the kernels' assembly, or the model bundle."""

PIPELINE_HELP = "coordinated (SOFA's coordinated tiling, the default) or separate (the separate-stage baseline)"
"""The `driver.PRESETS` by name; tests/driver/test_startup.py checks that it names every one."""


def add_compile_options(parser: argparse.ArgumentParser) -> None:
    """The model argument and the options `compile_from_options` reads."""
    parser.add_argument("model", help="an ONNX model (.onnx)")
    parser.add_argument("--target", metavar="FILE.toml", help="hardware config (default: the paper's sofa-28nm)")
    parser.add_argument("--keep", type=float, default=1.0, help="top-k keep ratio, 0 < k <= 1 (1.0 = exact)")
    parser.add_argument("--tile", type=int, help="KV tile size Bc (default: chosen from the target's SRAM)")
    parser.add_argument("--radius", type=float, help="SADS sphere radius in logits (default: no clip)")
    parser.add_argument("--pipeline", default="coordinated", help=PIPELINE_HELP)
    parser.add_argument(
        "--far",
        type=float,
        help="budgeted SADS: far KV tiles keep ceil(far * m) keys per row, the rest moves to the row's "
        "last two tiles (0 < far < 1; default 1 = plain SADS)",
    )
    parser.add_argument(
        "--no-kv-generation",
        dest="kv_generation",
        action="store_false",
        help="read host-computed K/V rows instead of generating only the selected rows on chip",
    )
    add_input_shape_option(parser)


def check_compile_options(args: argparse.Namespace) -> None:
    """The options `add_compile_options` declared, checked before any file is read or work done.

    Stricter than `compile_model` on ``--tile``: a user's flag takes the tiles the hardware sorts.
    """
    from sofa_compiler.driver import CompileError, check_options, resolve_features

    resolve_features(args.pipeline, {"far": args.far})
    check_options(args.keep, args.tile, args.radius)
    if args.tile is not None and (args.tile < 2 or args.tile & (args.tile - 1)):
        # SADS sorts each tile's scores with bitonic sort cores, which take powers of two. The Python
        # API still takes any tile >= 1, which the tests use to probe the kernels' edge cases.
        raise CompileError(
            f"--tile must be a power of two of at least 2 (SADS sorts tiles bitonically), got {args.tile}"
        )
    try:
        input_shapes(args.input_shape)
    except InputShapeError as error:
        raise CompileError(str(error)) from None


def dynamic_inputs(model: onnx.ModelProto) -> set[str]:
    """The graph inputs (initializers aside) with a dimension the model leaves open."""
    initializers = {init.name for init in model.graph.initializer}
    dynamic = set()
    for value in model.graph.input:
        tensor = value.type.tensor_type
        static = tensor.HasField("shape") and all(dim.dim_value > 0 for dim in tensor.shape.dim)
        if value.name not in initializers and not static:
            dynamic.add(value.name)
    return dynamic


def shapes_from_inputs(
    model: onnx.ModelProto, flags: Mapping[str, tuple[int, ...]], inputs: Mapping[str, np.ndarray]
) -> dict[str, tuple[int, ...]]:
    """The ``--input-shape`` flags, plus the shapes of the `inputs` arrays for the other dynamic inputs.

    A flag and an array that disagree on an input are an error: the model would
    be compiled for one shape and run on another.
    """
    import numpy as np

    from sofa_compiler.driver import CompileError

    shapes = dict(flags)
    for name in sorted(dynamic_inputs(model) & set(inputs)):
        given = tuple(np.shape(inputs[name]))
        if name in flags and flags[name] != given:
            raise CompileError(
                f"input '{name}': --input-shape gives {list(flags[name])},"
                f" but its --inputs array has shape {list(given)}"
            )
        shapes[name] = given
    return shapes


def compile_from_options(
    args: argparse.Namespace,
    on_stage: Any = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    **extra: Any,
) -> CompiledModel:
    """`compile_model` with the options `add_compile_options` declared.

    Given the `inputs` the model will run on (``--inputs X.npz``), dynamic
    input dimensions that no ``--input-shape`` fixes take those arrays' shapes.
    """
    from sofa_compiler.driver import CompileError, compile_model
    from sofa_compiler.frontend.graph import read_model

    try:
        shapes = input_shapes(args.input_shape)
    except InputShapeError as error:
        raise CompileError(str(error)) from None
    model: str | onnx.ModelProto = args.model
    if inputs is not None:
        model = read_model(args.model)
        shapes = shapes_from_inputs(model, shapes, inputs)
    return compile_model(
        model,
        args.target,
        args.keep,
        args.tile,
        args.radius,
        args.pipeline,
        on_stage,
        kv_generation=args.kv_generation,
        far=args.far,
        input_shapes=shapes,
        **extra,
    )
