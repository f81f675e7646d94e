"""Structure-aware fuzz generators (issue 20): the classes of input the byte mutators of `fuzzlib` miss.

Entries, each a generator and a runner with an oracle:

* ``mlir-struct``: MLIR token and region mutations of the FileCheck seeds: a function
  nested in a function (must be rejected), deep region nesting, a region duplicated or
  deleted, a terminator dropped, an SSA use rewired, lines swapped (sofa-opt, sofa-run-ir);
* ``onnx-struct``: semantic ONNX protobuf field mutations of the fixtures: dims,
  dtypes, attributes, graph edges and external data (an absolute or escaping
  location must be refused) (sofa-import, sofa-compile);
* ``ieee``: NaN, infinities and fp32-overflowing dot products in small attention
  layers through sofa-run; where every query sees the non-finite value, sofa-run
  must match onnxruntime (status 0; status 3 is a wrong success of the contract);
* ``files``: output targets made in a private directory (FIFOs whose reader
  reads or leaves, symlinks, dangling and looping links, directories, missing
  parents, and, as root, a ``/dev/full``-like character device node of our own;
  never the system's): a target that cannot take the output must fail, a device
  or FIFO must stay what it was, no temporary may be left behind. A private full
  tmpfs would need a mount (root tricks), so the full disk is the device node;
* ``signals``: SIGINT or SIGTERM at a random moment of a real ``sofa-compile
  --dump-ir-dir D -o OUT`` process (status 0, 130 or 143, no traceback, no
  temporaries, OUT whole or absent), or two processes writing one ``-o`` at once.

Each input is bytes (the campaign saves reproducers): the mutated text or model,
or a JSON case for the last three. `WRONG` is the outcome of a run that succeeded
where the oracle says it must not (or left the file system wrong).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from fuzzlib import CRASH, ERROR, OK, REPO, Outcome, call_main

if TYPE_CHECKING:
    from fuzzlib import Targets

WRONG = "wrong"
ENTRIES = ("mlir-struct", "onnx-struct", "ieee", "files", "signals")
SUFFIX = {"mlir-struct": ".mlir", "onnx-struct": ".onnx", "ieee": ".json", "files": ".json", "signals": ".json"}


def wrong(outcome: Outcome, why: str) -> Outcome:
    return Outcome(WRONG, outcome.rc, outcome.stdout, outcome.stderr, why, outcome.seconds)


# ---------------------------------------------------------------------------
# MLIR: token and region mutations
# ---------------------------------------------------------------------------

_FUNC = re.compile(r"^(\s*)func\.func\b", re.MULTILINE)
_SSA = re.compile(r"%[\w.]+")


def _regions(text: str) -> list[tuple[int, int]]:
    """Spans ``{ ... }`` of balanced braces that hold a newline (regions, not attribute dictionaries)."""
    spans, stack = [], []
    for index, char in enumerate(text):
        if char == "{":
            stack.append(index)
        elif char == "}" and stack:
            start = stack.pop()
            if "\n" in text[start:index]:
                spans.append((start, index + 1))
    return spans


def _function(text: str) -> str | None:
    """The first ``func.func ... { ... }`` of a seed, or None."""
    match = _FUNC.search(text)
    if not match:
        return None
    for start, end in _regions(text):
        if start > match.start():
            return text[match.start() : end]
    return None


def nested_function(seed: str) -> str | None:
    """The seed's first function wrapped in another (must be rejected, as upstream MLIR does)."""
    inner = _function(seed)
    return None if inner is None else f"func.func @outer_nest() {{\n{inner}\n  func.return\n}}\n"


def deep_nesting(depth: int) -> str:
    return '"test.op"() ({\n' * depth + "}) : () -> ()\n" * depth


