"""`sofa-run-ir`: run a function of an MLIR file with xDSL's interpreter.

    sofa-run-ir FILE.mlir [--inputs X.npz | --random-inputs SEED]
                [--symbol main] [--output OUT.npz] [--print]

Inputs. MLIR functions have no argument names, so the arrays of `--inputs`
are matched to the arguments of `--symbol` like this:

* keys `arg0, arg1, ..., argN-1` (exactly those): by index;
* otherwise, keys equal to the SSA names the file gives the arguments (`%q`
  is key `q`): by name;
* otherwise: by the order of the keys in the file (`np.savez(path, *arrays)`
  writes `arr_0, arr_1, ...` in that order).

`--random-inputs SEED` instead draws each argument from a standard normal
distribution (float types only), the same for the same SEED.

Tensor arguments take numpy arrays whose shape and dtype must match the type;
scalar arguments take 0-d arrays. Results are checked against the function's
result types, summarised as `result[i]: SHAPE DTYPE`, printed in full with
`--print` and saved as `result0, result1, ...` with `--output`.
"""

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    ModuleOp,
    Signedness,
    TensorType,
)
from xdsl.interpreter import Interpreter
from xdsl.interpreters.shaped_array import ShapedArray
from xdsl.ir import Attribute, Operation
from xdsl.traits import CallableOpInterface
from xdsl.utils.exceptions import DiagnosticException, ParseError

if TYPE_CHECKING:
    from sofa_compiler.runtime import KernelRunner

from sofa_compiler.cli import add_budget_option, exit_statuses
from sofa_compiler.context import sofa_context
from sofa_compiler.files import NpzError, atomic_write, read_npz
from sofa_compiler.parser import SofaParser, parser_assertions_as_errors
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS, check_tensor


class RunError(Exception):
    """A problem with the command line or the inputs, reported without a traceback."""


def numpy_dtype(element_type: Attribute) -> np.dtype[Any]:
    """The numpy dtype that holds values of an MLIR element type."""
    match element_type:
        case Float16Type():
            return np.dtype(np.float16)
        case Float32Type():
            return np.dtype(np.float32)
        case Float64Type():
            return np.dtype(np.float64)
        case IndexType():
            return np.dtype(np.int64)
        case IntegerType() if element_type.width.data == 1:
            return np.dtype(np.bool_)
        case IntegerType() if element_type.width.data in (8, 16, 32, 64):
            unsigned = element_type.signedness.data == Signedness.UNSIGNED
            return np.dtype(f"{'u' if unsigned else ''}int{element_type.width.data}")
        case _:
            raise RunError(f"element type {element_type} has no numpy equivalent")


def split_type(typ: Attribute) -> tuple[tuple[int, ...] | None, Attribute]:
    """(shape, element type) of a tensor type; (None, typ) for a scalar.

    Dynamic dimensions are `DYNAMIC_INDEX` in the shape.
    """
    if isinstance(typ, TensorType):
        return tuple(typ.get_shape()), typ.get_element_type()
    return None, typ


