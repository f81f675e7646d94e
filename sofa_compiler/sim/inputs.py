"""Inputs for a simulated run: read from an `.npz` file, or drawn at random (the same for the same seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from passes.kernel_interface import Symbol
from sofa_compiler.files import NpzError, read_npz
from sofa_compiler.isa.container import Program
from sofa_compiler.sim.limits import check_tensor


class SimError(Exception):
    """A user-facing error: bad files, inputs or options."""


class HasInputSpecs(Protocol):
    """A compiled model (`sofa_compiler.driver.CompiledModel`), as far as its inputs go."""

    def input_specs(self) -> list[tuple[str, tuple[int, ...], str]]: ...


def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except NpzError as error:
        raise SimError(str(error)) from error


LAUNCH_TABLES = frozenset({Symbol.MASK_TABLE.value, Symbol.MASK_BITS.value, Symbol.MASK_BIAS.value})
"""Inputs the host builds at launch from a run-time mask: random words would be no valid index list, so random
inputs hold zeros there (every query tile visits no KV tile: every key masked, a zero output)."""


def random_inputs(program: Program, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs for every input symbol (floats N(0,1), ints small; `LAUNCH_TABLES` zero)."""
    rng = np.random.default_rng(seed)
    out = {}
    for sym in program.symbols:
        if sym.kind != "input":
            continue
        if sym.name in LAUNCH_TABLES:
            out[sym.name] = np.zeros(sym.shape, sym.np_dtype)
        elif sym.np_dtype.kind == "f":
            out[sym.name] = rng.standard_normal(sym.shape).astype(sym.np_dtype)
        else:
            out[sym.name] = rng.integers(-8, 8, sym.shape).astype(sym.np_dtype)
    return out


def random_model_inputs(model: HasInputSpecs, seed: int) -> dict[str, np.ndarray]:
    """Deterministic inputs: N(0,1) floats, booleans mostly true, small non-negative integers."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, shape, dtype in model.input_specs():
        check_tensor(f"input '{name}'", shape, np.float64)  # drawn in float64
        if dtype.startswith("float"):
            inputs[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == "bool":
            inputs[name] = rng.random(shape) > 0.1
        else:
            inputs[name] = rng.integers(0, 2, shape).astype(dtype)
    return inputs
