"""Baselines SOFA is compared with, priced by the simulator's own timing and energy rules.

`fair_separate` (a separate-stage accelerator done fairly) and `paper_vanilla`
(the paper's vanilla dynamic-sparsity accelerator with low-precision
prediction) are phase programs on SOFA's engines; docs/cost-model.md
describes both.
"""

from sofa_compiler.baselines.phases import PhaseProgram, Priced, price
from sofa_compiler.baselines.pipelines import VANILLA_SRAM_BYTES, Layer, fair_separate, paper_vanilla
from sofa_compiler.baselines.rows import Rows, row_topk_work

__all__ = [
    "VANILLA_SRAM_BYTES",
    "Layer",
    "PhaseProgram",
    "Priced",
    "Rows",
    "fair_separate",
    "paper_vanilla",
    "price",
    "row_topk_work",
]
