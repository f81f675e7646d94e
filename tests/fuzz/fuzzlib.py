"""Shared fuzzing machinery: seed corpora, mutators and an in-process runner per entry point.

Used by the hypothesis tests in this directory (short runs in CI) and by
`benchmarks/fuzz_campaign.py` (long campaigns). Every target takes raw bytes,
writes them where the tool expects a file, calls the tool's ``main(argv)`` in
this process and classifies what happened:

* ``ok``: exit status 0;
* ``error``: a clean error: non-zero exit status, a message on stderr, no
  traceback, no ``internal error``;
* ``crash``: an unexpected exception, a traceback, an ``internal error``
  message, or a non-zero status with nothing on stderr;
* ``hang``: the run took longer than its time limit (SIGALRM).

Mutators take a `random.Random` so the campaign (plain `random`, fast) and the
hypothesis tests (``st.randoms()``, shrinkable) share them.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import signal
import struct
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FILECHECK = REPO / "tests" / "filecheck"
FIXTURES = REPO / "tests" / "fixtures"
CONFIGS = REPO / "configs"

OK, ERROR, CRASH, HANG = "ok", "error", "crash", "hang"

# The simulator's instruction budget in fuzz runs: the seeds execute a few
# hundred instructions; a mutated loop count must trap quickly, not run on.
SIM_MAX_INSTRUCTIONS = 20_000
# ... and its DRAM: a mutated header may ask for up to 4 GiB, which the
# functional machine allocates and zero-fills (seconds per input).
SIM_DRAM_BYTES = 1 << 24
SIM_LIMITS = ["--max-instructions", str(SIM_MAX_INSTRUCTIONS), "--dram-bytes", str(SIM_DRAM_BYTES)]


class Hang(BaseException):
    """Raised by the alarm when a run exceeds its time limit (BaseException: nothing swallows it)."""


@dataclass
class Outcome:
    kind: str
    rc: int
    stdout: str
    stderr: str
    detail: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        return f"{self.kind} rc={self.rc} ({self.seconds:.2f}s): {self.detail or self.stderr.strip()[:300]}"


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise `Hang` after `seconds` (main thread only; a no-op elsewhere)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s")

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_INTERNAL = re.compile(r"internal error|Traceback \(most recent call last\)")


def call_main(main: Callable[..., Any], argv: Sequence[str], timeout: float = 10.0) -> Outcome:
    """Run a tool's ``main(argv)`` in-process with captured output, and classify the result."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    detail = ""
    kind = ""
    rc = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with time_limit(timeout), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                result = main(list(argv))
            rc = int(result or 0)
        except SystemExit as exit_:
            code = exit_.code
            rc = code if isinstance(code, int) else (0 if code is None else 1)
            if not isinstance(code, int | None):
                err.write(str(code))
        except Hang as hang:
            kind, rc, detail = HANG, -1, str(hang)
        except MemoryError:
            kind, rc, detail = CRASH, -1, "MemoryError"
        except Exception as error:  # the bug the fuzzer is looking for
            kind, rc = CRASH, -1
            detail = "".join(traceback.format_exception(error)[-6:])
    seconds = time.perf_counter() - start
    stdout, stderr = out.getvalue(), err.getvalue()
    if not kind:
        if found := (_INTERNAL.search(stderr) or _INTERNAL.search(stdout)):
            text = found.string
            line_start = text.rfind("\n", 0, found.start()) + 1
            line_end = text.find("\n", found.end())
            kind, detail = CRASH, text[line_start : line_end if line_end >= 0 else None]
        elif rc == 0:
            kind = OK
        elif not stderr.strip():
            kind, detail = CRASH, f"exit status {rc} without a message"
        else:
            kind = ERROR
    return Outcome(kind, rc, stdout, stderr, detail, seconds)


# ---------------------------------------------------------------------------
# Generic mutators
# ---------------------------------------------------------------------------


INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 4095, 4096, 65535, 65536,
                    2**24 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, -1, -2, -128, -(2**31)]  # fmt: skip