def mutate_mlir_structure(rng: random.Random, seed: str) -> tuple[str, bool]:
    """(mutated text, whether it must be rejected)."""
    choice = rng.randrange(7)
    if choice == 0 and (nested := nested_function(seed)) is not None:
        return nested, True
    if choice == 1:
        return deep_nesting(rng.choice([8, 64, 200, 1000, 5000])), False
    regions = _regions(seed)
    lines = seed.splitlines(keepends=True)
    if choice == 2 and regions:  # a region duplicated after itself
        start, end = rng.choice(regions)
        return seed[:end] + seed[start:end] + seed[end:], False
    if choice == 3 and regions:  # a region's body deleted
        start, end = rng.choice(regions)
        return seed[: start + 1] + "\n}" + seed[end:], False
    if choice == 4:  # the terminators dropped
        return "".join(line for line in lines if "return" not in line and "yield" not in line), False
    if choice == 5 and (names := sorted(set(_SSA.findall(seed)))):  # one SSA use rewired to another value
        old, new = rng.choice(names), rng.choice([*names, "%undefined", "%0"])
        spots = [m.start() for m in re.finditer(re.escape(old) + r"\b", seed)]
        spot = rng.choice(spots)
        return seed[:spot] + new + seed[spot + len(old) :], False
    if len(lines) > 2:  # two lines swapped
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines), False


# ---------------------------------------------------------------------------
# ONNX: semantic protobuf field mutations
# ---------------------------------------------------------------------------

REFUSED_LOCATIONS = ("/etc/hostname", "../outside.bin", "sub/../../outside.bin")
EXTERNAL_FILE = "data.bin"
"""A 64-byte file the runner writes beside the model, so valid locations (with bad offsets) reach deep."""


def mutate_onnx_structure(rng: random.Random, blob: bytes) -> tuple[bytes, bool]:
    """(mutated model, whether it must be refused): dims, dtypes, attributes, edges or external data."""
    import onnx
    from onnx import TensorProto

    model = onnx.ModelProto()
    model.ParseFromString(blob)
    graph = model.graph
    values = [*graph.input, *graph.output, *graph.value_info]
    choice = rng.randrange(5)
    must_fail = False
    if choice == 0 and values:  # dims
        tensor_type = rng.choice(values).type.tensor_type
        if tensor_type.shape.dim:
            dim = rng.choice(tensor_type.shape.dim)
            if rng.random() < 0.8:
                dim.dim_value = rng.choice([0, -1, 1, 3, 2**31, 2**62])
            else:
                dim.dim_param = rng.choice(["n", "", "batch"])
        elif rng.random() < 0.5:
            tensor_type.ClearField("shape")
    elif choice == 1:  # dtypes
        if graph.initializer and rng.random() < 0.4:
            rng.choice(graph.initializer).data_type = rng.randrange(0, 27)
        elif values:
            rng.choice(values).type.tensor_type.elem_type = rng.randrange(0, 27)
    elif choice == 2 and graph.node:  # attributes
        node = rng.choice(graph.node)
        if node.attribute and rng.random() < 0.7:
            attribute = rng.choice(node.attribute)
            action = rng.randrange(3)
            if action == 0:
                node.attribute.remove(attribute)
            elif action == 1:
                attribute.type = rng.randrange(0, 15)
            else:
                attribute.i = rng.choice([-1, 0, 2, 2**40])
                attribute.f = rng.choice([float("nan"), float("inf"), -1.0, 0.0])
        else:
            node.attribute.append(onnx.helper.make_attribute(rng.choice(["scale", "is_causal", "bogus"]), 7))
    elif choice == 3 and graph.node:  # graph edges
        node = rng.choice(graph.node)
        names = [name for n in graph.node for name in n.output] + [v.name for v in graph.input] + ["", "nowhere"]
        action = rng.randrange(4)
        if action == 0 and node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(names)
        elif action == 1 and node.input and node.output:
            node.input[rng.randrange(len(node.input))] = node.output[0]  # a cycle through itself
        elif action == 2:
            graph.node.append(node)  # a second producer of the same outputs
        else:
            graph.node.remove(node)
    else:  # external data
        tensor = (
            rng.choice(graph.initializer)
            if graph.initializer and rng.random() < 0.5
            else (onnx.numpy_helper.from_array(np.ones((2, 2), np.float32), f"ext{rng.randrange(9)}"))
        )
        if tensor not in graph.initializer:
            graph.initializer.append(tensor)
            tensor = graph.initializer[-1]
        location = rng.choice([*REFUSED_LOCATIONS, EXTERNAL_FILE, "missing.bin"])
        must_fail = location in REFUSED_LOCATIONS
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        del tensor.external_data[:]
        for key, value in [("location", location), ("offset", rng.choice(["0", "8", "60", "4096", "-1"]))]:
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        if rng.random() < 0.5:
            entry = tensor.external_data.add()
            entry.key, entry.value = "length", rng.choice(["0", "16", "4", "1000000"])
    return model.SerializeToString(), must_fail


