"""Output targets that are not plain files: FIFOs and devices are written in place, symlinks followed.

Never touches the system's devices: every FIFO and device node is made in a
temporary directory.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fuzzlib import FIXTURES, asm_seeds, call_main, small_attention

from sofa_compiler.files import atomic_write, atomic_write_bytes, atomic_write_text
from sofa_compiler.tools import sofa_as, sofa_compile, sofa_import, sofa_opt, sofa_sim


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@contextmanager
def fifo_reader(path: Path) -> Iterator[Callable[[], bytes]]:
    """Make a FIFO at `path` and drain it in a thread; the callable returns what arrived.

    The test holds a writer end open too, so the reader sees end-of-file only
    once the code under test has closed its own (or never opened the FIFO).
    """
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(reader, True)
    keeper = os.open(path, os.O_WRONLY)
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(reader, 65536):
            chunks.append(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    closed = False

    def received() -> bytes:
        nonlocal closed
        if not closed:
            os.close(keeper)
            closed = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the FIFO reader never saw end-of-file"
        return b"".join(chunks)

    try:
        yield received
    finally:
        if not closed:
            os.close(keeper)
        thread.join(timeout=30)
        os.close(reader)


def test_fifo_is_written_in_place(tmp_path: Path) -> None:
    target = tmp_path / "pipe"
    with fifo_reader(target) as received:
        atomic_write_bytes(target, b"x" * 200_000)  # more than a pipe buffer holds
        assert received() == b"x" * 200_000
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert listing(tmp_path) == ["pipe"]


def full_device(path: Path) -> Path:
    """A node with the numbers of /dev/full (1, 7), or skip where it cannot be made or opened."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("mknod is not permitted here (needs root / CAP_MKNOD)")
    try:
        os.close(os.open(path, os.O_WRONLY))
    except PermissionError:
        pytest.skip("device nodes cannot be opened on this file system (mounted nodev)")
    return path


def test_full_device_reports_no_space_naming_the_path(tmp_path: Path) -> None:
    device = full_device(tmp_path / "full")
    with pytest.raises(OSError, match="No space left on device") as raised:
        atomic_write_text(device, "some output\n")
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(device)
    assert stat.S_ISCHR(os.lstat(device).st_mode), "the device node was replaced"
    assert listing(tmp_path) == ["full"]


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    links, data = tmp_path / "links", tmp_path / "data"
    links.mkdir()
    data.mkdir()
    (data / "out.txt").write_text("old")
    link = links / "out.txt"
    link.symlink_to(Path("..") / "data" / "out.txt")
    atomic_write_text(link, "new")
    assert link.is_symlink()
    assert os.readlink(link) == str(Path("..") / "data" / "out.txt")
    assert (data / "out.txt").read_text() == "new"
    assert listing(links) == ["out.txt"]
    assert listing(data) == ["out.txt"]


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("made.txt")
    atomic_write_text(link, "made")
    assert link.is_symlink()
    assert (tmp_path / "made.txt").read_text() == "made"


def test_regular_file_error_names_the_path_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A disk-full error while writing keeps the old file, removes the temporary and names the user's file."""
    target = tmp_path / "out.sofa"
    target.write_bytes(b"previous")

    def disk_full(stream) -> None:  # type: ignore[no-untyped-def]
        stream.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left on device") as raised:
        atomic_write(target, disk_full)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(target)
    assert target.read_bytes() == b"previous"
    assert listing(tmp_path) == ["out.sofa"]


def tool_arguments(tool: str, inputs: Path, output: Path) -> tuple[Callable[..., object], list[str]]:
    """The tool's main and an argument list that writes to `output`, with its input files made in `inputs`."""
    if tool == "sofa-compile":
        return sofa_compile.main, [str(FIXTURES / "torch_sdpa.onnx"), "-o", str(output)]
    if tool == "sofa-import":
        return sofa_import.main, [str(FIXTURES / "torch_sdpa.onnx"), "-o", str(output)]
    if tool == "sofa-sim":
        program = inputs / "p.sofa"
        program.write_bytes(small_attention()[1].to_bytes())
        return sofa_sim.main, [str(program), "--random-inputs", "0", "--output", str(output)]
    if tool == "sofa-as":
        source = inputs / "p.s"
        source.write_text(asm_seeds()[0])
        return sofa_as.main, [str(source), "-o", str(output)]
    source = inputs / "m.mlir"
    source.write_text("builtin.module {\n}\n")
    return sofa_opt.main, [str(source), "-o", str(output)]


TOOLS = ["sofa-compile", "sofa-import", "sofa-sim", "sofa-as", "sofa-opt"]


def run_tool(tool: str, inputs: Path, output: Path) -> None:
    main, argv = tool_arguments(tool, inputs, output)
    outcome = call_main(main, argv, timeout=120)
    assert outcome.rc == 0, outcome.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_writes_a_fifo_in_place_and_follows_a_symlink(tmp_path: Path, tool: str) -> None:
    inputs, outputs = tmp_path / "inputs", tmp_path / "outputs"
    inputs.mkdir()
    outputs.mkdir()
    run_tool(tool, inputs, outputs / "plain")
    expected = (outputs / "plain").read_bytes()
    assert expected

    with fifo_reader(outputs / "pipe") as received:
        run_tool(tool, inputs, outputs / "pipe")
        assert received() == expected
    assert stat.S_ISFIFO(os.lstat(outputs / "pipe").st_mode), f"{tool} replaced the FIFO"

    (outputs / "target").write_bytes(b"old")
    (outputs / "link").symlink_to("target")
    run_tool(tool, inputs, outputs / "link")
    assert (outputs / "link").is_symlink(), f"{tool} replaced the symlink"
    assert (outputs / "target").read_bytes() == expected
    assert listing(outputs) == ["link", "pipe", "plain", "target"]


def test_sofa_opt_output_is_atomic(tmp_path: Path) -> None:
    """A later chunk that fails leaves the previous -o file whole (xDSL alone truncates it first)."""
    source = tmp_path / "m.mlir"
    source.write_text("builtin.module {\n}\n// -----\nbuiltin.module {\n")
    output = tmp_path / "out.mlir"
    output.write_text("previous\n")
    outcome = call_main(sofa_opt.main, [str(source), "--split-input-file", "-o", str(output)])
    assert outcome.rc == 1
    assert "Traceback" not in outcome.stderr
    assert output.read_text() == "previous\n"
    assert listing(tmp_path) == ["m.mlir", "out.mlir"]