def flip_bits(rng: random.Random, data: bytes, count: int | None = None, lo: int = 0, hi: int | None = None) -> bytes:
    """Flip `count` random bits of data[lo:hi]."""
    buf = bytearray(data)
    hi = len(buf) if hi is None else min(hi, len(buf))
    if hi <= lo:
        return bytes(buf)
    for _ in range(count or rng.randint(1, 4)):
        i = rng.randrange(lo, hi)
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def set_bytes(rng: random.Random, data: bytes, lo: int = 0, hi: int | None = None) -> bytes:
    """Overwrite 1, 2, 4 or 8 bytes with an interesting little-endian integer."""
    buf = bytearray(data)
    hi = len(buf) if hi is None else min(hi, len(buf))
    width = rng.choice([1, 2, 4, 8])
    if hi - lo < width:
        return flip_bits(rng, data, 1, lo, hi)
    at = rng.randrange(lo, hi - width + 1)
    value = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
    buf[at : at + width] = value.to_bytes(width, "little")
    return bytes(buf)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


def splice(rng: random.Random, data: bytes) -> bytes:
    """Delete, duplicate or insert random bytes."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 16))
    match rng.randrange(3):
        case 0:
            return data[:i] + data[j:]
        case 1:
            return data[:j] + data[i:j] + data[j:]
        case _:
            return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[i:]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        data = rng.choice([flip_bits, set_bytes, truncate, splice])(rng, data)
    return data


_TOKEN_RE = re.compile(r"%[\w.]+|@[\w.]+|\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b|[A-Za-z_][\w.]*|[^\s\w]")

TEXT_NUMBERS = ["0", "1", "-1", "2", "3", "7", "8", "16", "128", "4097", "65536", "4294967296", "-0.0", "0.5",
                "1e300", "-1e300", "inf", "nan", "0x10", "99999999999999999999"]  # fmt: skip


def mutate_text(rng: random.Random, text: str, vocabulary: Sequence[str] = ()) -> str:
    """Token-level and byte-level mutations of source text."""
    for _ in range(rng.randint(1, 3)):
        tokens = [(m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
        choice = rng.randrange(8)
        if choice <= 4 and tokens:
            start, end = rng.choice(tokens)
            token = text[start:end]
            if choice == 0:  # delete a token
                replacement = ""
            elif choice == 1:  # swap with another token of the file
                s2, e2 = rng.choice(tokens)
                replacement = text[s2:e2]
            elif choice == 2:  # a number
                replacement = rng.choice(TEXT_NUMBERS)
            elif choice == 3 and vocabulary:
                replacement = rng.choice(vocabulary)
            else:  # duplicate
                replacement = token + " " + token
            text = text[:start] + replacement + text[end:]
        elif choice == 5:  # swap two lines
            lines = text.splitlines(keepends=True)
            if len(lines) > 1:
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
                text = "".join(lines)
        elif choice == 6:  # truncate
            text = text[: rng.randrange(len(text) + 1)]
        else:  # raw bytes, decoded leniently
            text = mutate_bytes(rng, text.encode()).decode("utf-8", "replace")
    return text


# ---------------------------------------------------------------------------
# Scratch files
# ---------------------------------------------------------------------------


class Scratch:
    """A private temporary directory with one file name per role, rewritten per input."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sofa-fuzz-")
        self.root = Path(self._dir.name)

    def write(self, name: str, data: bytes | str) -> str:
        path = self.root / name
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8", errors="surrogateescape")
        else:
            path.write_bytes(data)
        return str(path)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def close(self) -> None:
        self._dir.cleanup()


# ---------------------------------------------------------------------------
# Seed corpora
# ---------------------------------------------------------------------------


def mlir_seeds() -> list[str]:
    """Every .mlir file of the FileCheck suite, split at ``// -----`` into chunks."""
    seeds = []
    for path in sorted(FILECHECK.rglob("*.mlir")):
        for chunk in path.read_text().split("// -----"):
            body = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("//"))
            if body.strip():
                seeds.append(body + "\n")
    return seeds


def mlir_vocabulary(seeds: Sequence[str]) -> list[str]:
    words = set()
    for seed in seeds:
        words.update(m.group(0) for m in _TOKEN_RE.finditer(seed) if len(m.group(0)) > 1)
    return sorted(words)


def onnx_seeds() -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in sorted(FIXTURES.glob("*.onnx"))]


def asm_seeds() -> list[str]:
    """Assembly sources of the ISA suite that assemble cleanly."""
    from sofa_compiler.isa.asm import AsmError, assemble

    seeds = []
    for path in sorted((FILECHECK / "isa").glob("*.s")):
        text = path.read_text()
        try:
            assemble(text, path.name)
        except AsmError:
            continue
        seeds.append(text)
    return seeds


