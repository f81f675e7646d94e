"""Host-partition overhead: the model's host part on onnxruntime partitions vs onnxruntime on the whole model.

Compiles a model (default: tests/fixtures/torch_bert.onnx, whose host part is
most of its nodes), runs it --repeat times through `CompiledModel.run` and,
in the same process, runs the whole ONNX model on one onnxruntime session.
Prints, per run (median):

* the time spent in the host partitions' onnxruntime sessions
  (`CompiledModel.sessions.seconds`);
* onnxruntime's time for the whole model, and the ratio partitions / whole;
* the tool's time outside the simulator: `run` minus the kernels' simulation
  (host partitions, host glue ops, staging, interpreter dispatch).

    python benchmarks/host_overhead.py [--model tests/fixtures/torch_bert.onnx] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from unittest import mock

import numpy as np
import onnxruntime

from sofa_compiler.driver import compile_model
from sofa_compiler.runtime import KernelRunner
from sofa_compiler.sim.inputs import random_model_inputs

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "tests/fixtures/torch_bert.onnx"))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    start = time.perf_counter()
    model = compile_model(args.model)
    compile_seconds = time.perf_counter() - start
    inputs = random_model_inputs(model, 0)
    whole = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    names = [output.name for output in whole.get_outputs()]

    simulated = 0.0
    original_call = KernelRunner.call

    def timed_call(runner: KernelRunner, *call_args: np.ndarray) -> np.ndarray:
        nonlocal simulated
        begin = time.perf_counter()
        try:
            return original_call(runner, *call_args)
        finally:
            simulated += time.perf_counter() - begin

    partition_times, whole_times, outside_times, run_times = [], [], [], []
    with mock.patch.object(KernelRunner, "call", timed_call):
        for _ in range(args.repeat + 1):  # the first run warms both up and is not counted
            host_before, simulated = model.sessions.seconds, 0.0
            begin = time.perf_counter()
            outputs, _ = model.run(inputs)
            run_seconds = time.perf_counter() - begin
            partition_times.append(model.sessions.seconds - host_before)
            run_times.append(run_seconds)
            outside_times.append(run_seconds - simulated)
            begin = time.perf_counter()
            expected = whole.run(names, inputs)
            whole_times.append(time.perf_counter() - begin)
    error = max(float(np.max(np.abs(outputs[name] - value))) for name, value in zip(names, expected, strict=True))

    def median_us(values: list[float]) -> float:
        return statistics.median(values[1:]) * 1e6

    partitions, whole_model = median_us(partition_times), median_us(whole_times)
    print(f"model: {args.model} ({len(model.sessions)} host partitions, {len(model.programs)} kernels)")
    print(f"compile (sessions included): {compile_seconds * 1e3:.1f} ms; max |error| vs onnxruntime {error:.2e}")
    print(f"median of {args.repeat} runs:")
    print(f"  host partitions (onnxruntime sessions): {partitions:10.1f} us")
    print(f"  onnxruntime, whole model:               {whole_model:10.1f} us")
    print(f"  ratio partitions / whole model:         {partitions / whole_model:10.2f}")
    print(f"  CompiledModel.run in total:             {median_us(run_times):10.1f} us")
    print(f"  of which outside the simulator:         {median_us(outside_times):10.1f} us")


if __name__ == "__main__":
    main()
