"""Whole-model traces from `sofa-sim BUNDLE --trace` and `sofa-run --trace`, loaded back and checked track by track."""

import itertools
import json
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from sofa_compiler.bundle import bundle_bytes
from sofa_compiler.driver import compile_model
from sofa_compiler.kernels import ATTENTION_OPSET
from sofa_compiler.sim.events import Unit
from sofa_compiler.sim.trace import HOST_TRACK, KERNEL_TRACK, MODEL_PID
from sofa_compiler.sim.trace_rules import violations
from sofa_compiler.tools import sofa_run, sofa_sim

FIXTURES = Path(__file__).parent.parent / "fixtures"


def two_attention_layers(path: Path) -> None:
    """Attention, then attention again on its output: two kernel calls, one after the other."""
    shape = [1, 2, 128, 32]
    values = {name: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("q", "k", "v", "o")}
    first = helper.make_node("Attention", ["q", "k", "v"], ["h"])
    second = helper.make_node("Attention", ["h", "k", "v"], ["o"])
    graph = helper.make_graph([first, second], "two", [values["q"], values["k"], values["v"]], [values["o"]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ATTENTION_OPSET)])
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    onnx.save(model, path)


def names(records: list[dict[str, Any]], kind: str) -> dict[tuple[int, int], str]:
    return {(r["pid"], r["tid"]): r["args"]["name"] for r in records if r["ph"] == "M" and r["name"] == kind}


def slices(records: list[dict[str, Any]], pid: int, tid: int | None = None) -> list[dict[str, Any]]:
    return [r for r in records if r["ph"] == "X" and r["pid"] == pid and (tid is None or r["tid"] == tid)]


def check_model_trace(trace: dict[str, Any], kernels: list[str], host_partitions: int) -> None:
    """The layout `sofa_compiler.sim.trace.model_trace` promises, and Perfetto's rules."""
    assert violations(trace) == []
    records = trace["traceEvents"]
    processes, threads = names(records, "process_name"), names(records, "thread_name")
    assert processes[MODEL_PID, 0] == "model"
    assert threads[MODEL_PID, 1] == HOST_TRACK
    assert threads[MODEL_PID, 2] == KERNEL_TRACK
    assert len(slices(records, MODEL_PID, 1)) == host_partitions
    calls = slices(records, MODEL_PID, 2)
    assert [call["name"] for call in calls] == kernels
    for number, call in enumerate(calls, start=1):
        pid = call["args"]["pid"]
        assert processes[pid, 0] == f"kernel call {number}: {call['name']}"
        units = {name.split(" #")[0] for (owner, _), name in threads.items() if owner == pid}
        assert units == {unit.value for unit in Unit}
        work = slices(records, pid)
        assert work, "a kernel call without instructions"
        # The kernel's instructions lie within its call on the model's timeline (ns resolution).
        assert min(r["ts"] for r in work) >= call["ts"] - 1e-6
        assert max(r["ts"] + r["dur"] for r in work) <= call["ts"] + call["dur"] + 1e-6
    assert [entry["kernel"] for entry in trace["otherData"]["kernel_calls"]] == kernels


def test_sofa_sim_traces_a_bundle_with_host_partitions(tmp_path: Path, capsys):
    model = compile_model(FIXTURES / "torch_gpt2.onnx", keep=0.5)
    bundle, trace_path = tmp_path / "gpt2.sofa", tmp_path / "trace.json"
    bundle.write_bytes(bundle_bytes(model))
    assert sofa_sim.main([str(bundle), "--trace", str(trace_path)]) == 0
    assert "attention kernels run: 1" in capsys.readouterr().out
    trace = json.loads(trace_path.read_text())
    partitions = sum(1 for op in model.host.walk() if op.name == "host.partition")
    assert partitions > 0
    check_model_trace(trace, ["attn0"], partitions)
    # Host partitions and the kernel call alternate on one timeline: nothing runs twice at once.
    spans = sorted((r["ts"], r["ts"] + r["dur"]) for r in slices(trace["traceEvents"], MODEL_PID))
    assert all(end <= start + 1e-6 for (_, end), (start, _) in itertools.pairwise(spans))


def test_sofa_run_traces_one_process_per_kernel_call(tmp_path: Path):
    path, trace_path = tmp_path / "two.onnx", tmp_path / "trace.json"
    two_attention_layers(path)
    assert sofa_run.main([str(path), "--no-reference", "--trace", str(trace_path)]) == 0
    trace = json.loads(trace_path.read_text())
    check_model_trace(trace, ["attn0", "attn1"], host_partitions=0)