def small_attention(sq: int = 8, skv: int = 20, depth: int = 8, vdepth: int = 4, tile: int = 8, keep: float = 0.5,
                    causal: bool = False):  # fmt: skip
    """A small compiled attention kernel (the `AttentionKernel`, its program), for sofa-sim seeds."""
    from sofa_compiler.kernels import AttentionProblem, compile_attention

    kernel = compile_attention(AttentionProblem(sq, skv, depth, vdepth, causal=causal), keep=keep, tile=tile)
    return kernel, kernel.program


def program_seeds() -> list[bytes]:
    """Assembled `.sofa` containers: the ISA suite's programs plus small attention programs."""
    from sofa_compiler.isa.asm import assemble

    blobs = [assemble(text).to_bytes() for text in asm_seeds()]
    blobs.append(small_attention()[1].to_bytes())
    blobs.append(small_attention(sq=4, skv=9, tile=4, keep=1.0, causal=True)[1].to_bytes())
    return blobs


def fix_crc(blob: bytes) -> bytes:
    """Recompute the container checksum so a mutation reaches the parser behind it."""
    from sofa_compiler.isa.container import CHECKSUM_OFFSET, HEADER_SIZE, with_checksum

    return with_checksum(blob, CHECKSUM_OFFSET) if len(blob) >= HEADER_SIZE else blob


def mutate_program(rng: random.Random, blob: bytes) -> bytes:
    """Mutate a `.sofa` container: header, code or symbols; usually with a valid checksum."""
    code_count = struct.unpack_from("<I", blob, 52)[0] if len(blob) >= 96 else 0
    code_end = 96 + 32 * code_count
    match rng.randrange(7):
        case 0:  # header fields (not the checksum)
            blob = rng.choice([flip_bits, set_bytes])(rng, blob, lo=0, hi=80)
        case 1 | 2:  # code words
            blob = rng.choice([flip_bits, set_bytes])(rng, blob, lo=96, hi=code_end)
        case 3:  # the DRAM image and the symbol table
            blob = rng.choice([flip_bits, set_bytes])(rng, blob, lo=code_end)
        case 4:
            blob = mutate_bytes(rng, blob)
        case 5:  # a count, size or offset in the header, with the checksum fixed up
            return edit_program_field(rng, blob)
        case _:
            blob = truncate(rng, blob)
    return fix_crc(blob) if rng.random() < 0.85 else blob


# Program header fields: (offset, width) of the DRAM size, offsets, counts and sizes.
PROGRAM_FIELDS = [(40, 8), (48, 4), (52, 4), (56, 4), (60, 4), (64, 4), (68, 4), (72, 4), (76, 4)]


def edit_program_field(rng: random.Random, blob: bytes) -> bytes:
    """One header count, size or offset set to an interesting value (nsyms = 0, a huge DRAM size), checksum fixed up."""
    if len(blob) < 96:
        return blob
    offset, width = rng.choice(PROGRAM_FIELDS)
    old = int.from_bytes(blob[offset : offset + width], "little")
    value = rng.choice([*INTERESTING_INTS, old + 1, old - 1, old * 2, 1 << 32]) % (1 << (8 * width))
    return fix_crc(blob[:offset] + value.to_bytes(width, "little") + blob[offset + width :])


def bundle_seeds() -> list[bytes]:
    """Small compiled-model bundles: one attention layer on the accelerator."""
    import sofa_compiler
    from sofa_compiler.bundle import bundle_bytes

    return [bundle_bytes(sofa_compiler.compile(FIXTURES / "attn23_mha_4d.onnx"))]


def _bundle_parts(blob: bytes) -> tuple[dict[str, Any], bytes] | None:
    import json

    if len(blob) < 16:
        return None
    length = struct.unpack_from("<I", blob, 8)[0]
    try:
        return json.loads(blob[16 : 16 + length]), blob[16 + length :]
    except ValueError:
        return None


def _bundle_from(blob: bytes, manifest: Any, kernels: bytes) -> bytes:
    import json

    from sofa_compiler.bundle import reseal

    text = json.dumps(manifest, sort_keys=True).encode()
    return reseal(blob[:8] + struct.pack("<I", len(text)) + blob[12:16] + text + kernels)


