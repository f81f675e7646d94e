"""The compiler driver: ONNX in, tiled IR at every stage, accelerator kernels out.

Stages (each one an IR the user can dump):

=========  ==========================================================
onnx-ir    the imported graph: `sofa.attention` + host ops
sofa       the same, bound to a target (`sofa.target` module attribute)
tiled      after `sofa-coordinated-tiling` and `sofa-preprocess-weights`: the
           SOFA stages with one shared tiling, W_k in LZ form
isa        after `sofa-lower-to-isa`: host code + `sofa_isa.program` kernels
=========  ==========================================================

`compile()` returns a `CompiledModel`; `CompiledModel.run()` executes host
partitions on onnxruntime (sessions made once per compiled model), host glue
ops with numpy and kernels on the simulator. `save()` writes a `.sofa`
bundle (`sofa_compiler/bundle.py`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.dialects.func import FuncOp
from xdsl.interpreter import Interpreter
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException, InterpretationError

from dialects.host import BFLOAT16, numpy_dtype
from dialects.sofa import (
    PLAIN_SADS,
    KernelCallOp,
    TargetAttr,
    far_problem,
    keep_problem,
    radius_problem,
    sphere_radius,
    tile_problem,
)
from dialects.sofa_isa import ProgramOp
from passes import get_all_passes
from passes.apply_tuning import ApplyTuningPass
from passes.bind_target import BindTargetPass
from passes.coordinated_tiling import CoordinatedTilingPass, SeparateStageTilingPass
from passes.lower_to_isa import LowerToIsaPass
from passes.preprocess_weights import PreprocessWeightsPass
from sofa_compiler.context import sofa_context
from sofa_compiler.decode_choice import AUTO, DecodeChoice, choose_decode_lowerings
from sofa_compiler.frontend import import_model
from sofa_compiler.frontend.placement import Placement, read_placements
from sofa_compiler.interpreters import register_all
from sofa_compiler.interpreters.host import PartitionSessions
from sofa_compiler.ir_printing import print_ir
from sofa_compiler.isa.container import Program
from sofa_compiler.isa.ir import ir_to_program
from sofa_compiler.kernel_tiling import KernelTiling, kernel_tilings
from sofa_compiler.reproducer import PipelineRecord
from sofa_compiler.runtime import KernelFunctions, KernelRunner
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS
from sofa_compiler.sim.progress import RunProgress
from sofa_compiler.sim.report import Report, combine_reports
from sofa_compiler.sim.trace import Timeline
from sofa_compiler.tuning import Tuning, TuningError, as_tuning


class CompileError(Exception):
    """Bad options or a model/target the compiler cannot handle; the message says which."""


class CompileWarning(UserWarning):
    """A compiled model that will not do what its options ask (the tools print it as one warning line)."""


@dataclass
class Stage:
    """The IR after one step of the pipeline, printed when first asked for."""

    snapshot: ModuleOp  # a clone: cheap, as clones share the (immutable) attributes, weights included
    record: PipelineRecord  # the whole pipeline and how much of it made this IR

    @property
    def name(self) -> str:
        """onnx-ir, sofa, tiled or isa."""
        return self.record.stage

    @property
    def step(self) -> str:
        """What produced it: ``import`` or a pass name."""
        return self.record.step

    @cached_property
    def text(self) -> str:
        return print_ir(self.snapshot)

    def dump(self, elide_larger_than: int | None = None) -> str:
        """The stage as a reproducer (`sofa_compiler.reproducer`), constants over `elide_larger_than` elided."""
        text = self.text if elide_larger_than is None else print_ir(self.snapshot, elide_larger_than)
        return self.record.dump(text)


def make_context() -> Context:
    """A context with every dialect the compiler's IR uses."""
    return sofa_context()


@dataclass
class ModelReport:
    """Simulator figures of one model run: per kernel call and in total, and its timeline (for a trace)."""

    kernels: list[tuple[str, Report]]
    total: Report | None
    timeline: Timeline = field(default_factory=Timeline)