# ---------------------------------------------------------------------------
# IEEE: non-finite values through sofa-run
# ---------------------------------------------------------------------------


def ieee_case(rng: random.Random) -> dict:
    causal = rng.random() < 0.4
    tensor = rng.choice("qkv")
    return dict(
        sq=rng.choice([1, 5, 16, 33]),
        skv=rng.choice([5, 16, 40]),
        depth=rng.choice([4, 8]),
        causal=causal,
        keep=rng.choice([1.0, 1.0, 0.5]),
        tensor=tensor,
        special=rng.choice(["nan", "inf", "-inf", "huge", "row-inf", "row-huge"]),
        key=rng.randrange(40),
        column=rng.randrange(4),
        seed=rng.randrange(2**32),
    )


def ieee_files(case: dict, directory: Path) -> tuple[Path, Path, bool]:
    """(model, inputs, whether sofa-run must match onnxruntime's non-finite positions)."""
    import onnx
    from onnx import TensorProto, helper

    shapes = {"q": [1, 1, case["sq"], case["depth"]], "k": [1, 1, case["skv"], case["depth"]]}
    shapes["v"] = [1, 1, case["skv"], 4]
    infos = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in shapes.items()]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, case["sq"], 4])
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=int(case["causal"]))
    model = helper.make_model(helper.make_graph([node], "layer", infos, [output]))
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 23))
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    rng = np.random.default_rng(case["seed"])
    inputs = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    key = case["key"] % case["skv"] if not case["causal"] else 0
    row = case["column"] % case["sq"]
    if case["special"] == "huge":  # one same-sign dot product past fp32's range
        inputs["q"][0, 0, row, :] = 1e19
        inputs["k"][0, 0, key, :] = 1e19 if case["column"] % 2 else -1e19
    elif case["special"] == "row-inf":  # every score of one row -inf by arithmetic: onnxruntime's row is NaN
        inputs["q"][0, 0, row, 0] = -np.inf
        inputs["k"][0, 0, :, 0] = np.abs(inputs["k"][0, 0, :, 0]) + 0.5
    elif case["special"] == "row-huge":  # the same by fp32 overflow (predicted finite: fp16 saturates)
        inputs["q"][0, 0, row, :] = 1e19
        inputs["k"][0, 0] = -np.abs(inputs["k"][0, 0]) - 1e19
    else:
        tensor = inputs[case["tensor"]]
        row = case["key"] % tensor.shape[2] if case["tensor"] == "q" else key
        tensor[0, 0, row, case["column"]] = float(case["special"])
    model_path, inputs_path = directory / "ieee.onnx", directory / "ieee.npz"
    onnx.save(model, str(model_path))
    np.savez(inputs_path, **inputs)
    # Keys a mask hides reach onnxruntime's rows (NaN + -inf, or an inf in Q times a hidden key); here they
    # never do (docs/isa.md). NaN in Q makes its row NaN either way.
    # Under the causal mask onnxruntime adds a finite fill (fp32's lowest) to hidden keys: an infinity in Q
    # meets them (+inf + fill), and a row whose visible scores are all -inf (an infinity in key 0, or its
    # overflow) takes its softmax over the hidden keys instead of NaN. A row whose every score is -inf is
    # NaN in both. NaN in Q, and NaN or inf in V's key 0, reach the same rows in both.
    special = case["special"]
    visible = (
        not case["causal"]
        or special == "row-huge"
        or (case["tensor"] == "q" and special == "nan")
        or (case["tensor"] == "v" and special in ("nan", "inf", "-inf"))
        or (case["tensor"] == "k" and special == "nan")
    )
    # The 16-bit datapath stores 1e19 as 65504 (saturating): the dot products stay finite where
    # onnxruntime's fp32 ones overflow, so sofa-run may report the difference (exit 3) by design.
    overflow_only_in_fp32 = special in ("huge", "row-huge")
    return model_path, inputs_path, visible and case["keep"] == 1.0 and not overflow_only_in_fp32