def mutate_bundle(rng: random.Random, blob: bytes) -> bytes:
    """Bundle edits: flips and truncations (caught by the checksum), or manifest and kernel edits, resealed."""
    parts = _bundle_parts(blob)
    choice = rng.randrange(8)
    if parts is None or choice == 0:
        return rng.choice([flip_bits, truncate, set_bytes])(rng, blob)
    manifest, kernels = parts
    if choice == 1:  # a manifest digit (outputs would change silently without the checksum)
        at = [i for i in range(16, 16 + len(blob) - len(kernels) - 16) if blob[i : i + 1].isdigit()]
        if at:
            i = rng.choice(at)
            return blob[:i] + str((int(blob[i : i + 1]) + 1) % 10).encode() + blob[i + 1 :]
        return flip_bits(rng, blob)
    if choice == 2 and isinstance(manifest, dict) and manifest:  # a manifest value of the wrong kind or shape
        key = rng.choice(sorted(manifest))
        manifest[key] = rng.choice([None, 1, -1, "x", [], {}, [[[]]], {"a": 1}, 1e308, manifest.get(key, 0)])
    elif choice == 3:  # a key dropped, or the whole manifest replaced
        if rng.random() < 0.5 and manifest:
            del manifest[rng.choice(sorted(manifest))]
        else:
            manifest = rng.choice([[], "manifest", 7, {"config": []}, [[[[[[[[1]]]]]]]]])
    elif choice == 4 and isinstance(manifest.get("host"), str):  # the host code: text mutations, deep nesting
        depth = rng.choice([50, 150, 400])
        manifest["host"] = rng.choice([
            mutate_text(rng, manifest["host"]),
            manifest["host"][: rng.randrange(len(manifest["host"]) + 1)],
            '"test.op"() ({' * depth + "}) : () -> ()" * depth,
        ])  # fmt: skip
    elif choice == 5 and manifest.get("kernels"):  # a kernel's offset or size
        entry = rng.choice(manifest["kernels"])
        field = rng.choice(["offset", "size", "name"])
        old = entry.get(field)
        entry[field] = rng.choice([0, 1, -1, 96, 1 << 40, "x", None, old + 1 if isinstance(old, int) else old])
    elif choice == 6 and kernels:  # a kernel's header field, both checksums fixed up
        kernels = edit_program_field(rng, kernels)
    else:  # a config value
        config = manifest.get("config", {})
        if isinstance(config, dict) and isinstance(config.get("target"), dict) and config["target"]:
            key = rng.choice(sorted(config["target"]))
            config["target"][key] = rng.choice([0, -1, 5e-324, 1e308, "x", True, config["target"][key]])
    return _bundle_from(blob, manifest, kernels)


def mutate_asm(rng: random.Random, text: str) -> str:
    vocabulary = ["loop", "halt", "set", "addi", "dma.load", "sads", "sufa.step", "sufa.init", "sufa.norm",
                  "rass", "token[r1+0]", "temp[r0+4096]", "dram[r2+4096]", "weight[r15+262143]", ".word",
                  ".symbol", ".data", ".dram", ".config", "wait=0b1", "signal=0b11111111", "lanes=129",
                  "count=16777215", "body=0", "radius=-inf", "scale=nan", "r16", "f64", "i32"]  # fmt: skip
    return mutate_text(rng, text, vocabulary)


def config_seeds() -> list[str]:
    return [path.read_text() for path in sorted(CONFIGS.glob("*.toml"))]


def mutate_toml(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    values = ["0", "-1", "-0.5", "1e309", "nan", "inf", "-inf", "true", '"128"', "[1, 2]", "{a = 1}",
              "1979-05-27", "0x10", "1_000", "128.0", "9223372036854775807", "-9223372036854775808",
              "99999999999999999999", '""', "1e-320"]  # fmt: skip
    for _ in range(rng.randint(1, 3)):
        keyed = [i for i, line in enumerate(lines) if re.match(r"\s*\w+\s*=", line)]
        choice = rng.randrange(6)
        if choice <= 1 and keyed:  # a wrong value
            i = rng.choice(keyed)
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {rng.choice(values)}"
        elif choice == 2 and keyed:  # an unknown or duplicated key
            i = rng.choice(keyed)
            key = lines[i].split("=", 1)[0].strip()
            lines.insert(i + 1, f"{rng.choice([key, key + 's', 'bogus', 'lane'])} = {rng.choice(values)}")
        elif choice == 3:  # a section header
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(["[target]", "[bogus]", "[[target]]", "[target.x]",
                                                                   "target = 3", "name = 7", "[energy"]))  # fmt: skip
        elif choice == 4 and lines:  # drop a line
            del lines[rng.randrange(len(lines))]
        else:
            return mutate_text(rng, "\n".join(lines) + "\n")
    return "\n".join(lines) + "\n"


