// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{keep=0.25}' | filecheck %s
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{keep=0.25 tile=64}' | filecheck %s --check-prefix=TILE64
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{keep=0.25}' --print-op-generic | %mlir-check | filecheck %s --check-prefix=MLIR
// Same numbers before and after tiling (the op below already carries the sparsity the pass would set):
// RUN: sofa-run-ir %s --symbol sparse --random-inputs 1 --print > %t.before
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling' -o %t.tiled.mlir
// RUN: sofa-run-ir %t.tiled.mlir --symbol sparse --random-inputs 1 --print > %t.after
// RUN: diff %t.before %t.after
// Folding the padding mask changes no number at keep = 1 beyond the 16-bit datapath's rounding
// (rtol 2e-3 = 4 fp16 unit roundoffs, tests/fp16_tolerance.py; 8.5e-4 measured; 1e-6 with fp32):
// RUN: sofa-run-ir %s --symbol padding --random-inputs 3 --output %t.mask-before.npz
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling' -o %t.mask.mlir
// RUN: sofa-run-ir %t.mask.mlir --symbol padding --random-inputs 3 --output %t.mask-after.npz
// RUN: %python %S/../../tools/compare_npz.py %t.mask-after.npz result0 %t.mask-before.npz result0 --rtol 2e-3
// Errors: a target whose SRAM cannot hold the smallest tile, a keep ratio outside (0, 1].
// RUN: sed 's/#sofa.target<>/#sofa.target<token_sram = 4096, weight_sram = 4096, temp_sram = 4096>/' %s | not sofa-opt -p 'sofa-coordinated-tiling' 2>&1 | filecheck %s --check-prefix=NOFIT
// RUN: not sofa-opt %s -p 'sofa-coordinated-tiling{keep=1.5}' 2>&1 | filecheck %s --check-prefix=KEEP

// MLIR: MLIR-OK

builtin.module attributes {sofa.target = #sofa.target<>} {
  // GQA (4 query heads on 2 KV heads), causal, 200 keys: not a multiple of any tile.
  func.func @dense(%q: tensor<1x4x200x64xf32>, %k: tensor<1x2x200x64xf32>, %v: tensor<1x2x200x32xf32>) -> tensor<1x4x200x32xf32> {
    %o = sofa.attention %q, %k, %v scale 0.125 heads 4 / 2 causal : tensor<1x4x200x64xf32>, tensor<1x2x200x64xf32>, tensor<1x2x200x32xf32> -> tensor<1x4x200x32xf32>
    func.return %o : tensor<1x4x200x32xf32>
  }
  func.func @sparse(%q: tensor<1x2x130x16xf32>, %k: tensor<1x2x130x16xf32>, %v: tensor<1x2x130x8xf32>) -> tensor<1x2x130x8xf32> {
    %o = sofa.attention %q, %k, %v scale 0.25 heads 2 / 2 sparsity <keep = 0.5, tile = 32, radius = inf, predictor = "dlzs"> : tensor<1x2x130x16xf32>, tensor<1x2x130x16xf32>, tensor<1x2x130x8xf32> -> tensor<1x2x130x8xf32>
    func.return %o : tensor<1x2x130x8xf32>
  }
  // A BERT-style key-padding mask is folded into one more head-dim column and runs on the accelerator.
  func.func @padding(%q: tensor<2x1x8x4xf32>, %m: tensor<2x1x1x8xf32>) -> tensor<2x1x8x4xf32> {
    %o = sofa.attention %q, %q, %q mask %m scale 0.5 heads 1 / 1 : tensor<2x1x8x4xf32>, tensor<2x1x8x4xf32>, tensor<2x1x8x4xf32>, tensor<2x1x1x8xf32> -> tensor<2x1x8x4xf32>
    func.return %o : tensor<2x1x8x4xf32>
  }
  func.func @masked(%q: tensor<1x1x8x4xf32>, %m: tensor<8x8xi1>) -> tensor<1x1x8x4xf32> {
    %o = sofa.attention %q, %q, %q mask %m scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<8x8xi1> -> tensor<1x1x8x4xf32>
    func.return %o : tensor<1x1x8x4xf32>
  }
  func.func @masked_bias(%q: tensor<1x1x8x4xf32>, %m: tensor<8x8xf32>) -> tensor<1x1x8x4xf32> {
    %o = sofa.attention %q, %q, %q mask %m scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<8x8xf32> -> tensor<1x1x8x4xf32>
    func.return %o : tensor<1x1x8x4xf32>
  }
}

