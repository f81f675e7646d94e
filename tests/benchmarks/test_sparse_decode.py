"""benchmarks/sparse_decode.py runs and meets its DRAM goal (on a shorter context)."""

import sys

from benchmarks import sparse_decode


def test_sparse_decode_benchmark_meets_its_goal(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sparse_decode.py", "--context", "2048", "--keep", "1.0", "0.25"])
    assert sparse_decode.main() == 0
    lines = capsys.readouterr().out.splitlines()
    llama = {line.split(" | ")[1]: float(line.split(" | ")[3]) for line in lines if line.startswith("Llama-7B |")}
    assert llama["dense"] == 1.0
    assert llama["1.0"] > 1.0  # keep 1.0 also reads the codes
    assert llama["0.25"] <= sparse_decode.GOAL_RATIO
    assert "goal (Llama-7B, keep 0.25: <= 0.4x dense): met" in lines[-1]