TOML_EDGE_NUMBERS = ["5e-324", "1e-300", "2.2250738585072014e-308", "1e-9", "-0.0", "1e300", "4.9e-324", "1e-30"]


def mutate_toml_structure(rng: random.Random, text: str) -> bytes:
    """Structural TOML edits: deep arrays and inline tables, array-of-tables, tiny numbers, binary bytes."""
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if re.match(r"\s*\w+\s*=", line)]
    depth = rng.choice([2, 33, 200, 1000, 5000])
    match rng.randrange(7):
        case 0 if keyed:  # a value nested `depth` deep
            i = rng.choice(keyed)
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= " + rng.choice(["[" * depth + "1" + "]" * depth, "{a = " * depth + "1" + "}" * depth])
        case 1 if keyed:  # a number at the edge of the float range (a derived figure may overflow)
            i = rng.choice(keyed)
            lines[i] = f"{lines[i].split('=', 1)[0]}= {rng.choice(TOML_EDGE_NUMBERS)}"
        case 2:  # a section as an array of tables, or repeated
            section = rng.choice(["target", "energy", "timing", "area"])
            lines += [f"[[{section}]]", "lanes = 1"] if rng.random() < 0.5 else [f"[{section}]", "lanes = 2"]
        case 3:  # dotted keys and deep tables
            lines.insert(0, ".".join(["target"] * rng.choice([2, 40, 300])) + " = 1")
        case 4:  # binary bytes: not UTF-8
            data = ("\n".join(lines) + "\n").encode()
            at = rng.randrange(len(data) + 1)
            return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[at:]
        case 5:  # a BOM, NULs or CR line ends
            return rng.choice([b"\xef\xbb\xbf", b"\x00", b"\xff\xfe"]) + ("\r\n".join(lines)).encode()
        case _:
            return mutate_toml(rng, text).encode("utf-8", "surrogateescape")
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------


