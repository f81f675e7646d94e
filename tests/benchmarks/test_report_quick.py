"""`python -m benchmarks --quick` end to end: every section, table and plot is there and every number is finite.

The quick mode takes about a minute on two cores (the issue's limit is 3);
the full run uses the same code with more heads, full sequence lengths and
more keep ratios. `--smoke` is smaller still (~15 s) for local iteration.
"""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sofa_compiler.mask_workloads import GENERATORS

ROOT = Path(__file__).resolve().parents[2]

SECTIONS = (
    "## 1. Workloads",
    "## 2. Ablation on the simulated hardware",
    "## 3. Accuracy against sparsity",
    "### Index error against the number of SADS segments",
    "### Index error at the n the compiler uses",
    "### Sphere radius",
    "### Calibration against the paper's own figures",
    "### Real model",
    "### Real LM: SmolLM2-135M perplexity (read from a file)",
    "## 4. Against the GPU",
    "## 5. Tool speed",
    "### Roofline of the simulated hardware",
    "## 6. Flexible masks (issue 17)",
)
TABLE_HEADERS = (
    "| layer | H×d | simulated | SOFA Bc/Tc/n | base Bc/Tc/n | SOFA ms |",
    "| configuration | predict ops |",
    "| inputs | predictor | keep | rel. error | cosine | index error | row recall | tile recall |",
    "| inputs (S) | predictor | n=1 | n=2 | n=4 |",
    "| workload | S | Bc | n | rows | inputs |",
    "| inputs | predictor | radius | sorted share |",
    "| figure | paper | measured in this run | how |",
    "| layer | simulated | H200 fp16 ms (file) |",
    "| figure | simulated | paper |",
    "| model | H×S×d | sim s |",
    "| tokens | seconds |",
    "| workload | executed op/B |",
    "| workload | bound by |",
    "| workload | density | tiles visited | plan | cycles | / dense | DRAM bytes | / dense | wall (s) |",
)
PLOTS = ("ablation.png", "accuracy.png", "gpu.png", "compile_time.png", "roofline.png", "workloads.png")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")


def table_cells(text: str) -> list[str]:
    cells = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells += [cell.strip() for cell in line.strip("|").split("|")]
    return cells


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote" in done.stdout
    return out


def test_every_section_and_table(report: Path) -> None:
    text = (report / "report.md").read_text()
    for section in SECTIONS:
        assert section in text, section
    for header in TABLE_HEADERS:
        assert header in text, header
    for plot in PLOTS:
        assert f"]({plot})" in text, plot


def test_the_report_says_what_it_read_from_files(report: Path) -> None:
    text = (report / "report.md").read_text()
    assert "Every number below was measured in this one run" not in text
    assert "**Where the numbers come from.**" in text
    assert "*Read from a file*, not measured here: the H200 GPU times" in text
    assert "700 W, the H200's board power" in text
    assert "does not do yet (issue 8)" not in text
    assert "spills Â once" not in text
    assert "| SADS index error, S=1024, n=4, top 25% | about 3% |" in text


def test_plots_are_pngs(report: Path) -> None:
    for plot in PLOTS:
        data = (report / plot).read_bytes()
        assert data.startswith(b"\x89PNG"), plot
        assert len(data) > 5000, plot


def test_numbers_are_finite(report: Path) -> None:
    cells = table_cells((report / "report.md").read_text())
    numbers = [cell for cell in cells if NUMBER.match(cell)]
    assert len(numbers) > 200
    for cell in numbers:
        assert math.isfinite(float(cell.rstrip("%"))), cell
    bad = [cell for cell in cells if cell.lower() in ("nan", "inf", "-inf", "n/a", "+nan%", "+inf%")]
    assert not bad


def test_mask_workloads_cost_tracks_density(report: Path) -> None:
    """Every masked workload at S = 4096 costs its density times the dense-mask layer's cycles, within 1.3x."""
    results = pickle.loads((report / "results.pickle").read_bytes())
    assert {row.workload.split("-")[0] for row in results.masks} == set(GENERATORS)
    for row in results.masks:
        assert row.seq == 4096
        assert row.cycles / row.dense_cycles <= 1.3 * row.density, row
        assert row.density <= row.visited / row.pairs  # a visited tile holds at least its share of pairs
        assert row.dram_bytes < row.dense_dram_bytes
    text = (report / "report.md").read_text()
    assert "causal/block" in text  # Mistral's 4096-key window at S = 4096 is causal attention


def test_real_model_parts(report: Path) -> None:
    """With the eval extra the quick run measures the real model; without it the report says what is missing."""
    from benchmarks.report.real_model import missing_dependencies

    text = (report / "report.md").read_text()
    if missing_dependencies():
        assert "**Not measured in this run:**" in text
        assert "real activations not measured" in text
    else:
        assert "| minilm | dlzs |" in text
        assert "| keep | keys kept | mean cosine |" in text
        assert "* Placement: 6/6 attention layers run as accelerator kernels and 0 softmax ops" in text
        assert "within the tolerance of cosine > 0.9999" in text
