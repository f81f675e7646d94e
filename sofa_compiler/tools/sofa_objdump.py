"""`sofa-objdump`: show a `.sofa` program's header, symbols, DRAM image and disassembly.

sofa-objdump prog.sofa            # human-readable listing with pcs
sofa-objdump prog.sofa --source   # canonical assembly (re-assembles to the same bytes)
sofa-objdump prog.sofa --json     # machine-readable
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sofa_compiler.cli import exit_statuses, print_error
from sofa_compiler.isa.asm import code_lines, disassemble
from sofa_compiler.isa.container import VERSION, ContainerError, Program, RawWord
from sofa_compiler.isa.encoding import WORD_BYTES, format_instruction


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


def as_json(program: Program, blob: bytes) -> str:
    code = []
    for pc, instr in enumerate(program.code):
        if isinstance(instr, RawWord):
            code.append({"pc": pc, "illegal": instr.reason, "word": instr.word.hex()})
        else:
            code.append({"pc": pc, "op": instr.op, "unit": instr.unit, "text": format_instruction(instr)})
    doc = {
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
    return json.dumps(doc, indent=2) + "\n"


@exit_statuses("sofa-objdump")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-objdump", description="Dump a SOFA .sofa program.")
    parser.add_argument("program", help=".sofa container")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="JSON output")
    mode.add_argument("--source", action="store_true", help="canonical assembly text (round-trips through sofa-as)")
    args = parser.parse_args(argv)
    try:
        with open(args.program, "rb") as handle:
            blob = handle.read()
        program = Program.from_bytes(blob)
    except (OSError, ContainerError) as error:
        return print_error("sofa-objdump", f"{args.program}: {error}")
    if args.json:
        sys.stdout.write(as_json(program, blob))
    elif args.source:
        sys.stdout.write(disassemble(program))
    else:
        sys.stdout.write(listing(program, blob))
    return 0


if __name__ == "__main__":
    sys.exit(main())
