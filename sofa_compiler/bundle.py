"""The `.sofa` model bundle that `sofa-compile` writes.

A compiled model is host code plus one accelerator kernel per attention
layer. The bundle keeps them together:

======  =====  ==================================================
offset  bytes  field
======  =====  ==================================================
0       4      magic ``b"SOFB"``
4       2      bundle version (1)
6       2      reserved, zero
8       4      manifest length N
12      N      manifest: UTF-8 JSON (see below)
12+N    ...    the kernels' `.sofa` program containers, back to back
======  =====  ==================================================

The manifest holds the hardware config the model was compiled for (all
sections, so the simulator reproduces the same figures), the host module as
MLIR text, the compile options, the inputs the model was compiled for (name,
shape, dtype: a run on other shapes is refused), and each kernel's name, byte
offset and size.
JSON keys are sorted, so the same model and options give the same bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from sofa_compiler.driver import CompiledModel, make_context, print_ir
from sofa_compiler.isa.container import ContainerError, Program
from sofa_compiler.isa.formats import BUNDLE_MAGIC as MAGIC
from sofa_compiler.parser import SofaParser
from sofa_compiler.sim.config import HardwareConfig

VERSION = 1
_HEADER = struct.Struct("<4sHHI")


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
    return _HEADER.pack(MAGIC, VERSION, 0, len(text)) + text + b"".join(blob for _, blob in kernels)


def input_records(model: CompiledModel) -> list[dict[str, Any]]:
    """The manifest's record of the model inputs: the shapes (and dtypes) it was compiled for."""
    return [{"name": name, "shape": list(shape), "dtype": dtype} for name, shape, dtype in model.input_specs()]


def load_bundle(blob: bytes, source: str = "<bundle>") -> CompiledModel:
    if len(blob) < _HEADER.size:
        raise BundleError(f"{source}: truncated bundle ({len(blob)} bytes)")
    magic, version, _, length = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise BundleError(f"{source}: not a SOFA model bundle (magic {magic!r})")
    if version != VERSION:
        raise BundleError(f"{source}: unsupported bundle version {version} (this tool reads {VERSION})")
    start = _HEADER.size + length
    if start > len(blob):
        raise BundleError(f"{source}: truncated bundle: the manifest needs {start} bytes, the file has {len(blob)}")
    try:
        manifest = json.loads(blob[_HEADER.size : start].decode())
        sections = manifest["config"]
        config = HardwareConfig(
            target=sections["target"],
            energy=sections["energy"],
            timing=sections["timing"],
            area=sections["area"],
            name=sections["name"],
            source=source,
        )
        programs = {}
        for entry in manifest["kernels"]:
            begin = start + int(entry["offset"])
            programs[str(entry["name"])] = Program.from_bytes(blob[begin : begin + int(entry["size"])])
        host = SofaParser(make_context(), manifest["host"], source).parse_module()
        options = dict(manifest.get("options", {}))
        model = CompiledModel(config, host, programs, [], options)
        recorded = manifest.get("inputs")
    except (ValueError, KeyError, TypeError, ContainerError) as error:
        raise BundleError(f"{source}: corrupt bundle: {error}") from None
    if recorded is not None and recorded != input_records(model):
        raise BundleError(f"{source}: corrupt bundle: the recorded inputs do not match the host code's")
    return model
