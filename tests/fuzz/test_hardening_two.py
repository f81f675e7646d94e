"""Regression tests for issue 20's findings 5-7 that this branch fixes (nested functions, broken pipes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from xdsl.utils.exceptions import VerifyException

from sofa_compiler.context import sofa_context
from sofa_compiler.parser import SofaParser

NESTED = """
func.func @outer() {
  func.func @inner() {
    func.return
  }
  func.return
}
"""


def test_func_nested_in_func_is_rejected_as_upstream_mlir_does():
    with pytest.raises(VerifyException, match="symbol's parent must have the SymbolTable trait"):
        SofaParser(sofa_context(), NESTED).parse_module()


def run_tool(tool: str, path) -> subprocess.CompletedProcess:
    """`python -m sofa_compiler.tools.<tool> path` in a real process, this worktree first on the path."""
    return subprocess.run(
        [sys.executable, "-m", f"sofa_compiler.tools.{tool}", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


def default_sigint() -> None:
    """SIGINT at its default in the child, as in a terminal, even when these tests run with it ignored
    (a shell's background job or nohup): Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("tool", ["sofa_opt", "sofa_run_ir"])
def test_tools_reject_a_nested_func_with_one_line(tmp_path, tool):
    path = tmp_path / "nested.mlir"
    path.write_text(NESTED)
    done = run_tool(tool, path)
    assert done.returncode == 1
    assert "SymbolTable trait" in done.stderr
    assert "Traceback" not in done.stderr


USE_BEFORE_DEFINITION = """\
func.func @main() -> tensor<2x2xf32> {
  %a = host.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %t = host.onnx "Transpose"(%b) {perm = array<i64: 1, 0>} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %b = host.onnx "MatMul"(%a, %a) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %t : tensor<2x2xf32>
}
"""


@pytest.mark.parametrize("tool", ["sofa_opt", "sofa_run_ir"])
def test_a_use_before_its_definition_is_rejected_as_upstream_mlir_does(tmp_path, tool):
    """The campaign (mlir-struct, seed 2027, input 175) swapped two lines: sofa-opt printed the module and
    exited 0, sofa-run-ir died with the interpreter's KeyError traceback."""
    path = tmp_path / "forward.mlir"
    path.write_text(USE_BEFORE_DEFINITION)
    done = run_tool(tool, path)
    assert done.returncode == 1
    assert "'host.onnx' op operand #0 does not dominate this use" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_use_after_its_definition_still_parses():
    """The same function with the forward reference removed verifies."""
    text = USE_BEFORE_DEFINITION.replace(
        '  %t = host.onnx "Transpose"(%b) {perm = array<i64: 1, 0>} : (tensor<2x2xf32>) -> tensor<2x2xf32>\n', ""
    ).replace("func.return %t", "func.return %b")
    SofaParser(sofa_context(), text).parse_module().verify()


def test_a_func_in_a_module_still_parses():
    SofaParser(sofa_context(), "func.func @f() {\n  func.return\n}\n").parse_module().verify()


def test_a_fifo_whose_reader_leaves_is_an_error_naming_it(tmp_path, capsys):
    """EPIPE on an output file is not `| head` on stdout: one error line naming the FIFO, status 1."""
    import threading

    from sofa_compiler.cli import exit_statuses
    from sofa_compiler.files import atomic_write

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def read_one_byte_and_leave() -> None:
        with open(fifo, "rb") as reader:
            reader.read(1)

    reader = threading.Thread(target=read_one_byte_and_leave)
    reader.start()

    @exit_statuses("tool")
    def main() -> int:
        atomic_write(fifo, lambda stream: stream.write(b"x" * (1 << 22)))
        return 0

    assert main() == 1
    reader.join(timeout=10)
    err = capsys.readouterr().err
    assert err.startswith("tool: error: ")
    assert str(fifo) in err


SIGTERM_DURING_WRITE = """
import os, signal, sys
from sofa_compiler.cli import exit_statuses
from sofa_compiler.files import atomic_write

@exit_statuses("tool")
def main():
    def write(stream):
        stream.write(b"partial")
        os.kill(os.getpid(), signal.{signal})
        stream.write(b"rest")
    atomic_write(sys.argv[1], write)
    return 0

sys.exit(main())
"""


@pytest.mark.parametrize(("name", "status", "said"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_a_signal_during_a_write_removes_the_temporary(tmp_path, name, status, said):
    target = tmp_path / "out.bin"
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_DURING_WRITE.replace("{signal}", name), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=default_sigint,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == status
    assert done.stderr == f"tool: {said}\n"
    assert list(tmp_path.iterdir()) == []


def _model_with_external_initializer(path, location: str) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    tensor = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("tool", ["sofa_compile", "sofa_import"])
@pytest.mark.parametrize(
    ("location", "said"),
    [
        ("/etc/hostname", "external data is refused"),
        ("../escape.bin", "external data is refused"),
        ("missing.bin", "missing.bin"),
    ],
    ids=["absolute", "escaping", "missing"],
)
def test_external_data_onnx_refuses_is_one_clean_error(tmp_path, capsys, tool, location, said):
    import importlib

    model = tmp_path / "m.onnx"
    _model_with_external_initializer(model, location)
    main = importlib.import_module(f"sofa_compiler.tools.{tool}").main
    assert main([str(model), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert said in err
    assert "internal error" not in err
    assert not (tmp_path / "out").exists()


CTRL_C_WHILE_LOADING = """
import os, signal, sys
sys.argv = ["sofa-compile", "--help"]
import sofa_compiler.tools  # what a console script imports first
os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the tool's imports load
from sofa_compiler.tools.sofa_compile import main
sys.exit(main())
"""


def test_ctrl_c_while_a_tool_loads_exits_130_without_a_traceback():
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_LOADING],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=default_sigint,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert (done.returncode, done.stderr) == (130, "sofa-compile: interrupted\n")


def test_ctrl_c_in_main_is_still_keyboard_interrupt_with_cleanup(tmp_path):
    """Once `main` runs, Ctrl-C is Python's KeyboardInterrupt again (atomic_write removes its temporary)."""
    target = tmp_path / "out.bin"
    loading = "import sys\nsys.argv[0] = 'sofa-x'\nimport sofa_compiler.tools\n"
    script = loading + SIGTERM_DURING_WRITE.replace("{signal}", "SIGINT")
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=default_sigint,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert (done.returncode, done.stderr) == (130, "tool: interrupted\n")
    assert list(tmp_path.iterdir()) == []