def mutate_onnx(rng: random.Random, blob: bytes) -> bytes:
    """Bytes-level mutation, or a structural one through the onnx API."""
    if rng.random() < 0.35:
        return mutate_bytes(rng, blob)
    import onnx
    from onnx import TensorProto

    model = onnx.ModelProto()
    try:
        model.ParseFromString(blob)
    except Exception:
        return mutate_bytes(rng, blob)
    graph = model.graph
    dtypes = [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32,
              TensorProto.BOOL, TensorProto.UINT8, TensorProto.STRING, TensorProto.BFLOAT16, 0, 99]  # fmt: skip
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(10)
        values = list(graph.input) + list(graph.output) + list(graph.value_info)
        if choice == 0 and values:  # element type
            rng.choice(values).type.tensor_type.elem_type = rng.choice(dtypes)
        elif choice == 1 and values:  # a dimension
            value = rng.choice(values)
            dims = value.type.tensor_type.shape.dim
            if len(dims):
                dim = rng.choice(dims)
                pick = rng.randrange(4)
                if pick == 0:
                    dim.dim_param = rng.choice(["batch", "seq", ""])
                else:
                    dim.dim_value = rng.choice([0, 1, 2, 3, 5, 7, 64, 1 << 20, -1])
        elif choice == 2 and values:  # rank
            value = rng.choice(values)
            shape = value.type.tensor_type.shape
            if len(shape.dim) and rng.random() < 0.5:
                del shape.dim[rng.randrange(len(shape.dim))]
            else:
                shape.dim.add().dim_value = rng.choice([1, 2, 4])
        elif choice == 3 and graph.node:  # an attribute
            node = rng.choice(graph.node)
            if len(node.attribute):
                attr = rng.choice(node.attribute)
                if attr.type == onnx.AttributeProto.INT:
                    attr.i = rng.choice([-2, -1, 0, 1, 2, 3, 7, 1 << 40])
                elif attr.type == onnx.AttributeProto.FLOAT:
                    attr.f = rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e30])
                elif attr.type == onnx.AttributeProto.INTS and len(attr.ints):
                    attr.ints[rng.randrange(len(attr.ints))] = rng.choice([-1, 0, 1, 5, 99])
                elif attr.type == onnx.AttributeProto.TENSOR:
                    attr.t.data_type = rng.choice(dtypes)
                else:
                    attr.type = rng.choice([1, 2, 3, 4, 7, 0])
            else:
                node.attribute.add().CopyFrom(onnx.helper.make_attribute(rng.choice(["axis", "scale", "is_causal",
                                                                                    "q_num_heads", "perm"]), 1))  # fmt: skip
        elif choice == 4 and model.opset_import:  # opset
            model.opset_import[0].version = rng.choice([1, 12, 13, 17, 22, 23, 24, 25, 99])
            if rng.random() < 0.2:
                model.opset_import[0].domain = rng.choice(["", "ai.onnx", "com.microsoft", "bogus"])
        elif choice == 5 and graph.node:  # operator type or domain
            node = rng.choice(graph.node)
            node.op_type = rng.choice(["Attention", "MatMul", "Softmax", "Add", "Transpose", "Reshape", "Foo",
                                       "Where", "Mul", "Div", "Concat", "Gather", node.op_type])  # fmt: skip
        elif choice == 6 and graph.node:  # inputs and outputs of a node
            node = rng.choice(graph.node)
            names = [n for v in (graph.input, graph.initializer) for n in (x.name for x in v)]
            names += [o for n in graph.node for o in n.output]
            if len(node.input) and rng.random() < 0.5:
                node.input[rng.randrange(len(node.input))] = rng.choice([*names, "", "missing"])
            elif len(node.input):
                del node.input[rng.randrange(len(node.input))]
            else:
                node.input.append(rng.choice([*names, "missing"]))
        elif choice == 7 and graph.initializer:  # an initializer
            init = rng.choice(graph.initializer)
            pick = rng.randrange(4)
            if pick == 0:
                init.data_type = rng.choice(dtypes)
            elif pick == 1 and len(init.dims):
                init.dims[rng.randrange(len(init.dims))] = rng.choice([0, 1, 3, 1000])
            elif pick == 2 and init.raw_data:
                init.raw_data = init.raw_data[: rng.randrange(len(init.raw_data) + 1)]
            else:
                try:
                    arr = onnx.numpy_helper.to_array(init).astype(np.float64) if init.data_type == 1 else None
                except ValueError:  # an earlier mutation already corrupted it
                    arr = None
                if arr is not None and arr.size:
                    arr.reshape(-1)[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e38])
                    init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
        elif choice == 8 and graph.node:  # drop or duplicate a node
            i = rng.randrange(len(graph.node))
            if rng.random() < 0.5:
                del graph.node[i]
            else:
                graph.node.add().CopyFrom(graph.node[i])
        elif choice == 9 and len(graph.output):  # graph outputs
            if rng.random() < 0.5:
                del graph.output[rng.randrange(len(graph.output))]
            else:
                graph.output[rng.randrange(len(graph.output))].name = rng.choice(
                    [n.input[0] for n in graph.node if n.input] + ["missing"]
                )
    return model.SerializeToString()


