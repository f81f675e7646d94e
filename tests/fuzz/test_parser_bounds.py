"""Parsers: bounded nesting with a clear error, binary and deeply nested TOML, non-finite derived figures."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fuzzlib import CONFIGS, call_main, config_seeds, mutate_toml_structure

from sofa_compiler.isa.asm import assemble
from sofa_compiler.parser import MAX_NESTING
from sofa_compiler.sim.config import ConfigError, HardwareConfig, load_config, parse_config
from sofa_compiler.sim.report import Report, ReportError
from sofa_compiler.tools import sofa_opt, sofa_run_ir, sofa_sim
from sofa_compiler.tuning import TuningError, load_tuning


def nested(kind: str, depth: int) -> str:
    if kind == "region":
        return '"test.op"() ({\n' * depth + "}) : () -> ()\n" * depth
    if kind == "attribute":
        return '"test.op"() {a = ' + "[" * depth + "]" * depth + "} : () -> ()\n"
    return '%0 = "test.op"() : () -> (' + "tuple<" * depth + "i32" + ">" * depth + ")\n"


@pytest.mark.parametrize("kind", ["region", "attribute", "type"])
def test_200_deep_mlir_nesting_is_a_parse_error(tmp_path: Path, kind: str) -> None:
    """200 levels gave a RecursionError traceback in sofa-opt and sofa-run-ir."""
    path = tmp_path / "deep.mlir"
    path.write_text(nested(kind, 200))
    for main in (sofa_opt.main, sofa_run_ir.main):
        outcome = call_main(main, [str(path)], timeout=30)
        assert outcome.kind == "error", outcome.summary()
        assert f"nesting deeper than {MAX_NESTING} levels" in outcome.stderr
        assert "deep.mlir:" in outcome.stderr


def test_nesting_within_the_bound_still_parses(tmp_path: Path) -> None:
    path = tmp_path / "ok.mlir"
    path.write_text(nested("attribute", MAX_NESTING - 2) + '"test.op"() {s = "((((((((((", t = "->"} : () -> ()\n')
    outcome = call_main(sofa_opt.main, [str(path)], timeout=30)
    assert outcome.kind == "ok", outcome.summary()


def test_deep_toml_arrays_are_a_config_error(tmp_path: Path) -> None:
    """`a = [[[[...]]]]` a few thousand deep raised RecursionError from tomllib."""
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than"):
        load_config(path)
    path.write_text("[target]\nlanes = " + "[" * 40 + "1" + "]" * 40 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than 32 levels"):
        load_config(path)


def test_a_binary_toml_file_is_a_config_error(tmp_path: Path) -> None:
    """A binary file raised UnicodeDecodeError."""
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00\x01clock")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)
    program = tmp_path / "halt.sofa"
    program.write_bytes(assemble("halt\n").to_bytes())
    outcome = call_main(sofa_sim.main, [str(program), "--config", str(path)])
    assert outcome.kind == "error", outcome.summary()
    tuning = tmp_path / "tuning.json"
    tuning.write_bytes(b"\x80\x81")
    with pytest.raises(TuningError, match="not UTF-8 text"):
        load_tuning(tuning)
    tuning.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(TuningError, match="nested deeper than"):
        load_tuning(tuning)


@pytest.mark.parametrize("clock", ["5e-324", "1e-320"])
def test_a_clock_that_makes_a_derived_figure_infinite_is_rejected(clock: str) -> None:
    """`clock_mhz = 5e-324` passed validation and `--json` wrote Infinity, which is not JSON."""
    text = (CONFIGS / "sofa-28nm.toml").read_text()
    lines = [f"clock_mhz = {clock}" if line.startswith("clock_mhz") else line for line in text.splitlines()]
    with pytest.raises(ConfigError, match=r"clock_mhz = .*infinite"):
        parse_config("\n".join(lines), "tiny.toml")
    with pytest.raises(ConfigError, match="infinite"):
        HardwareConfig().with_values({"target.clock_mhz": float(clock)})


def test_report_json_never_holds_infinity_or_nan() -> None:
    from dataclasses import replace

    from sofa_compiler.sim.report import build_report
    from sofa_compiler.sim.timing import simulate

    report: Report = build_report(simulate([], HardwareConfig()))
    json.loads(report.to_json())
    with pytest.raises(ReportError, match=r"time_us = inf"):
        replace(report, time_us=float("inf")).to_json()


def test_an_empty_output_name_is_an_error(tmp_path: Path) -> None:
    """`sofa-sim --output ""` exited 0 and saved nothing."""
    program = tmp_path / "halt.sofa"
    program.write_bytes(assemble("halt\n").to_bytes())
    for option in ("--output", "--trace"):
        outcome = call_main(sofa_sim.main, [str(program), option, ""])
        assert outcome.rc != 0, outcome.summary()
        assert "expected a file name" in outcome.stderr


def test_toml_structure_mutations_are_clean(tmp_path: Path) -> None:
    """The campaign's TOML structure generator, briefly: every input loads or is one clean error."""
    program = tmp_path / "halt.sofa"
    program.write_bytes(assemble("halt\n").to_bytes())
    path = tmp_path / "config.toml"
    seeds = config_seeds()
    for seed in range(60):
        rng = random.Random(seed)
        path.write_bytes(mutate_toml_structure(rng, rng.choice(seeds)))
        outcome = call_main(sofa_sim.main, [str(program), "--config", str(path), "--json"])
        assert outcome.kind in ("ok", "error"), outcome.summary()
        if outcome.kind == "ok":
            json.loads(outcome.stdout)
