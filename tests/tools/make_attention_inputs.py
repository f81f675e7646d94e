"""Write matching inputs for the ISA attention pipeline and the `sofa` dialect.

Usage: make_attention_inputs.py SEED SQ SKV D DV ISA.npz IR.npz

ISA.npz holds the `.sofa` program's symbols (q, q16, k, v, khat: one head,
2-D, fp16 as the 16-bit datapath stores them); IR.npz holds the same data as
fp32 `[1, 1, S, d]` tensors for `sofa-run-ir` (whose numerics round them to fp16).
"""

import sys

import numpy as np

seed, sq, skv, depth, vdepth = (int(a) for a in sys.argv[1:6])
isa_path, ir_path = sys.argv[6:8]
rng = np.random.default_rng(seed)
q = rng.standard_normal((sq, depth)).astype(np.float32)
k = rng.standard_normal((skv, depth)).astype(np.float32)
v = rng.standard_normal((skv, vdepth)).astype(np.float32)
q16, k16, v16 = q.astype(np.float16), k.astype(np.float16), v.astype(np.float16)
np.savez(isa_path, q=q16, q16=q16, k=k16, v=v16, khat=k16)
np.savez(ir_path, q=q[None, None], k=k[None, None], v=v[None, None])
