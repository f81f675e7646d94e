"""Programs and bundles: a checksum over every byte, and one clean error naming the part for any malformed file."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from fuzzlib import FIXTURES, PROGRAM_FIELDS, bundle_seeds, call_main, fix_crc, mutate_bundle, small_attention

import sofa_compiler
from sofa_compiler.bundle import BundleError, bundle_bytes, load_bundle, read_manifest, reseal
from sofa_compiler.isa.container import ContainerError, Program
from sofa_compiler.tools import sofa_objdump, sofa_sim


@pytest.fixture(scope="module")
def program_blob() -> bytes:
    return small_attention()[1].to_bytes()


@pytest.fixture(scope="module")
def bundle_blob() -> bytes:
    return bundle_seeds()[0]


def field_set(blob: bytes, offset: int, width: int, value: int) -> bytes:
    return blob[:offset] + value.to_bytes(width, "little") + blob[offset + width :]


# --- programs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "width"), PROGRAM_FIELDS)
def test_a_header_count_edit_is_a_checksum_mismatch(program_blob: bytes, offset: int, width: int) -> None:
    """The CRC covered only the sections: `nsyms = 0` (or a DRAM size of 4 GiB) loaded and ran."""
    old = int.from_bytes(program_blob[offset : offset + width], "little")
    with pytest.raises(ContainerError, match=r"checksum mismatch|truncated|trailing"):
        Program.from_bytes(field_set(program_blob, offset, width, old ^ 1))


def test_every_flipped_bit_is_an_error(program_blob: bytes) -> None:
    for position in range(0, len(program_blob), 7):
        corrupt = bytearray(program_blob)
        corrupt[position] ^= 1 << (position % 8)
        with pytest.raises(ContainerError):
            Program.from_bytes(bytes(corrupt))


@pytest.mark.parametrize(
    ("offset", "value", "part"),
    [
        (72, 0, "symbol table: 0 symbols use 0 of its"),  # nsyms = 0
        (72, 99, "symbols do not fit"),
        (60, 7, "segments do not fit|DRAM image"),
        (40, 64, "lies outside the 64-byte DRAM"),  # a DRAM size below the symbols
        (52, 3, "header: DRAM-image offset"),
        (76, 8, "truncated|trailing"),
    ],
)
def test_a_count_edit_with_a_fixed_checksum_names_the_part(
    program_blob: bytes, offset: int, value: int, part: str
) -> None:
    width = 8 if offset == 40 else 4
    with pytest.raises(ContainerError, match=part):
        Program.from_bytes(fix_crc(field_set(program_blob, offset, width, value)))


def test_version_1_programs_are_refused_with_a_reassemble_message(program_blob: bytes) -> None:
    with pytest.raises(ContainerError, match=r"version 1 .*reassemble it"):
        Program.from_bytes(fix_crc(field_set(program_blob, 4, 2, 1)))


def test_programs_serialise_deterministically() -> None:
    assert small_attention()[1].to_bytes() == small_attention()[1].to_bytes()


# --- bundles -------------------------------------------------------------------------------------


def manifest_span(blob: bytes) -> tuple[int, int]:
    return 16, 16 + struct.unpack_from("<I", blob, 8)[0]


def test_a_flipped_manifest_digit_is_a_checksum_mismatch(bundle_blob: bytes) -> None:
    """One digit of the manifest changed the model's outputs and exited 0."""
    start, end = manifest_span(bundle_blob)
    digits = [i for i in range(start, end) if bundle_blob[i : i + 1].isdigit()]
    for i in digits[:: max(1, len(digits) // 40)]:
        forged = bundle_blob[:i] + str((int(bundle_blob[i : i + 1]) + 1) % 10).encode() + bundle_blob[i + 1 :]
        with pytest.raises(BundleError, match="checksum mismatch"):
            load_bundle(forged)


def test_every_truncation_is_a_bundle_error(bundle_blob: bytes) -> None:
    for length in [*range(0, 40), *range(40, len(bundle_blob), 97)]:
        with pytest.raises(BundleError):
            load_bundle(bundle_blob[:length])


def reforged(blob: bytes, edit) -> bytes:
    """`blob` with its manifest edited by `edit(manifest) -> manifest`, lengths and checksum fixed up."""
    start, end = manifest_span(blob)
    manifest = edit(json.loads(blob[start:end]))
    text = json.dumps(manifest).encode()
    return reseal(blob[:8] + struct.pack("<I", len(text)) + blob[12:16] + text + blob[end:])


def deep_host(manifest: dict) -> dict:
    return {**manifest, "host": '"test.op"() ({' * 200 + "}) : () -> ()" * 200}


def unknown_kernel_call(manifest: dict) -> dict:
    """The host calls a kernel the bundle does not hold (found by the bundle fuzzer: a traceback from the run)."""
    name = manifest["kernels"][0]["name"]
    return {**manifest, "host": manifest["host"].replace(f'sofa.kernel_call "{name}"', 'sofa.kernel_call "nope"')}


def kernel_without_symbols(blob: bytes) -> bytes:
    _, end = manifest_span(blob)
    kernels = bytearray(blob[end:])
    kernels[72:76] = bytes(4)  # nsyms = 0 in the first kernel ...
    kernels[76:80] = bytes(4)  # ... and no symbol-table bytes: a well-formed program that is no kernel
    first = read_manifest(blob)["kernels"][0]
    cut = bytes(kernels[: first["size"]])
    symtab = struct.unpack_from("<I", blob, end + 76)[0]
    program = fix_crc(cut[: len(cut) - symtab])
    rest = bytes(kernels[first["size"] :])

    def edit(manifest: dict) -> dict:
        shift = len(cut) - len(program)
        for entry in manifest["kernels"]:
            entry["offset"] = entry["offset"] - shift if entry["offset"] else 0
        manifest["kernels"][0]["size"] = len(program)
        return manifest

    return reforged(blob[:end] + program + rest, edit)


@pytest.mark.parametrize(
    ("forge", "part"),
    [
        (lambda b: reforged(b, lambda m: []), "manifest: expected a JSON object"),
        (lambda b: reforged(b, lambda m: {k: v for k, v in m.items() if k != "host"}), "manifest: 'missing host'"),
        (lambda b: reforged(b, lambda m: {**m, "config": [1]}), "manifest: config:"),
        (lambda b: reforged(b, lambda m: {**m, "host": "func.func @main("}), "host code:"),
        (lambda b: reforged(b, deep_host), "host code: .*nesting deeper than 100"),
        (lambda b: reforged(b, lambda m: {**m, "kernels": [{**m["kernels"][0], "size": 5}]}), "manifest: kernels:"),
        (lambda b: reforged(b, lambda m: {**m, "kernels": "x"}), "manifest: kernels:"),
        (kernel_without_symbols, "kernel '.*':"),
        (lambda b: reforged(b, unknown_kernel_call), "host code: a kernel call names kernel 'nope'"),
        (lambda b: reseal(b[:16] + b"[" * 100000 + b[16:]), "checksum|manifest"),
    ],
)
def test_a_resealed_malformed_part_is_one_bundle_error(bundle_blob: bytes, forge, part: str) -> None:
    """`load_bundle` let ParseError, RecursionError and KernelError tracebacks through; nsyms = 0 exited 0."""
    with pytest.raises(BundleError, match=f"corrupt bundle: {part}"):
        load_bundle(forge(bundle_blob))


def test_the_tools_report_a_corrupt_bundle_in_one_line(bundle_blob: bytes, tmp_path: Path) -> None:
    path = tmp_path / "model.sofa"
    path.write_bytes(reforged(bundle_blob, deep_host))
    for main, argv in ((sofa_sim.main, [str(path)]), (sofa_objdump.main, [str(path)])):
        outcome = call_main(main, argv)
        assert outcome.kind == "error", outcome.summary()
        assert outcome.rc == 1
        assert len(outcome.stderr.strip().splitlines()) == 1
        assert "host code" in outcome.stderr


def test_version_1_bundles_ask_for_a_recompile(bundle_blob: bytes) -> None:
    with pytest.raises(BundleError, match=r"version 1 .*recompile"):
        load_bundle(reseal(bundle_blob[:4] + struct.pack("<H", 1) + bundle_blob[6:]))


def test_bundles_are_deterministic() -> None:
    model = FIXTURES / "attn23_mha_4d.onnx"
    assert bundle_bytes(sofa_compiler.compile(model)) == bundle_bytes(sofa_compiler.compile(model))


def test_bundle_mutations_are_clean(bundle_blob: bytes, tmp_path: Path) -> None:
    """The campaign's bundle generator, briefly: every edited bundle is loaded, or refused in one clean error."""
    path = tmp_path / "model.sofa"
    for seed in range(40):
        data = mutate_bundle(random.Random(seed), bundle_blob)
        path.write_bytes(data)
        outcome = call_main(sofa_objdump.main, [str(path)])
        assert outcome.kind in ("ok", "error"), outcome.summary()
