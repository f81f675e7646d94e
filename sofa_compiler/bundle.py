"""The `.sofa` model bundle that `sofa-compile` writes.

A compiled model is host code plus one accelerator kernel per attention
layer. The bundle keeps them together:

======  =====  ==================================================
offset  bytes  field
======  =====  ==================================================
0       4      magic ``b"SOFB"``
4       2      bundle version (2)
6       2      reserved, zero
8       4      manifest length N
12      4      CRC-32 of the whole file, computed with this field zero
16      N      manifest: UTF-8 JSON (see below)
16+N    ...    the kernels' `.sofa` program containers, back to back
======  =====  ==================================================

The manifest holds the hardware config the model was compiled for (all
sections, so the simulator reproduces the same figures), the host module as
MLIR text, the compile options, the inputs the model was compiled for (name,
shape, dtype: a run on other shapes is refused), and each kernel's name, byte
offset and size.
JSON keys are sorted, so the same model and options give the same bytes.

The checksum covers every byte, so a flipped digit in the manifest is
"checksum mismatch", never a model that silently computes something else.
Behind it, every part is checked again (the manifest's structure, the host
code, each kernel container and its interface) and a bad one is one
`BundleError` naming the part. Version 1 bundles had no checksum; they are
refused with a "recompile" message.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException

from dialects.sofa import KernelCallOp
from sofa_compiler.driver import CompiledModel, CompileError, make_context, print_ir
from sofa_compiler.isa.container import ContainerError, Program, file_checksum, with_checksum
from sofa_compiler.isa.formats import BUNDLE_MAGIC as MAGIC
from sofa_compiler.parser import MalformedInputError, SofaParser
from sofa_compiler.runtime import KernelError, is_decode_kernel, kernel_interface, kernel_operands
from sofa_compiler.sim.config import ConfigError, HardwareConfig

VERSION = 2
_HEADER = struct.Struct("<4sHHII")
_CHECKSUM_OFFSET = 12

_MALFORMED = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)
"""What reading a manifest of the wrong shape raises (a list for a dict, a string for a number, ...)."""


class BundleError(ValueError):
    """A file that is not a valid bundle; the message says what is wrong."""


def bundle_bytes(model: CompiledModel) -> bytes:
    kernels = [(name, program.to_bytes()) for name, program in model.programs.items()]
    offset = 0
    entries = []
    for name, blob in kernels:
        entries.append({"name": name, "offset": offset, "size": len(blob)})
        offset += len(blob)
    config = model.config
    manifest: dict[str, Any] = {
        "config": {
            "name": config.name,
            "target": dict(config.target),
            "energy": dict(config.energy),
            "timing": dict(config.timing),
            "area": dict(config.area),
        },
        "config_hash": config.config_hash(),
        "host": print_ir(model.host),
        "inputs": input_records(model),
        "kernels": entries,
        "options": {key: (str(value) if isinstance(value, float) else value) for key, value in model.options.items()},
    }
    text = json.dumps(manifest, sort_keys=True).encode()
    blob = _HEADER.pack(MAGIC, VERSION, 0, len(text), 0) + text + b"".join(blob for _, blob in kernels)
    return with_checksum(blob, _CHECKSUM_OFFSET)


def input_records(model: CompiledModel) -> list[dict[str, Any]]:
    """The manifest's record of the model inputs: the shapes (and dtypes) it was compiled for."""
    return [{"name": name, "shape": list(shape), "dtype": dtype} for name, shape, dtype in model.input_specs()]


def load_bundle(blob: bytes, source: str = "<bundle>") -> CompiledModel:
    """The compiled model in `blob`; `BundleError` ("FILE: corrupt bundle: PART: reason") if any part is bad."""
    manifest, kernels = _check_header(blob, source)
    try:
        return _read_model(manifest, kernels, source)
    except _Corrupt as error:
        raise BundleError(f"{source}: corrupt bundle: {error}") from None


def read_manifest(blob: bytes, source: str = "<bundle>") -> dict[str, Any]:
    """The manifest of a bundle whose header and checksum are valid (for tools and tests that inspect one)."""
    manifest, _ = _check_header(blob, source)
    try:
        return _read_manifest(manifest)
    except _MALFORMED as error:
        raise BundleError(f"{source}: corrupt bundle: manifest: {error}") from None


def reseal(blob: bytes) -> bytes:
    """`blob` with its checksum recomputed: for tests and fuzzers that edit a bundle on purpose."""
    return with_checksum(blob, _CHECKSUM_OFFSET)


class _Corrupt(Exception):
    """A part of a bundle that is wrong; the message starts with the part's name."""


