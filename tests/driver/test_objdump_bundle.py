"""`sofa-objdump` on a compiled-model bundle, and the `.sofa` format sniffing shared with `sofa-sim`."""

import json
from pathlib import Path

import pytest

from sofa_compiler.bundle import bundle_bytes
from sofa_compiler.driver import compile_model
from sofa_compiler.isa.formats import FormatError, SofaFormat, sofa_format
from sofa_compiler.tools import sofa_objdump

EXAMPLE = Path(__file__).parents[2] / "examples" / "llama_attention.onnx"


@pytest.fixture(scope="module")
def model():
    return compile_model(EXAMPLE)


def objdump_json(path: Path, capsys: pytest.CaptureFixture[str]) -> object:
    assert sofa_objdump.main([str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_bundle_json_is_each_kernels_program_json_with_its_name(model, tmp_path, capsys):
    bundle = tmp_path / "model.sofa"
    bundle.write_bytes(bundle_bytes(model))
    kernels = objdump_json(bundle, capsys)
    assert [kernel["kernel"] for kernel in kernels] == list(model.programs) == ["attn0"]
    for entry, (name, program) in zip(kernels, model.programs.items(), strict=True):
        single = tmp_path / f"{name}.sofa"
        single.write_bytes(program.to_bytes())
        assert entry == {"kernel": name, **objdump_json(single, capsys)}
        assert entry["dram_bytes"] == program.dram_bytes
        assert len(entry["code"]) == len(program.code)
        assert entry["code"][-1]["op"] == "halt"


def test_sofa_format_tells_programs_from_bundles(model):
    program = next(iter(model.programs.values()))
    assert sofa_format(program.to_bytes(), "p.sofa") is SofaFormat.PROGRAM
    assert sofa_format(bundle_bytes(model), "m.sofa") is SofaFormat.BUNDLE


@pytest.mark.parametrize(
    ("head", "found"),
    [(b"", "the file is empty"), (b"SO", "found magic b'SO'"), (b"ELF\x7f..", "found magic b'ELF\\x7f'")],
)
def test_sofa_format_names_the_file_the_magic_and_both_formats(head, found):
    with pytest.raises(FormatError) as error:
        sofa_format(head, "x.bin")
    message = str(error.value)
    assert message.startswith(f"x.bin: not a .sofa file: {found};")
    assert "b'SOFA' (a program from sofa-as)" in message
    assert "b'SOFB' (a model bundle from sofa-compile -o)" in message
