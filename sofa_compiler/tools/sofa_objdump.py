"""`sofa-objdump`: show a `.sofa` program's header, symbols, DRAM image and disassembly.

sofa-objdump prog.sofa            # human-readable listing with pcs
sofa-objdump prog.sofa --source   # canonical assembly (re-assembles to the same bytes)
sofa-objdump prog.sofa --json     # machine-readable

A model bundle from `sofa-compile -o` is shown kernel by kernel: a summary of
its kernels, then each one in the format above under a ``kernel NAME:``
header (``# kernel NAME`` with --source; --json gives a list of the program
objects, each with its ``kernel`` name). ``--kernel NAME`` picks one kernel.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sofa_compiler.cli import exit_statuses, print_error
from sofa_compiler.isa.asm import code_lines, disassemble
from sofa_compiler.isa.container import VERSION, ContainerError, Program, RawWord
from sofa_compiler.isa.encoding import WORD_BYTES, format_instruction
from sofa_compiler.isa.formats import FormatError, SofaFormat, sofa_format


class DumpError(ValueError):
    """A file this tool cannot show; the message names the file."""


def listing(program: Program, blob: bytes) -> str:
    lines = [
        "header:",
        f"  magic SOFA, version {VERSION}, word {WORD_BYTES} bytes, file {len(blob)} bytes",
        f"  config hash {program.config_hash.hex()}",
        f"  dram bytes  {program.dram_bytes}",
        f"  code        {len(program.code)} instructions",
        f"  image       {len(program.segments)} segments, {sum(len(s.data) for s in program.segments)} bytes",
        "",
        "symbols:",
    ]
    for sym in program.symbols:
        shape = "x".join(map(str, sym.shape)) or "scalar"
        lines.append(f"  {sym.kind:<6} {sym.name:<16} {sym.dtype:<4} {shape:<14} @0x{sym.address:08x} {sym.size} bytes")
    lines += ["", "image:"]
    for seg in program.segments:
        lines.append(f"  0x{seg.address:08x} {len(seg.data)} bytes")
    lines += ["", "code:"]
    lines += ["  " + line for line in code_lines(program.code, pcs=True)]
    return "\n".join(lines) + "\n"


def as_dict(program: Program, blob: bytes) -> dict[str, Any]:
    code = []
    for pc, instr in enumerate(program.code):
        if isinstance(instr, RawWord):
            code.append({"pc": pc, "illegal": instr.reason, "word": instr.word.hex()})
        else:
            code.append({"pc": pc, "op": instr.op, "unit": instr.unit, "text": format_instruction(instr)})
    return {
        "version": VERSION,
        "bytes": len(blob),
        "config_hash": program.config_hash.hex(),
        "dram_bytes": program.dram_bytes,
        "symbols": [
            {
                "name": s.name,
                "kind": s.kind,
                "dtype": s.dtype,
                "shape": list(s.shape),
                "address": s.address,
                "bytes": s.size,
            }
            for s in program.symbols
        ],
        "segments": [{"address": s.address, "bytes": len(s.data)} for s in program.segments],
        "code": code,
    }


def as_json(program: Program, blob: bytes) -> str:
    return json.dumps(as_dict(program, blob), indent=2) + "\n"


def bundle_summary(kernels: dict[str, Program], blob: bytes) -> str:
    count = f"{len(kernels)} kernel" + ("" if len(kernels) == 1 else "s")
    lines = [f"bundle: {count}, file {len(blob)} bytes", "", "kernels:"]
    for name, program in kernels.items():
        symbols = ", ".join(sym.name for sym in program.symbols) or "none"
        lines.append(
            f"  {name:<12} {len(program.code)} instructions, dram {program.dram_bytes} bytes, symbols {symbols}"
        )
    return "\n".join(lines) + "\n"


def dump_bundle(kernels: dict[str, Program], blob: bytes, args: argparse.Namespace) -> str:
    """Each kernel in the single-program format of the chosen mode."""
    images = {name: program.to_bytes() for name, program in kernels.items()}
    if args.json:
        doc = [{"kernel": name, **as_dict(program, images[name])} for name, program in kernels.items()]
        return json.dumps(doc, indent=2) + "\n"
    if args.source:
        return "\n".join(f"# kernel {name}\n{disassemble(program)}" for name, program in kernels.items())
    sections = [bundle_summary(kernels, blob)]
    sections += [f"kernel {name}:\n{listing(program, images[name])}" for name, program in kernels.items()]
    return "\n".join(sections)


def read_kernels(blob: bytes, source: str, kernel: str | None) -> dict[str, Program]:
    """The bundle's kernels, or only `kernel`."""
    # Imported here: dumping a plain program should not pay for loading the compiler.
    from sofa_compiler.bundle import BundleError, load_bundle

    try:
        kernels = load_bundle(blob, source).programs
    except BundleError as error:
        raise DumpError(error) from None
    if kernel is None:
        return kernels
    if kernel not in kernels:
        raise DumpError(f"{source}: no kernel named '{kernel}' (the bundle has {', '.join(kernels) or 'none'})")
    return {kernel: kernels[kernel]}


def dump_program(blob: bytes, args: argparse.Namespace) -> str:
    if args.kernel is not None:
        raise DumpError(f"{args.program}: --kernel needs a model bundle; this is a single program")
    program = Program.from_bytes(blob)
    if args.json:
        return as_json(program, blob)
    if args.source:
        return disassemble(program)
    return listing(program, blob)


@exit_statuses("sofa-objdump")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-objdump", description="Dump a SOFA .sofa program or model bundle.")
    parser.add_argument("program", help="a .sofa program (sofa-as) or model bundle (sofa-compile -o)")
    parser.add_argument("--kernel", metavar="NAME", help="only this kernel of a model bundle")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="JSON output")
    mode.add_argument("--source", action="store_true", help="canonical assembly text (round-trips through sofa-as)")
    args = parser.parse_args(argv)
    try:
        with open(args.program, "rb") as handle:
            blob = handle.read()
        if sofa_format(blob, args.program) is SofaFormat.BUNDLE:
            text = dump_bundle(read_kernels(blob, args.program, args.kernel), blob, args)
        else:
            text = dump_program(blob, args)
    except (FormatError, DumpError) as error:
        return print_error("sofa-objdump", error)
    except (OSError, ContainerError) as error:
        return print_error("sofa-objdump", f"{args.program}: {error}")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