@dataclass
class CompiledModel:
    """A model compiled for one target: host IR, kernels and every stage's IR."""

    config: HardwareConfig
    host: ModuleOp
    programs: dict[str, Program]
    stages: list[Stage] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    sessions: PartitionSessions = field(init=False, repr=False)
    """onnxruntime sessions of the host partitions, made once here, not per run."""

    def __post_init__(self) -> None:
        try:
            self.sessions = PartitionSessions(self.host)
        except InterpretationError as error:
            raise CompileError(str(error)) from None

    @property
    def placements(self) -> list[Placement]:
        """Where each ONNX attention node runs: the accelerator (which kernel) or the host (why)."""
        kernels = [op.kernel.data for op in self.host.walk() if isinstance(op, KernelCallOp)]
        return read_placements(self.host, kernels)

    @property
    def tilings(self) -> dict[str, KernelTiling]:
        """The tiling each accelerator kernel runs (Bc, Tc, n, m), by kernel name."""
        return kernel_tilings(self.host)

    @property
    def main(self) -> FuncOp:
        for op in self.host.body.block.ops:
            if isinstance(op, FuncOp) and op.sym_name.data == "main":
                return op
        raise CompileError("the compiled model has no @main function")

    def input_specs(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(name, shape, numpy dtype) of each model input, in order."""
        return _specs(self.main.args, self.main.arg_attrs, "arg")

    def output_names(self) -> list[str]:
        return [name for name, _, _ in _specs([], self.main.res_attrs, "result", self.main.function_type.outputs)]

    def run(
        self,
        inputs: Mapping[str, np.ndarray],
        progress: RunProgress | None = None,
        max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
        trace: bool = False,
        runner: KernelRunner | None = None,
    ) -> tuple[dict[str, np.ndarray], ModelReport]:
        """Run the model: host ops on numpy and onnxruntime, every kernel call on the simulator.

        Each kernel call runs within `max_instructions`. With `trace`, the report's
        timeline records every host partition and kernel event (for a Perfetto
        trace); without it, memory does not grow with the number of instructions.
        `runner` answers the kernel calls instead of the simulator (`sofa-dse`'s golden evaluation).
        """
        args = []
        for name, shape, dtype in self.input_specs():
            if name not in inputs:
                raise CompileError(f"missing input '{name}' (the model needs {', '.join(self.input_names())})")
            value = np.asarray(inputs[name])
            if tuple(value.shape) != shape:
                given, expected = list(value.shape), list(shape)
                raise CompileError(f"input '{name}' has shape {given}, but the model was compiled for {expected}")
            args.append(_input_array(name, value, np.dtype(dtype)))
        timeline = Timeline() if trace else None
        runner = runner or KernelRunner(
            self.programs, self.config, progress, timeline=timeline, max_instructions=max_instructions
        )
        interpreter = Interpreter(self.host)
        # The kernels run on `runner`, not as sofa_isa IR.
        register_all(interpreter, self.sessions, isa=False, timeline=timeline)
        interpreter.register_implementations(KernelFunctions(runner))
        results = interpreter.call_op("main", tuple(args))
        # Kernels deliver f32; each output is rounded to the type the model declares for it (f16, bf16).
        specs = _specs([], self.main.res_attrs, "result", self.main.function_type.outputs)
        outputs = {
            name: np.asarray(value).astype(dtype, copy=False)
            for (name, _, dtype), value in zip(specs, results, strict=True)
        }
        reports = [(run.kernel, run.report) for run in runner.runs]
        total = combine_reports([r for _, r in reports]) if reports else None
        return outputs, ModelReport(reports, total, timeline if timeline is not None else Timeline())

    def input_names(self) -> list[str]:
        return [name for name, _, _ in self.input_specs()]

    def ir(self, stage: str, elide_larger_than: int | None = None) -> str:
        """The IR of a stage (after the last pass that belongs to it), constants over `elide_larger_than` elided."""
        for entry in reversed(self.stages):
            if entry.name == stage:
                return entry.text if elide_larger_than is None else print_ir(entry.snapshot, elide_larger_than)
        raise CompileError(f"no IR for stage '{stage}' (stages: {', '.join(s.name for s in self.stages)})")


def _input_array(name: str, value: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """An input in the type the model declares; bfloat16 read from .npz is raw 2-byte void (numpy has no bf16)."""
    if value.dtype.kind == "V" and value.dtype.itemsize == 2 and dtype == BFLOAT16:
        return value.view(dtype)
    try:
        return value.astype(dtype, copy=False)
    except (TypeError, ValueError) as error:
        raise CompileError(f"input '{name}' of type {value.dtype} cannot be read as {dtype}: {error}") from None


def _specs(args: Any, attrs: Any, prefix: str, types: Any = None) -> list[tuple[str, tuple[int, ...], str]]:
    specs = []
    types = list(types) if types is not None else [a.type for a in args]
    for index, value_type in enumerate(types):
        name = f"{prefix}{index}"
        if attrs is not None and index < len(attrs.data):
            entry = attrs.data[index].data.get("sofa.name")
            if isinstance(entry, StringAttr):
                name = entry.data
        shape = tuple(value_type.get_shape()) if isinstance(value_type, TensorType) else ()
        element = value_type.get_element_type() if isinstance(value_type, TensorType) else value_type
        specs.append((name, shape, str(numpy_dtype(element))))
    return specs


@dataclass(frozen=True)
class Features:
    """Which SOFA techniques a compile uses; the pipelines are presets, ablations mix them.

    * ``predictor``: ``dlzs`` (SOFA) or ``mul4`` (4-bit multiply, prior work);
    * ``selection``: ``sads`` (per-tile top-k) or ``row`` (whole-row top-k);
    * ``attention``: ``sufa`` (sorted-updating) or ``fa2`` (FlashAttention-2);
    * ``rass``: gather the RASS-ordered union of selected K/V rows, or load whole tiles;
    * ``dataflow``: ``coordinated`` (A-hat stays on chip) or ``separate`` (A-hat via DRAM);
    * ``kv_generation``: where K/V come from a constant projection of the tokens, generate
      only the selected rows on chip (paper §2.1) instead of reading host-computed K/V;
    * ``far``: below 1, budgeted SADS (`numerics.sads_budget`): far KV tiles keep
      ``ceil(far * m)`` keys per row and the rest moves to the row's last two tiles.
    """

    predictor: str = "dlzs"
    selection: str = "sads"
    attention: str = "sufa"
    rass: bool = True
    dataflow: str = "coordinated"
    kv_generation: bool = True
    far: float = PLAIN_SADS


@dataclass(frozen=True)
class DecodeOptions:
    """How one-query attentions (decode steps) lower: on the decode kernel (``enabled``) with ``lowering``
    (``standard``, ``bifurcated``, or ``auto``: the cost model's choice per step, `decode_choice`) and
    ``prefix`` cache rows every sample shares (`sofa-coordinated-tiling`)."""

    enabled: bool = False
    """Off by default: the tiled IR's interpreter runs an unexpanded attention exactly, not as the decode kernel."""
    lowering: str = "standard"
    prefix: int = 0


PRESETS = {
    "coordinated": Features(),
    "separate": Features(selection="row", attention="fa2", rass=False, dataflow="separate"),
}
CHOICES = {
    "predictor": ("dlzs", "mul4"),
    "selection": ("sads", "row"),
    "attention": ("sufa", "fa2"),
    "dataflow": ("coordinated", "separate"),
}


def resolve_features(pipeline: str, overrides: Mapping[str, Any]) -> Features:
    """The pipeline's preset with explicit knobs on top; clear errors for impossible mixes."""
    if pipeline not in PRESETS:
        raise CompileError(f"unknown pipeline '{pipeline}' (choose from {', '.join(PRESETS)})")
    knobs = {key: value for key, value in overrides.items() if value is not None}
    for key, value in knobs.items():
        if key in CHOICES and value not in CHOICES[key]:
            raise CompileError(f"{key} must be one of {', '.join(CHOICES[key])}, got '{value}'")
    features = replace(PRESETS[pipeline], **knobs)
    if features.selection == "row" and features.dataflow == "coordinated":
        raise CompileError("whole-row selection needs every A-hat tile at once: use dataflow 'separate'")
    if problem := far_problem(features.far):
        raise CompileError(f"--far {problem}")
    if features.far != PLAIN_SADS and features.dataflow != "coordinated":
        raise CompileError("budgeted SADS (far < 1) carries row budgets across the coordinated tile loop: "
                           "use dataflow 'coordinated'")  # fmt: skip
    return features


def _pipeline(
    target: TargetAttr,
    keep: float,
    tile: int,
    radius: float | None,
    features: Features,
    tuning: Tuning | None = None,
    decode: DecodeOptions = DecodeOptions(),
) -> list[tuple[str, ModulePass]]:
    """(stage, pass) in order; a stage's IR is the one after its last pass."""
    bind: list[tuple[str, ModulePass]] = [("sofa", BindTargetPass.for_target(target))]
    tuned: list[tuple[str, ModulePass]] = []
    if tuning is not None and tuning.layers:
        tiles, keeps = tuning.pass_options(keep)
        tuned = [("tiled", ApplyTuningPass(tiles=tiles, keeps=keeps))]
    tiling: ModulePass
    if features.dataflow == "separate":
        tiling = SeparateStageTilingPass(
            keep=keep, radius=radius, tile=tile, predictor=features.predictor, selection=features.selection
        )
    else:
        tiling = CoordinatedTilingPass(
            keep=keep,
            radius=radius,
            tile=tile,
            predictor=features.predictor,
            far=features.far,
            decode=decode.enabled,
            decode_lowering="standard" if decode.lowering == AUTO else decode.lowering,
            decode_prefix=decode.prefix,
        )
    # No config_hash: the pass takes the hash of the module's target, as the simulator does of its config.
    lower = LowerToIsaPass(
        pipeline=features.dataflow,
        attention=features.attention,
        rass=features.rass,
        kv_generation=features.kv_generation,
    )
    return [*bind, *tuned, ("tiled", tiling), ("tiled", PreprocessWeightsPass()), ("isa", lower)]


PASS_STAGES = {
    "sofa-bind-target": "sofa",
    "sofa-apply-tuning": "tiled",
    "sofa-coordinated-tiling": "tiled",
    "sofa-separate-stage-tiling": "tiled",
    "sofa-preprocess-weights": "tiled",
    "sofa-lower-to-isa": "isa",
}
"""The stage each of the compiler's passes ends in; any other pass stays in the stage before it."""


def parse_pass_pipeline(target: TargetAttr, text: str) -> list[tuple[str, ModulePass]]:
    """``--pass-pipeline`` (``builtin.module(a{x=1},b)`` or ``a{x=1},b``) after binding `target`, as (stage, pass)."""
    from xdsl.passes import PassPipeline
    from xdsl.universe import Universe

    from sofa_compiler.reproducer import split_pipeline

    available = {**Universe.get_multiverse().all_passes, **get_all_passes()}
    try:
        passes = PassPipeline.parse_spec(available, ",".join(split_pipeline(text))).passes
    except (ValueError, ArgSpecParseError) as error:  # the latter derives from BaseException
        raise CompileError(f"--pass-pipeline: {error}") from None
    pipeline: list[tuple[str, ModulePass]] = [("sofa", BindTargetPass.for_target(target))]
    for compiler_pass in passes:
        pipeline.append((PASS_STAGES.get(compiler_pass.name, pipeline[-1][0]), compiler_pass))
    return pipeline


def check_options(keep: float, tile: int | None, radius: float | None) -> None:
    if problem := keep_problem(keep):
        raise CompileError(f"--keep {problem}")
    if tile is not None and (problem := tile_problem(tile)):
        raise CompileError(f"--tile {problem}")
    if problem := radius_problem(sphere_radius(radius)):
        raise CompileError(f"--radius {problem}")


def compile_model(
    model: str | Path | onnx.ModelProto,
    target: HardwareConfig | str | Path | None = None,
    keep: float = 1.0,
    tile: int | None = None,
    radius: float | None = None,
    pipeline: str = "coordinated",
    on_stage: Callable[[Stage], None] | None = None,
    *,
    predictor: str | None = None,
    selection: str | None = None,
    attention: str | None = None,
    rass: bool | None = None,
    dataflow: str | None = None,
    kv_generation: bool | None = None,
    far: float | None = None,
    tuning: Tuning | Mapping[str, Any] | str | Path | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    pass_pipeline: str | None = None,
    decode: DecodeOptions = DecodeOptions(),
) -> CompiledModel:
    """Compile an ONNX model for a SOFA target (default: the paper's 28 nm design).

    ``pipeline`` picks a preset (`PRESETS`); the keyword knobs override single
    features of it for ablations (`Features`). ``tuning`` (a `Tuning`, its
    dict form or a JSON/TOML file, `sofa_compiler.tuning`) sets the tile and
    keep ratio per attention layer; its ``defaults`` replace ``tile``/``keep``.
    ``input_shapes`` (name -> shape) fixes the dynamic dimensions of graph inputs;
    the compiled model then runs on inputs of exactly those shapes.
    ``decode`` (`DecodeOptions`): whether decode steps run on the decode kernel, and how.
    ``pass_pipeline`` (MLIR's ``--pass-pipeline`` syntax) replaces the passes
    the options would run after ``sofa-bind-target``.
    """
    resolved: Tuning | None = None
    if tuning is not None:
        try:
            resolved = as_tuning(tuning)
        except TuningError as error:
            raise CompileError(str(error)) from None
        keep = resolved.defaults.keep if resolved.defaults.keep is not None else keep
        tile = resolved.defaults.tile if resolved.defaults.tile is not None else tile
    check_options(keep, tile, radius)
    overrides = {
        "predictor": predictor,
        "selection": selection,
        "attention": attention,
        "rass": rass,
        "dataflow": dataflow,
        "kv_generation": kv_generation,
        "far": far,
    }
    features = resolve_features(pipeline, overrides)
    config = target if isinstance(target, HardwareConfig) else load_config(target)
    bound = TargetAttr(config.as_target_dict())
    if pass_pipeline is not None:
        passes = parse_pass_pipeline(bound, pass_pipeline)
    else:
        passes = _pipeline(bound, keep, tile or 0, radius, features, resolved, decode)
    ctx = make_context()
    module = import_model(model, input_shapes)
    specs = tuple(str(compiler_pass.pipeline_pass_spec()) for _, compiler_pass in passes)
    stages: list[Stage] = []

    def record(applied: int) -> None:
        stage = Stage(module.clone(), PipelineRecord(specs, tuple(name for name, _ in passes), applied))
        stages.append(stage)
        if on_stage is not None:
            on_stage(stage)

    record(0)
    decode_choices: list[DecodeChoice] = []
    for applied, (_, compiler_pass) in enumerate(passes, start=1):
        try:
            compiler_pass.apply(ctx, module)
        except DiagnosticException as error:  # a pass that cannot handle this model on this target: say why
            raise CompileError(str(error)) from error
        if isinstance(compiler_pass, CoordinatedTilingPass) and decode.lowering == AUTO:
            decode_choices = choose_decode_lowerings(module, config)
        module.verify()
        record(applied)
    programs = {op.sym_name.data: ir_to_program(op) for op in module.body.block.ops if isinstance(op, ProgramOp)}
    if keep < 1.0 and not programs:
        message = f"no attention runs on the accelerator, so keep={keep:g} has no effect (the warnings above say why)"
        warnings.warn(message, CompileWarning, stacklevel=2)
    host = module.clone()
    for op in list(host.body.block.ops):
        if isinstance(op, ProgramOp):
            op.detach()
            op.erase()
    options = {"keep": keep, "tile": tile, "radius": sphere_radius(radius), **asdict(features)}
    if resolved is not None:
        options["tuning"] = resolved.to_dict()
    if decode != DecodeOptions():
        options["decode"] = asdict(decode) | {"choices": [choice.to_dict() for choice in decode_choices]}
    return CompiledModel(config, host, programs, stages, options)