# ---------------------------------------------------------------------------
# Files: output targets
# ---------------------------------------------------------------------------

FILE_KINDS = (
    "regular", "fifo-reads", "fifo-leaves", "symlink", "dangling-symlink", "symlink-loop", "directory",
    "missing-parent", "through-file", "full-device",
)  # fmt: skip
FILE_TOOLS = ("sofa-as", "sofa-compile", "sofa-import", "sofa-opt", "sofa-sim")
MUST_FAIL = {"symlink-loop", "directory", "missing-parent", "through-file", "full-device"}


def make_target(kind: str, directory: Path) -> tuple[Path, Path | None]:
    """The -o path of `kind` in `directory`, and the file a symlink points at (or None)."""
    target = directory / "out"
    match kind:
        case "fifo-reads" | "fifo-leaves":
            os.mkfifo(target)
        case "symlink":
            (directory / "real").write_bytes(b"old")
            target.symlink_to("real")
            return target, directory / "real"
        case "dangling-symlink":
            target.symlink_to("created")
            return target, directory / "created"
        case "symlink-loop":
            target.symlink_to("out")
        case "directory":
            target.mkdir()
        case "missing-parent":
            return directory / "nowhere" / "out", None
        case "through-file":
            target.write_bytes(b"a file")
            return target / "out", None
        case "full-device":
            if os.geteuid() != 0:
                raise PermissionError("a device node needs root")
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # our own /dev/full, in our directory
    return target, None


class FifoReader:
    """Read a FIFO in a thread: all of it, or one byte before leaving (the writer then sees EPIPE)."""

    def __init__(self, path: Path, leave: bool) -> None:
        self.handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(self.handle, True)
        self.keeper = os.open(path, os.O_WRONLY)  # the reader sees end-of-file only once we close it too
        self.received = bytearray()
        self.leave = leave
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self.handle, 1 if self.leave else 65536):
                self.received += chunk
                if self.leave:
                    break
        finally:
            os.close(self.handle)

    def finish(self) -> bytes:
        os.close(self.keeper)
        self.thread.join(timeout=30)
        return bytes(self.received)


# ---------------------------------------------------------------------------
# Signals and concurrency: real processes
# ---------------------------------------------------------------------------

SIGNAL_MODEL = REPO / "tests" / "fixtures" / "attn23_mha_4d.onnx"


def _tool(name: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        f"import sys; sys.argv[0] = '{name}'; from sofa_compiler.tools.{name.replace('-', '_')} import main; sys.exit(main())",
    ]


def leftovers(directory: Path) -> list[str]:
    """Temporaries `atomic_write` left (it names them ``.NAME.XXXXXXXX``)."""
    return sorted(p.name for p in directory.rglob(".*") if p.is_file())


