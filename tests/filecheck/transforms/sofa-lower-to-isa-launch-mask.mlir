// A boolean mask computed at run time (an argument of @main): the kernel takes it as its last operand;
// its index lists (masktab) and bitmaps (maskbits) are inputs of the worst case's size, which the host
// builds at launch from the actual mask, and maskgeom (const) says how: lanes, KV tile, buffer sets,
// depth, causal, the mask's batch and head extents. The walk is the bsr one (tload + loopr, sads.mask).
// Numbers: the tensor-level interpreter's, bit for bit.
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{keep=1.0 tile=32}' -o %t.tiled.mlir
// RUN: sofa-opt %t.tiled.mlir -p sofa-lower-to-isa -o %t.isa.mlir
// RUN: filecheck %s < %t.isa.mlir
// RUN: %python -c "import numpy as np; r = np.random.default_rng(3); x = lambda: r.standard_normal((1, 2, 100, 16)).astype(np.float32); np.savez('%t.npz', q=x(), k=x(), v=x(), m=r.random((1, 2, 100, 100)) < 0.3)"
// RUN: sofa-run-ir %t.tiled.mlir --inputs %t.npz --print > %t.before
// RUN: sofa-run-ir %t.isa.mlir --inputs %t.npz --print > %t.after
// RUN: cmp %t.before %t.after

func.func @main(%q: tensor<1x2x100x16xf32>, %k: tensor<1x2x100x16xf32>, %v: tensor<1x2x100x16xf32>, %m: tensor<1x2x100x100xi1>) -> tensor<1x2x100x16xf32> {
  %o = sofa.attention %q, %k, %v mask %m scale 0.25 heads 2 / 2 causal : tensor<1x2x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x2x100x100xi1> -> tensor<1x2x100x16xf32>
  func.return %o : tensor<1x2x100x16xf32>
}

// CHECK:       sofa.kernel_call "attn0"(%q, %k, %v, %m)
// CHECK:       sofa_isa.program @attn0
// CHECK-SAME:  #sofa_isa.symbol<"masktab", input, i32, [36, 1]
// CHECK-SAME:  #sofa_isa.symbol<"maskbits", input, u8, [3600, 1]
// CHECK-SAME:  #sofa_isa.symbol<"maskgeom", const, i32, [7, 1]
// CHECK:       sofa_isa.tload rd = r15, rs = r0, src = dram[r10 + [[TAB:[0-9]+]]]
// CHECK:         sofa_isa.sads_mask bitmap =
