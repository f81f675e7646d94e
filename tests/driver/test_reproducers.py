"""Stage dumps are reproducers: plain `sofa-opt DUMP` gives the next stage's dump, byte for byte."""

import itertools
from pathlib import Path

import pytest
from xdsl.utils.exceptions import DiagnosticException

from dialects.host import ConstantOp
from sofa_compiler.context import sofa_context
from sofa_compiler.ir_printing import print_ir
from sofa_compiler.parser import SofaParser
from sofa_compiler.reproducer import PipelineRecord, ReproducerError, split_pipeline
from sofa_compiler.sim.config import load_config
from sofa_compiler.tools import sofa_compile, sofa_opt

ROOT = Path(__file__).parent.parent.parent
GPT2 = ROOT / "tests" / "fixtures" / "torch_gpt2.onnx"
SMALL = ROOT / "configs" / "sofa-small.toml"


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The stage dumps of a compile with every option off its default: keep, tile, target."""
    directory = tmp_path_factory.mktemp("dumps")
    argv = [str(GPT2), "--keep", "0.25", "--tile", "16", "--target", str(SMALL), "--emit", "isa"]
    assert sofa_compile.main([*argv, "-o", str(directory / "out.mlir"), "--dump-ir-dir", str(directory)]) == 0
    return sorted(directory.glob("0*.mlir"))


def test_the_dumps_are_every_stage(dumps: list[Path]) -> None:
    names = [path.name for path in dumps]
    assert names == [
        "00-import.mlir",
        "01-sofa-bind-target.mlir",
        "02-sofa-coordinated-tiling.mlir",
        "03-sofa-preprocess-weights.mlir",
        "04-sofa-lower-to-isa.mlir",
    ]


def test_every_stage_replays_to_the_next_byte_for_byte(dumps: list[Path], tmp_path: Path) -> None:
    for before, after in itertools.pairwise(dumps):
        replayed = tmp_path / after.name
        assert sofa_opt.main([str(before), "-o", str(replayed)]) in (0, None)
        assert replayed.read_bytes() == after.read_bytes(), f"{before.name} does not replay to {after.name}"


def test_the_last_stage_replays_to_itself(dumps: list[Path], tmp_path: Path) -> None:
    replayed = tmp_path / "last.mlir"
    assert sofa_opt.main([str(dumps[-1]), "-o", str(replayed)]) in (0, None)
    assert replayed.read_bytes() == dumps[-1].read_bytes()


def test_a_dump_records_the_options_and_the_target(dumps: list[Path]) -> None:
    text = dumps[0].read_text()
    parser = SofaParser(sofa_context(), text)
    parser.parse_module()
    record = PipelineRecord.read(parser.external_resources)
    assert record is not None
    assert record.applied == 0
    assert record.next_pass is not None
    assert record.next_pass.startswith('sofa-bind-target{target="lanes = 64, ')
    assert "sofa-coordinated-tiling{keep=0.25 tile=16}" in record.passes
    assert record.stages == ("sofa", "tiled", "tiled", "isa")


def test_lowering_through_sofa_opt_binds_the_programs_to_the_modules_target(dumps: list[Path]) -> None:
    """Not the all-zero hash: the one the simulator computes from the same config."""
    lowered = dumps[-1].read_text()
    assert f'config_hash = "{load_config(SMALL).config_hash()}"' in lowered
    assert f'config_hash = "{"0" * 64}"' not in lowered


def test_an_explicit_pipeline_overrides_the_record(dumps: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "same.mlir"
    assert sofa_opt.main([str(dumps[1]), "-p", "", "-o", str(out)]) in (0, None)
    text = out.read_text()
    assert "sofa_reproducer" not in text
    assert "sofa.sufa" not in text


def test_split_pipeline_keeps_quoted_and_nested_commas() -> None:
    text = 'builtin.module(sofa-bind-target{target="lanes = 64, temp_sram = 1"},cse,a{x=1 y=2})'
    assert split_pipeline(text) == ['sofa-bind-target{target="lanes = 64, temp_sram = 1"}', "cse", "a{x=1 y=2}"]
    assert split_pipeline("cse, dce") == ["cse", "dce"]


def test_a_malformed_record_is_an_error() -> None:
    with pytest.raises(ReproducerError, match="2 passes, 1 stages"):
        PipelineRecord.read({"sofa_reproducer": {"pipeline": "cse,dce", "stages": "sofa", "applied": "0"}})


def test_an_elided_constant_reparses_but_cannot_run() -> None:
    module_text = print_ir(
        SofaParser(sofa_context(), "%w = host.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>").parse_module(), 2
    )
    assert "dense_resource<__elided__> : tensor<3xf32>" in module_text
    module = SofaParser(sofa_context(), module_text).parse_module()
    module.verify()
    assert print_ir(module) == module_text
    constant = next(op for op in module.walk() if isinstance(op, ConstantOp))
    with pytest.raises(DiagnosticException, match="was elided"):
        constant.to_array()


def test_constants_within_the_limit_print_in_full() -> None:
    module = SofaParser(sofa_context(), "%w = host.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>").parse_module()
    assert "dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]>" in print_ir(module, 3)
    assert "__elided__" not in print_ir(module, 3)
