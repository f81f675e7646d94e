"""Print an MLIR module of masked attentions (constant boolean masks) for the mask lit tests.

Usage: masked_attention.py SEQ DEPTH; each function is one mask pattern:
``window`` (a wide sliding window: closed form), ``thin`` (a thin window: row-wise),
``blocks`` (block pattern with a global column: BSR), ``scattered`` (random keys: bitmaps),
``empty_rows`` (a block pattern whose first queries see nothing: zeros).
"""

from __future__ import annotations

import sys

import numpy as np


def masks(seq: int) -> dict[str, np.ndarray]:
    rows, keys = np.arange(seq)[:, None], np.arange(seq)[None, :]
    rng = np.random.default_rng(0)
    block = seq // 4
    blocks = rng.random((seq // block, seq // block)) < 0.3
    blocks[:, 0] = True  # a global block column
    block_mask = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)
    empty_rows = block_mask.copy()
    empty_rows[: seq // 4] = False
    return {
        "window": (keys <= rows) & (keys > rows - seq // 2),
        "thin": (keys <= rows) & (keys > rows - 4),
        "blocks": block_mask,
        "scattered": rng.random((seq, seq)) < 0.3,
        "empty_rows": empty_rows,
    }


def function(name: str, mask: np.ndarray, depth: int) -> str:
    seq = mask.shape[0]
    qkv = f"tensor<1x2x{seq}x{depth}xf32>"
    literal = '"0x' + mask.astype(np.uint8).tobytes().hex().upper() + '"'  # one byte an i1, as MLIR's hex form
    return (
        f"func.func @{name}(%q: {qkv}, %k: {qkv}, %v: {qkv}) -> {qkv} {{\n"
        f"  %m = host.constant dense<{literal}> : tensor<{seq}x{seq}xi1>\n"
        f"  %o = sofa.attention %q, %k, %v mask %m scale 0.125 heads 2 / 2 : {qkv}, {qkv}, {qkv}, "
        f"tensor<{seq}x{seq}xi1> -> {qkv}\n"
        f"  func.return %o : {qkv}\n}}\n"
    )


def main() -> None:
    seq, depth = int(sys.argv[1]), int(sys.argv[2])
    print("\n".join(function(name, mask, depth) for name, mask in masks(seq).items()))


if __name__ == "__main__":
    main()