def _check_header(blob: bytes, source: str) -> tuple[bytes, bytes]:
    """(manifest bytes, kernel bytes) after the header, version and checksum checks."""
    if len(blob) < _HEADER.size:
        raise BundleError(f"{source}: truncated bundle ({len(blob)} bytes, the header alone is {_HEADER.size})")
    magic, version, _, length, crc = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise BundleError(f"{source}: not a SOFA model bundle (magic {magic!r})")
    if version == 1:
        raise BundleError(
            f"{source}: bundle version 1 (written before bundles carried a checksum): recompile the model"
        )
    if version != VERSION:
        raise BundleError(f"{source}: unsupported bundle version {version} (this tool reads {VERSION})")
    start = _HEADER.size + length
    if start > len(blob):
        raise BundleError(f"{source}: truncated bundle: the manifest needs {start} bytes, the file has {len(blob)}")
    if file_checksum(blob, _CHECKSUM_OFFSET) != crc:
        raise BundleError(f"{source}: corrupt bundle: checksum mismatch (the file was truncated, extended or altered)")
    return blob[_HEADER.size : start], blob[start:]


def _part(name: str, read: Any, *args: Any) -> Any:
    """`read(*args)`, with any error of a malformed part re-raised as `_Corrupt` naming it."""
    try:
        return read(*args)
    except (*_MALFORMED, ContainerError, ConfigError, KernelError, CompileError, MalformedInputError) as error:
        raise _Corrupt(f"{name}: {error}") from None
    except (ParseError, VerifyException, DiagnosticException) as error:
        raise _Corrupt(f"{name}: {str(error).strip().splitlines()[-1]}") from None


def _read_model(manifest_bytes: bytes, kernels: bytes, source: str) -> CompiledModel:
    manifest = _part("manifest", _read_manifest, manifest_bytes)
    config = _part("manifest: config", _read_config, manifest["config"], source)
    entries = _part("manifest: kernels", _kernel_entries, manifest["kernels"], len(kernels))
    programs = {}
    for name, begin, end in entries:
        programs[name] = _part(f"kernel '{name}'", _read_kernel, kernels[begin:end])
    host = _part("host code", _read_host, manifest["host"], source)
    _part("host code", _check_kernel_calls, host, programs)
    options = _part("manifest: options", dict, manifest.get("options", {}))
    model = _part("host code", CompiledModel, config, host, programs, [], options)
    recorded = manifest.get("inputs")
    if recorded is not None and recorded != _part("host code", input_records, model):
        raise _Corrupt("manifest: inputs: the recorded inputs do not match the host code's")
    return model


def _read_manifest(text: bytes) -> dict[str, Any]:
    manifest = json.loads(text.decode())
    if not isinstance(manifest, dict):
        raise TypeError(f"expected a JSON object, got {type(manifest).__name__}")
    missing = sorted({"config", "host", "kernels"} - set(manifest))
    if missing:
        raise KeyError(f"missing {', '.join(missing)}")
    return manifest


def _read_config(sections: dict[str, Any], source: str) -> HardwareConfig:
    return HardwareConfig(
        target=sections["target"],
        energy=sections["energy"],
        timing=sections["timing"],
        area=sections["area"],
        name=str(sections["name"]),
        source=source,
    )


def _kernel_entries(entries: list[dict[str, Any]], available: int) -> list[tuple[str, int, int]]:
    """(name, begin, end) of each kernel, checked to lie in the kernel section and to tile it."""
    spans = []
    position = 0
    for entry in entries:
        name, offset, size = entry["name"], entry["offset"], entry["size"]
        if not isinstance(name, str) or not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, size)):
            raise TypeError(f"entry {entry!r} needs a string name and integer offset and size")
        if offset != position or size < 0 or offset + size > available:
            raise ValueError(f"kernel '{name}' at [{offset}, {offset + size}) does not follow the previous one "
                             f"inside the {available}-byte kernel section")  # fmt: skip
        if any(name == other for other, _, _ in spans):
            raise ValueError(f"kernel '{name}' is listed twice")
        spans.append((name, offset, offset + size))
        position = offset + size
    if position != available:
        raise ValueError(f"the kernels use {position} of the {available} bytes after the manifest")
    return spans


def _read_kernel(blob: bytes) -> Program:
    program = Program.from_bytes(blob)
    if not is_decode_kernel(program):
        kernel_interface(program)  # KernelError unless its symbols are a kernel's DRAM interface
    return program


def _check_kernel_calls(host: ModuleOp, programs: dict[str, Program]) -> None:
    """Every `sofa.kernel_call` names a kernel of the bundle and passes the operands that kernel takes."""
    for op in host.walk():
        if not isinstance(op, KernelCallOp):
            continue
        name = op.kernel.data
        if name not in programs:
            raise KernelError(f"a kernel call names kernel '{name}', which the bundle does not hold")
        wanted = kernel_operands(programs[name])
        if len(op.inputs) != len(wanted):
            raise KernelError(f"kernel '{name}' takes {', '.join(wanted)}; a call passes {len(op.inputs)} operands")


def _read_host(text: str, source: str) -> ModuleOp:
    if not isinstance(text, str):
        raise TypeError(f"expected MLIR text, got {type(text).__name__}")
    module = SofaParser(make_context(), text, f"{source}: host code").parse_module()
    module.verify()
    return module
