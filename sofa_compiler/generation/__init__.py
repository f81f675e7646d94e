"""Generation on the simulated accelerator: prefill, then decode steps over a KV cache resident in DRAM.

`contract` names the inputs and outputs a prefill graph and a decode-step graph must have;
`resident` keeps each kernel call site's DRAM image between calls and counts what the host
writes; `session` runs prefill and the decode steps and reports each token; `agreement` compares
one decoder's tokens and teacher-forced perplexity with a reference decoder's.
"""

from sofa_compiler.generation.contract import GenerationError, GraphPair
from sofa_compiler.generation.resident import ResidentRunner
from sofa_compiler.generation.session import GenerationSession, Sampling, StepReport, generate

__all__ = ["GenerationError", "GenerationSession", "GraphPair", "ResidentRunner", "Sampling", "StepReport", "generate"]