def run_signal_case(case: dict, directory: Path, timeout: float) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out, dumps = directory / "model.sofa", directory / "dumps"
    argv = [*_tool("sofa-compile"), str(SIGNAL_MODEL), "--dump-ir-dir", str(dumps), "-o", str(out)]
    start = time.perf_counter()
    if case["mode"] == "race":  # two writers of one -o at once
        runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(2)]
        results = [(run.wait(timeout), *[s.decode() for s in run.communicate()]) for run in runs]
        rc, stdout, stderr = max(results)
    else:
        run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        time.sleep(case["delay"])
        run.send_signal(getattr(signal, case["signal"]))
        try:
            stdout, stderr = (s.decode() for s in run.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            return Outcome("hang", -1, "", "", f"no exit {timeout} s after {case['signal']}", timeout)
        rc = run.returncode
    outcome = Outcome(OK if rc == 0 else ERROR, rc, stdout, stderr, "", time.perf_counter() - start)
    # Killed by the signal itself (-N) only before Python runs any of our code: then nothing was written.
    killed = case["mode"] == "signal" and rc == -getattr(signal, case["signal"]) and not stderr.strip()
    # A signal in Python's own start-up (before any module of ours loads) gets Python's message: out of our reach.
    killed |= "init_import_site" in stderr and str(REPO) not in stderr
    if not killed and ("Traceback" in stderr or rc not in (0, 130, 143) or (rc and not stderr.strip())):
        return Outcome(CRASH, rc, stdout, stderr, f"status {rc}: {stderr.strip()[-300:]}", outcome.seconds)
    if left := leftovers(directory):
        return wrong(outcome, f"temporaries left behind: {left}")
    if out.exists():
        from sofa_compiler.bundle import load_bundle

        try:
            load_bundle(out.read_bytes(), str(out))
        except Exception as error:  # a partial bundle under the final name
            return wrong(outcome, f"{out.name} is not a whole bundle: {error}")
    elif rc == 0:
        return wrong(outcome, "status 0 and no output")
    return outcome


# ---------------------------------------------------------------------------
# Generating and running
# ---------------------------------------------------------------------------


def generate(targets: Targets, entry: str, rng: random.Random) -> bytes:
    match entry:
        case "mlir-struct":
            text, must_fail = mutate_mlir_structure(rng, rng.choice(targets.mlir))
            return (("// must-fail\n" if must_fail else "") + text).encode("utf-8", "surrogateescape")
        case "onnx-struct":
            blob, must_fail = mutate_onnx_structure(rng, rng.choice(targets.onnx)[1])
            return (b"F" if must_fail else b"-") + blob
        case "ieee":
            return json.dumps(ieee_case(rng)).encode()
        case "files":
            kinds = [k for k in FILE_KINDS if k != "full-device" or os.geteuid() == 0]
            return json.dumps({"kind": rng.choice(kinds), "tool": rng.choice(FILE_TOOLS)}).encode()
        case "signals":
            mode = rng.choice(["signal", "signal", "signal", "race"])
            case = {"mode": mode, "signal": rng.choice(["SIGINT", "SIGTERM"]), "delay": round(rng.uniform(0, 2.5), 3)}
            return json.dumps(case).encode()
    raise ValueError(f"unknown entry '{entry}'")


def run(targets: Targets, entry: str, data: bytes, variant: int = 0) -> Outcome:
    from sofa_compiler.tools import sofa_compile, sofa_import, sofa_opt, sofa_run, sofa_run_ir

    t = targets.timeout
    match entry:
        case "mlir-struct":
            must_fail = data.startswith(b"// must-fail\n")
            path = targets.scratch.write("struct.mlir", data)
            main = sofa_opt.main if variant % 2 == 0 else sofa_run_ir.main
            outcome = call_main(main, [path], t)
            if must_fail and outcome.kind == OK:
                return wrong(outcome, "a func.func nested in a func.func was accepted")
            return outcome
        case "onnx-struct":
            must_fail, blob = data[:1] == b"F", data[1:]
            path = targets.scratch.write("struct.onnx", blob)
            targets.scratch.write(EXTERNAL_FILE, bytes(range(64)))
            if variant % 2 == 0:
                outcome = call_main(sofa_import.main, [path], t)
            else:
                outcome = call_main(sofa_compile.main, [path, "-o", targets.scratch.path("struct.sofa")], t)
            if must_fail and outcome.kind == OK:
                return wrong(outcome, "external data outside the model's directory was read")
            return outcome
        case "ieee":
            case = json.loads(data)
            model, inputs, must_match = ieee_files(case, targets.scratch.root)
            outcome = call_main(sofa_run.main, [str(model), "--inputs", str(inputs), "--keep", str(case["keep"])], t)
            if must_match and outcome.rc == 3:
                return wrong(outcome, "non-finite outputs differ from onnxruntime's where every query sees them")
            return outcome
        case "files":
            return run_files_case(targets, json.loads(data))
        case "signals":
            directory = targets.scratch.root / f"signals-{variant}"
            directory.mkdir(exist_ok=True)
            try:
                return run_signal_case(json.loads(data), directory, max(t, 60.0))
            finally:
                _remove_tree(directory)
    raise ValueError(f"unknown entry '{entry}'")


def _remove_tree(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def _file_tool_argv(targets: Targets, tool: str, target: Path) -> tuple[object, list[str]]:
    from sofa_compiler.tools import sofa_as, sofa_compile, sofa_import, sofa_opt, sofa_sim

    model = str(REPO / "tests" / "fixtures" / "attn23_mha_4d.onnx")
    match tool:
        case "sofa-as":
            return sofa_as.main, [targets.scratch.write("files.s", targets.asm[0]), "-o", str(target)]
        case "sofa-compile":
            return sofa_compile.main, [model, "-o", str(target)]
        case "sofa-import":
            return sofa_import.main, [model, "-o", str(target)]
        case "sofa-opt":
            return sofa_opt.main, [targets.scratch.write("files.mlir", targets.mlir[0]), "-o", str(target)]
    return sofa_sim.main, [targets.sim_case[0], "--random-inputs", "0", "--output", str(target)]


def run_files_case(targets: Targets, case: dict) -> Outcome:
    directory = targets.scratch.root / "files"
    _remove_tree(directory)
    directory.mkdir()
    kind = case["kind"]
    try:
        target, pointed = make_target(kind, directory)
        main, argv = _file_tool_argv(targets, case["tool"], target)
        reader = FifoReader(target, kind == "fifo-leaves") if kind.startswith("fifo") else None
        outcome = call_main(main, argv, targets.timeout)
        received = reader.finish() if reader else b""
        if outcome.kind not in (OK, ERROR):
            return outcome
        if kind in MUST_FAIL and outcome.kind == OK:
            return wrong(outcome, f"-o {kind} succeeded")
        if left := leftovers(directory):
            return wrong(outcome, f"temporaries left behind: {left}")
        if kind == "full-device" and not stat.S_ISCHR(os.lstat(target).st_mode):
            return wrong(outcome, "the device node was replaced")
        if kind.startswith("fifo") and not stat.S_ISFIFO(os.lstat(target).st_mode):
            return wrong(outcome, "the FIFO was replaced")
        if kind == "fifo-reads" and outcome.kind == OK and not received:
            return wrong(outcome, "status 0, and nothing reached the FIFO's reader")
        if kind in ("symlink", "dangling-symlink"):
            if not os.path.islink(target):
                return wrong(outcome, "the symlink was replaced instead of followed")
            if outcome.kind == OK and (pointed is None or not pointed.is_file() or pointed.read_bytes() == b"old"):
                return wrong(outcome, "status 0, and the symlink's file was not written")
        if kind == "regular" and outcome.kind == OK and not target.stat().st_size:
            return wrong(outcome, "status 0, and an empty output")
        return outcome
    finally:
        _remove_tree(directory)