def shape_matches(expected: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    """Whether an array shape fits a tensor shape (dynamic dimensions fit anything)."""
    return len(expected) == len(actual) and all(e in (DYNAMIC_INDEX, a) for e, a in zip(expected, actual))


@dataclass(frozen=True)
class Signature:
    """What the runner needs to know about the function it calls."""

    arg_types: tuple[Attribute, ...]
    result_types: tuple[Attribute, ...]
    arg_names: tuple[str | None, ...]
    """SSA names the file gave the arguments (`%q` -> "q"), if any."""

    @staticmethod
    def of(func: Operation) -> "Signature":
        if (trait := func.get_trait(CallableOpInterface)) is None:
            raise RunError(f"{func.name} is not a function")
        arg_types = trait.get_argument_types(func)
        # A declaration has no body, hence no argument names.
        block = trait.get_callable_region(func).blocks.first
        names = tuple(arg.name_hint for arg in block.args) if block else (None,) * len(arg_types)
        return Signature(arg_types, trait.get_result_types(func), names)

    def label(self, index: int) -> str:
        name = self.arg_names[index]
        return f"argument {index} (%{name})" if name else f"argument {index}"


def load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except NpzError as error:
        raise RunError(str(error)) from error


def match_inputs(sig: Signature, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Order the arrays of an .npz file like the function's arguments (see module doc)."""
    count = len(sig.arg_types)
    keys = list(arrays)
    indexed = [f"arg{i}" for i in range(count)]
    named = sig.arg_names

    if set(keys) == set(indexed):
        return [arrays[key] for key in indexed]
    if all(named) and len(set(named)) == count and set(keys) == set(named):
        return [arrays[name] for name in named if name is not None]
    if any(re.fullmatch(r"arg\d+", key) for key in keys):
        # Looks like an attempt at index keys; positional matching would hide the typo.
        raise RunError(f"inputs have keys {keys}, but the function takes {count} arguments: expected {indexed}")
    if len(keys) != count:
        raise RunError(f"inputs hold {len(keys)} arrays ({', '.join(keys) or 'none'}), but the function takes {count}")
    return [arrays[key] for key in keys]


def check_input(sig: Signature, index: int, value: np.ndarray) -> Any:
    """Check one input against its argument type; return the interpreter value."""
    typ = sig.arg_types[index]
    shape, element_type = split_type(typ)
    dtype = numpy_dtype(element_type)
    label = sig.label(index)
    if value.dtype != dtype:
        raise RunError(f"{label}: expected dtype {dtype} for {typ}, got {value.dtype}")
    if shape is None:
        if value.shape != ():
            raise RunError(f"{label}: expected a scalar (0-d array) for {typ}, got shape {value.shape}")
        # xDSL's arith and func implementations work on Python scalars.
        return value.item()
    if not shape_matches(shape, value.shape):
        expected = "(" + ", ".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape) + ")"
        raise RunError(f"{label}: expected shape {expected} for {typ}, got {value.shape}")
    return value


def random_inputs(sig: Signature, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs: list[np.ndarray] = []
    for index, typ in enumerate(sig.arg_types):
        shape, element_type = split_type(typ)
        dtype = numpy_dtype(element_type)
        label = sig.label(index)
        if dtype.kind != "f":
            raise RunError(f"{label}: --random-inputs only fills float arguments, not {typ}; use --inputs")
        if shape is not None and DYNAMIC_INDEX in shape:
            raise RunError(f"{label}: --random-inputs needs a static shape, not {typ}; use --inputs")
        check_tensor(label, shape or (), np.float64)  # drawn in float64: refuse a huge type before allocating
        # Draw in float64 and round, so one SEED gives the same values for any dtype.
        inputs.append(np.asarray(rng.standard_normal(shape or ()), dtype=np.float64).astype(dtype))
    return inputs


def to_array(index: int, typ: Attribute, value: Any) -> np.ndarray:
    """Convert an interpreter result to numpy and check it against its type."""
    shape, element_type = split_type(typ)
    dtype = numpy_dtype(element_type)
    if isinstance(value, ShapedArray):
        value = np.asarray(value.data).reshape(value.shape)  # pyright: ignore[reportUnknownMemberType]
    if shape is None:
        return np.asarray(value, dtype=dtype)
    if not isinstance(value, np.ndarray):
        raise RunError(f"result {index}: the interpreter returned {type(value).__name__}, expected an array for {typ}")
    if value.dtype != dtype or not shape_matches(shape, value.shape):
        raise RunError(f"result {index}: the interpreter returned {value.shape} {value.dtype}, which is not {typ}")
    return value


def save_npz(path: str, results: Sequence[np.ndarray]) -> None:
    """Save atomically: a reader never sees a half-written file."""
    arrays = {f"result{i}": r for i, r in enumerate(results)}
    try:
        atomic_write(path, lambda stream: np.savez(stream, **arrays))
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror}") from e


def parse_module(ctx: Context, path: str) -> ModuleOp:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with parser_assertions_as_errors(path):
        module = SofaParser(ctx, text, path).parse_module()
    module.verify()
    return module


KERNEL_ENGINES = ("simulator", "interpreter")
"""What runs a `sofa.kernel_call`: the program's binary on the simulator, or its IR on the `sofa_isa` interpreter."""


def register_kernels(
    interpreter: Interpreter, module: Operation, engine: str, max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
) -> "KernelRunner | None":
    """Let `sofa.kernel_call` run the module's `sofa_isa.program` kernels on `engine` (`KERNEL_ENGINES`)."""
    # Imported here: the runtime and simulator are not needed by modules without kernels.
    from dialects.sofa_isa import ProgramOp
    from sofa_compiler.isa.ir import ir_to_program
    from sofa_compiler.runtime import KernelFunctions, KernelRunner
    from sofa_compiler.sim.config import load_config

    program_ops = {
        op.sym_name.data: op for op in module.walk() if isinstance(op, ProgramOp) and op.sym_name is not None
    }
    if not program_ops:
        return None
    programs = {name: ir_to_program(op) for name, op in program_ops.items()}
    on_ir = program_ops if engine == "interpreter" else None
    runner = KernelRunner(programs, load_config(None), ir_programs=on_ir, max_instructions=max_instructions)
    interpreter.register_implementations(KernelFunctions(runner))
    return runner


def print_kernel_runs(runner: "KernelRunner") -> None:
    """One line per kernel run: its instruction count and the distinct opcodes it executed."""
    for run in runner.runs:
        opcodes = sorted(run.timing.opcodes)
        print(f"kernel {run.kernel}: {run.report.instructions} instructions: {' '.join(opcodes)}")


def run(args: argparse.Namespace) -> None:
    module = parse_module(sofa_context(), args.file)
    interpreter = Interpreter(module)
    # Imported here: the interpreters load onnx and ml_dtypes, which --help does not need.
    from sofa_compiler.interpreters import register_all

    register_all(interpreter)
    runner = register_kernels(interpreter, module, args.kernels, args.max_instructions)

    func = interpreter.get_op_for_symbol(args.symbol)
    sig = Signature.of(func)

    if args.inputs is not None:
        arrays = match_inputs(sig, load_npz(args.inputs))
    elif args.random_inputs is not None:
        arrays = random_inputs(sig, args.random_inputs)
    elif sig.arg_types:
        raise RunError(f"@{args.symbol} takes {len(sig.arg_types)} arguments: pass --inputs or --random-inputs")
    else:
        arrays = []
    inputs = tuple(check_input(sig, i, value) for i, value in enumerate(arrays))

    values = interpreter.call_op(func, inputs)
    if len(values) != len(sig.result_types):
        raise RunError(f"@{args.symbol} returned {len(values)} values, its type says {len(sig.result_types)}")
    results = [to_array(i, typ, value) for i, (typ, value) in enumerate(zip(sig.result_types, values))]

    if args.output is not None:
        save_npz(args.output, results)
    if runner is not None and args.kernels == "interpreter":
        print_kernel_runs(runner)
    for i, result in enumerate(results):
        print(f"result[{i}]: {result.shape} {result.dtype}")
        if args.print:
            print(np.array2string(result, precision=6, threshold=10**6))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sofa-run-ir",
        description="Run a function of an MLIR file with the xDSL interpreter and the SOFA implementations.",
    )
    parser.add_argument("file", help="the .mlir file to run")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", metavar="X.npz", help="argument values (keys arg0..argN, SSA names, or file order)")
    source.add_argument(
        "--random-inputs", metavar="SEED", type=int, help="draw float arguments from N(0, 1) with this seed"
    )
    parser.add_argument("--symbol", default="main", help="the function to call (default: main)")
    parser.add_argument("--output", metavar="OUT.npz", help="save the results as result0, result1, ...")
    parser.add_argument("--print", action="store_true", help="print every result array in full")
    parser.add_argument(
        "--kernels",
        choices=KERNEL_ENGINES,
        default="simulator",
        help="run each sofa.kernel_call's program as a binary on the simulator (default) or op by op on the"
        " sofa_isa IR interpreter, which also prints each kernel's instruction count and opcodes",
    )
    add_budget_option(parser)
    return parser.parse_args(argv)


@exit_statuses("sofa-run-ir", RunError, ValueError, located=(ParseError, DiagnosticException))
def main(argv: Sequence[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
