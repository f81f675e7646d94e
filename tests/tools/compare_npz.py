"""Compare one array from each of two .npz files.

Usage: compare_npz.py A.npz KEY_A B.npz KEY_B (--exact | --rtol R)

Prints `bit-identical: N elements` or `max relative error: E`, and exits 1
when the arrays differ in shape, or (with --exact) in any bit, or exceed R.
An fp16 array (the simulator's output of the 16-bit datapath) is compared
with an fp32 one (an interpreter's result) after widening, which is exact.
"""

import sys

import numpy as np

path_a, key_a, path_b, key_b, mode, *rest = sys.argv[1:]
a = np.load(path_a)[key_a].reshape(-1)
b = np.load(path_b)[key_b].reshape(-1)
if a.shape != b.shape:
    sys.exit(f"shape mismatch: {a.shape} vs {b.shape}")
if {a.dtype, b.dtype} == {np.dtype(np.float16), np.dtype(np.float32)}:
    a, b = a.astype(np.float32), b.astype(np.float32)
if mode == "--exact":
    if a.dtype != b.dtype or a.tobytes() != b.tobytes():
        sys.exit(f"not bit-identical: {np.count_nonzero(a != b)} of {a.size} elements differ")
    print(f"bit-identical: {a.size} elements")
    sys.exit(0)
error = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
print(f"max relative error: {error:.3e}")
sys.exit(0 if error <= float(rest[0]) else 1)