// The cost model picks Bc = 32 here (costs: Bc 16: 8176, 32: 7744, 64: 8680, 128: 9816 cycles); one tiling is shared by all three stages.
// CHECK-LABEL: func.func @dense
// CHECK:      %[[S:.*]] = sofa.dlzs_score %q, %k tiling <lanes = 128, tile = 32, kv_tiles = 7, keep_count = 8, query_tiles = 2, padded_q = 256, padded_kv = 224> : {{.*}} -> tensor<1x4x200x200xf16>
// CHECK-NEXT: %[[I:.*]] = sofa.sads %[[S]] scale 1.250000e-01 causal sparsity <keep = 0.25, tile = 32, radius = inf, predictor = "dlzs"> tiling <lanes = 128, tile = 32, kv_tiles = 7, keep_count = 8, query_tiles = 2, padded_q = 256, padded_kv = 224> : tensor<1x4x200x200xf16> -> tensor<1x4x200x7x8xi32>
// CHECK-NEXT: %{{.*}} = sofa.sufa %q, %k, %v, %[[I]] scale 1.250000e-01 tile 32 causal tiling <lanes = 128, tile = 32, kv_tiles = 7, keep_count = 8, query_tiles = 2, padded_q = 256, padded_kv = 224>
// An attention that already has a sparsity keeps its keep ratio, radius and tile.
// CHECK-LABEL: func.func @sparse
// CHECK: sofa.sads %{{.*}} sparsity <keep = 0.5, tile = 32, radius = inf
// CHECK-LABEL: func.func @padding
// CHECK:      host.onnx "Reshape"(%m) : (tensor<2x1x1x8xf32>) -> tensor<2x1x8x1xf32>
// CHECK:      %[[KAUG:.*]] = host.onnx "Concat"(%q, %{{.*}}) {axis = 3 : i64} : (tensor<2x1x8x4xf32>, tensor<2x1x8x1xf32>) -> tensor<2x1x8x5xf32>
// CHECK:      %[[QAUG:.*]] = host.onnx "Concat"(%q, %{{.*}}) {axis = 3 : i64} : (tensor<2x1x8x4xf32>, tensor<2x1x8x1xf32>) -> tensor<2x1x8x5xf32>
// CHECK:      sofa.dlzs_score %[[QAUG]], %[[KAUG]]
// CHECK-NOT:  sofa.attention
// A boolean mask computed at run time: the host builds its lists and bitmaps at launch (worst case shown).
// CHECK-LABEL: func.func @masked
// CHECK: sofa.sads %{{.*}} mask %m {{.*}}#sofa.tile_mask<format = "launch", mapping = "block", lanes = 8, tile = 16, visited = 1, partial = 1, band = [], density = []>
// An additive mask computed at run time may be a bias: SADS is biased (it ranks the scaled prediction plus the
// bias) and the host builds its lists and fp32 bias tiles at launch.
// CHECK-LABEL: func.func @masked_bias
// CHECK: sofa.sads %{{.*}} mask %m scale 5.000000e-01 biased sparsity {{.*}}#sofa.tile_mask<format = "launch"
// CHECK: sofa.sufa {{.*}} mask %m scale 5.000000e-01 tile
// CHECK-NOT: sofa.host_reason

// TILE64: sofa.dlzs_score %q, %k tiling <lanes = 128, tile = 64, kv_tiles = 4, keep_count = 16, query_tiles = 2, padded_q = 256, padded_kv = 256>

// NOFIT: cannot tile sofa.attention for this target: no KV tile fits the target's SRAM (smallest tried: Bc = 16)
// KEEP: keep ratio must satisfy 0 < keep <= 1, got 1.5