# ---------------------------------------------------------------------------
# .npz inputs
# ---------------------------------------------------------------------------


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def mutate_arrays(rng: random.Random, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Wrong names, shapes, dtypes; NaN and Inf values; extra and missing arrays."""
    arrays = dict(arrays)
    for _ in range(rng.randint(1, 2)):
        names = list(arrays)
        choice = rng.randrange(8)
        if not names:
            arrays["arg0"] = np.zeros(3, np.float32)
            continue
        name = rng.choice(names)
        value = arrays[name]
        if choice == 0:  # rename
            arrays[rng.choice([name + "x", name.upper(), "arg9", "arr_0", "", "q", "o"])] = arrays.pop(name)
        elif choice == 1:  # drop
            del arrays[name]
        elif choice == 2:  # extra
            arrays[rng.choice(["extra", "arg7", "k2"])] = np.ones(2, np.float32)
        elif choice == 3:  # dtype
            dtype = rng.choice([np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint8,
                                np.complex64, "U3", object])  # fmt: skip
            try:
                arrays[name] = value.astype(dtype)
            except (TypeError, ValueError):
                arrays[name] = np.array(["x"])
        elif choice == 4:  # shape
            shape = list(value.shape)
            pick = rng.randrange(3)
            if pick == 0 and shape:
                shape[rng.randrange(len(shape))] += rng.choice([-1, 1, 7])
            elif pick == 1:
                shape.append(1)
            elif shape:
                shape.pop()
            shape = [max(0, s) for s in shape]
            arrays[name] = np.zeros(shape, value.dtype)
        elif value.dtype.kind == "f" and value.size:  # NaN, Inf, huge values
            value = value.copy()
            flat = value.reshape(-1)
            special = rng.choice([np.nan, np.inf, -np.inf, 6.5e4, -6.5e4, 1e30, 0.0])
            if rng.random() < 0.3:
                flat[:] = special
            else:
                flat[rng.randrange(flat.size)] = special
            arrays[name] = value
    return arrays


def mutate_npz(rng: random.Random, arrays: dict[str, np.ndarray]) -> bytes:
    if rng.random() < 0.1:
        return mutate_bytes(rng, npz_bytes(arrays))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ComplexWarning and friends from the dtype mutations
        return npz_bytes(mutate_arrays(rng, arrays))


RUN_IR_SOURCE = """\
func.func @main(%q: tensor<1x2x8x8xf32>, %k: tensor<1x1x12x8xf32>, %v: tensor<1x1x12x4xf32>, %m: tensor<8x12xi1>) -> tensor<1x2x8x4xf32> {
  %o = sofa.attention %q, %k, %v mask %m scale 0.35 heads 2 / 1 sparsity <keep = 0.5, tile = 4, radius = 8.0, predictor = "dlzs"> : tensor<1x2x8x8xf32>, tensor<1x1x12x8xf32>, tensor<1x1x12x4xf32>, tensor<8x12xi1> -> tensor<1x2x8x4xf32>
  func.return %o : tensor<1x2x8x4xf32>
}
"""


def run_ir_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "q": rng.standard_normal((1, 2, 8, 8)).astype(np.float32),
        "k": rng.standard_normal((1, 1, 12, 8)).astype(np.float32),
        "v": rng.standard_normal((1, 1, 12, 4)).astype(np.float32),
        "m": rng.random((8, 12)) < 0.8,
    }


# ---------------------------------------------------------------------------
# Targets: bytes in, Outcome out
# ---------------------------------------------------------------------------


class Targets:
    """One object per process: seed corpora and the scratch directory, built once."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.scratch = Scratch()
        self._cache: dict[str, Any] = {}

    def close(self) -> None:
        self.scratch.close()

    def _get(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # Seeds
    @property
    def mlir(self) -> list[str]:
        return self._get("mlir", mlir_seeds)

    @property
    def mlir_words(self) -> list[str]:
        return self._get("mlir_words", lambda: mlir_vocabulary(self.mlir))

    @property
    def onnx(self) -> list[tuple[str, bytes]]:
        return self._get("onnx", onnx_seeds)

    @property
    def programs(self) -> list[bytes]:
        return self._get("programs", program_seeds)

    @property
    def bundles(self) -> list[bytes]:
        return self._get("bundles", bundle_seeds)

    @property
    def asm(self) -> list[str]:
        return self._get("asm", asm_seeds)

    @property
    def configs(self) -> list[str]:
        return self._get("configs", config_seeds)

    @property
    def sim_case(self) -> tuple[str, dict[str, np.ndarray]]:
        """(program path, valid inputs) of a small attention program, for npz fuzzing of sofa-sim."""

        def build() -> tuple[str, dict[str, np.ndarray]]:
            kernel, program = small_attention()
            rng = np.random.default_rng(0)
            q, k, v = (rng.standard_normal(kernel.problem.shapes[name]) for name in "qkv")
            path = self.scratch.write("seed-attention.sofa", program.to_bytes())
            return path, kernel.inputs(q, k, v)

        return self._get("sim_case", build)

    @property
    def halt_program(self) -> str:
        from sofa_compiler.isa.asm import assemble

        return self._get("halt", lambda: self.scratch.write("halt.sofa", assemble("halt\n").to_bytes()))

    @property
    def run_ir_file(self) -> str:
        return self._get("run_ir", lambda: self.scratch.write("seed-run-ir.mlir", RUN_IR_SOURCE))

    # Mutation: (entry, rng) -> input bytes
    def generate(self, entry: str, rng: random.Random) -> bytes:
        match entry:
            case "mlir":
                return mutate_text(rng, rng.choice(self.mlir), self.mlir_words).encode("utf-8", "surrogateescape")
            case "onnx":
                return mutate_onnx(rng, rng.choice(self.onnx)[1])
            case "sofa":
                return mutate_program(rng, rng.choice(self.programs))
            case "asm":
                return mutate_asm(rng, rng.choice(self.asm)).encode("utf-8", "surrogateescape")
            case "toml":
                if rng.random() < 0.4:
                    return mutate_toml_structure(rng, rng.choice(self.configs))
                return mutate_toml(rng, rng.choice(self.configs)).encode("utf-8", "surrogateescape")
            case "bundle":
                return mutate_bundle(rng, rng.choice(self.bundles))
            case "npz":
                # Even seeds feed sofa-sim's attention program, odd ones sofa-run-ir's.
                source = self.sim_case[1] if rng.random() < 0.5 else run_ir_inputs(rng.randrange(4))
                return mutate_npz(rng, source)
        raise ValueError(f"unknown entry '{entry}'")

    # Running: (entry, input bytes) -> Outcome
    def run(self, entry: str, data: bytes, variant: int = 0) -> Outcome:
        from sofa_compiler.tools import sofa_as, sofa_import, sofa_objdump, sofa_opt, sofa_run_ir, sofa_sim

        t = self.timeout
        match entry:
            case "mlir":
                path = self.scratch.write("input.mlir", data)
                argv = [path] if variant % 2 == 0 else [path, "--split-input-file", "--verify-diagnostics"]
                return call_main(sofa_opt.main, argv, t)
            case "onnx":
                path = self.scratch.write("input.onnx", data)
                return call_main(sofa_import.main, [path], t)
            case "sofa":
                path = self.scratch.write("input.sofa", data)
                mode = variant % 4
                if mode == 0:
                    return call_main(sofa_objdump.main, [path], t)
                if mode == 1:
                    return call_main(sofa_objdump.main, [path, "--source" if variant % 8 == 1 else "--json"], t)
                argv = [path, "--random-inputs", str(variant), "--json", *SIM_LIMITS]
                return call_main(sofa_sim.main, argv, t)
            case "bundle":
                path = self.scratch.write("input-bundle.sofa", data)
                if variant % 3 == 0:
                    return call_main(sofa_objdump.main, [path], t)
                argv = [
                    path,
                    "--random-inputs",
                    str(variant),
                    "--json",
                    "--max-instructions",
                    str(SIM_MAX_INSTRUCTIONS),
                ]
                return call_main(sofa_sim.main, argv, t)
            case "asm":
                path = self.scratch.write("input.s", data)
                return call_main(sofa_as.main, [path, "-o", self.scratch.path("out.sofa")], t)
            case "toml":
                path = self.scratch.write("input.toml", data)
                return call_main(sofa_sim.main, [self.halt_program, "--config", path, "--json"], t)
            case "npz":
                path = self.scratch.write("input.npz", data)
                keys = _npz_keys(data)
                if keys & {"q16", "khat"} or (variant % 2 == 0 and not keys & {"m"}):
                    argv = [self.sim_case[0], "--inputs", path, "--json", *SIM_LIMITS]
                    return call_main(sofa_sim.main, argv, t)
                return call_main(sofa_run_ir.main, [self.run_ir_file, "--inputs", path], t)
        raise ValueError(f"unknown entry '{entry}'")


def _npz_keys(data: bytes) -> set[str]:
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except Exception:
        return set()


ENTRIES = ("mlir", "onnx", "sofa", "bundle", "asm", "toml", "npz")


def check(outcome: Outcome, data: bytes | None = None) -> None:
    """Assert a clean outcome (for the hypothesis tests)."""
    assert outcome.kind in (OK, ERROR), outcome.summary() + f"\ninput: {data!r:.400}"


def isfinite_or_nan_in(values: np.ndarray, *inputs: np.ndarray) -> bool:
    """True when `values` has no NaN, or one of the inputs had one."""
    return not np.isnan(values).any() or any(np.isnan(np.asarray(x, np.float64)).any() for x in inputs)
