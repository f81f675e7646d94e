// An additive mask computed at run time (a float argument of @main: it may hold a bias) with a softcap: the
// kernel sets the score-cap register once, walks launch-built index lists (tload + loopr) and, per visited
// tile, loads the pair's fp32 bias tile (maskbias, an input of the worst case's size: 2 heads x 4 KV tiles x
// 100 x 32 entries) on the prefetch queue before K-hat; SADS ranks the capped, scaled prediction plus the bias
// (sads.bias) and SU-FA adds the bias to the exact scores (sufa.bias). maskgeom has an eighth word: biased.
// Numbers: the tensor-level interpreter's, bit for bit.
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{keep=1.0 tile=32}' -o %t.tiled.mlir
// RUN: sofa-opt %t.tiled.mlir -p sofa-lower-to-isa -o %t.isa.mlir
// RUN: filecheck %s < %t.isa.mlir
// RUN: filecheck %s --check-prefix=TILED < %t.tiled.mlir
// RUN: %python -c "import numpy as np; r = np.random.default_rng(3); x = lambda: r.standard_normal((1, 2, 100, 16)).astype(np.float32); m = r.standard_normal((1, 2, 100, 100)).astype(np.float32); m[r.random(m.shape) < 0.3] = -np.inf; np.savez('%t.npz', q=x(), k=x(), v=x(), m=m)"
// RUN: sofa-run-ir %t.tiled.mlir --inputs %t.npz --print > %t.before
// RUN: sofa-run-ir %t.isa.mlir --inputs %t.npz --print > %t.after
// RUN: cmp %t.before %t.after

func.func @main(%q: tensor<1x2x100x16xf32>, %k: tensor<1x2x100x16xf32>, %v: tensor<1x2x100x16xf32>, %m: tensor<1x2x100x100xf32>) -> tensor<1x2x100x16xf32> {
  %o = sofa.attention %q, %k, %v mask %m scale 0.25 softcap 2.0 heads 2 / 2 causal : tensor<1x2x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x2x100x16xf32>, tensor<1x2x100x100xf32> -> tensor<1x2x100x16xf32>
  func.return %o : tensor<1x2x100x16xf32>
}

// TILED: sofa.sads %scores mask %m scale 2.500000e-01 softcap 2.000000e+00 biased causal
// TILED: sofa.sufa %q, %k, %v, %selected mask %m scale 2.500000e-01 softcap 2.000000e+00 tile 32 causal

// CHECK:       sofa.kernel_call "attn0"(%q, %k, %v, %m)
// CHECK:       sofa_isa.program @attn0
// CHECK-SAME:  #sofa_isa.symbol<"masktab", input, i32, [36, 1]
// CHECK-SAME:  #sofa_isa.symbol<"maskbias", input, f32, [25600, 1]
// CHECK-SAME:  #sofa_isa.symbol<"maskgeom", const, i32, [8, 1]
// CHECK:       sofa_isa.softcap cap = 2.0
// CHECK:       sofa_isa.tload rd = r15, rs = r0, src = dram[r10 + [[TAB:[0-9]+]]]
// CHECK:       sofa_isa.tload rd = r11, rs = r0, src = dram[r10 + {{[0-9]+}}]
// CHECK:         sofa_isa.dma_prefetch dst = {{.*}}, src = dram[r11 + {{[0-9]+}}], rows = 100, row_bytes = 128, src_stride = 128, wait = 96
// CHECK-NEXT:    sofa_isa.dma_prefetch
// CHECK:         sofa_isa.sads_bias bias = {{.*}}, lanes = 100, keys = 32, m = 32, radius = inf, key_base = r5, scale = 0.25, wait = 2, signal = 36
// CHECK:         sofa_isa.sufa_bias bias =
// CHECK-NOT:   sofa_isa.sads_mask
