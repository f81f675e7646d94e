"""`sofa-as`: assemble SOFA assembly text into a `.sofa` program container.

    sofa-as in.s -o out.sofa [--target-hash HEX]

Errors print ``file:line:col: problem`` and exit 1 (never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sofa_compiler.cli import exit_statuses
from sofa_compiler.files import atomic_write_bytes, check_output_path
from sofa_compiler.isa.asm import AsmError, assemble
from sofa_compiler.isa.container import ContainerError, hash_bytes
from sofa_compiler.isa.encoding import EncodeError


# An AsmError names file:line:col itself.
@exit_statuses("sofa-as", ValueError, EncodeError, ContainerError, located=(AsmError,))
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-as", description="Assemble SOFA assembly into a .sofa container.")
    parser.add_argument("input", help="assembly source ('-' for stdin)")
    parser.add_argument("-o", "--output", required=True, help="output .sofa file")
    parser.add_argument("--target-hash", help="target config hash (64 hex digits); overrides .config")
    args = parser.parse_args(argv)
    check_output_path(args.output)
    if args.input == "-":
        source, name = sys.stdin.read(), "<stdin>"
    else:
        with open(args.input) as handle:
            source, name = handle.read(), args.input
    config = hash_bytes(args.target_hash) if args.target_hash else None
    blob = assemble(source, name, config).to_bytes()
    atomic_write_bytes(args.output, blob)
    return 0


if __name__ == "__main__":
    sys.exit(main())
