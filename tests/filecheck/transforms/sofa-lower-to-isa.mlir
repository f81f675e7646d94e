// RUN: sofa-opt %s -p sofa-lower-to-isa | filecheck %s
// RUN: sofa-opt %s -p sofa-lower-to-isa --print-op-generic | %mlir-check | filecheck %s --check-prefix=MLIR
// The same numbers before (tensor-level interpreter) and after lowering
// (the kernel runs on the simulated machine), bit for bit:
// RUN: sofa-run-ir %s --random-inputs 5 --print > %t.before
// RUN: sofa-opt %s -p sofa-lower-to-isa -o %t.isa.mlir
// RUN: sofa-run-ir %t.isa.mlir --random-inputs 5 --print > %t.after
// RUN: diff %t.before %t.after
// Program size does not grow with sequence length: 4x longer, same instruction count.
// RUN: sofa-opt %s -p sofa-lower-to-isa | grep -c "sofa_isa\." > %t.short
// RUN: sed -e 's/x130x/x520x/g' -e 's/kv_tiles = 5/kv_tiles = 17/g' -e 's/padded_kv = 160/padded_kv = 544/g' -e 's/x5x8xi32/x17x8xi32/g' %s | sofa-opt -p sofa-lower-to-isa | grep -c "sofa_isa\." > %t.long
// RUN: diff %t.short %t.long

// MLIR: MLIR-OK

// Two query heads share one KV head (GQA), 100 queries, 130 keys, causal, keep 8 of every 32 keys.
func.func @main(%q: tensor<1x2x100x16xf32>, %k: tensor<1x1x130x16xf32>, %v: tensor<1x1x130x8xf32>) -> tensor<1x2x100x8xf32> {
  %s = sofa.dlzs_score %q, %k tiling <lanes = 100, tile = 32, kv_tiles = 5, keep_count = 8, query_tiles = 1, padded_q = 100, padded_kv = 160> : tensor<1x2x100x16xf32>, tensor<1x1x130x16xf32> -> tensor<1x2x100x130xf16>
  %i = sofa.sads %s scale 0.25 causal sparsity <keep = 0.25, tile = 32, radius = 12.0, predictor = "dlzs"> tiling <lanes = 100, tile = 32, kv_tiles = 5, keep_count = 8, query_tiles = 1, padded_q = 100, padded_kv = 160> : tensor<1x2x100x130xf16> -> tensor<1x2x100x5x8xi32>
  %o = sofa.sufa %q, %k, %v, %i scale 0.25 tile 32 causal tiling <lanes = 100, tile = 32, kv_tiles = 5, keep_count = 8, query_tiles = 1, padded_q = 100, padded_kv = 160> : tensor<1x2x100x16xf32>, tensor<1x1x130x16xf32>, tensor<1x1x130x8xf32>, tensor<1x2x100x5x8xi32> -> tensor<1x2x100x8xf32>
  func.return %o : tensor<1x2x100x8xf32>
}

// CHECK:      func.func @main
// The call records the tiling its kernel runs and SADS's sub-segments per row (n = Tc), for reports.
// CHECK-NEXT:   %o = sofa.kernel_call "attn0"(%q, %k, %v) tiling <lanes = 100, tile = 32, kv_tiles = 5, keep_count = 8, query_tiles = 1, padded_q = 100, padded_kv = 160> segments 5 : (tensor<1x2x100x16xf32>, tensor<1x1x130x16xf32>, tensor<1x1x130x8xf32>) -> tensor<1x2x100x8xf32>
// CHECK-NEXT:   func.return %o
// CHECK:      sofa_isa.program {{.*}}symbols = [#sofa_isa.symbol<"q", input, f16, [200, 16], {{.*}}#sofa_isa.symbol<"k", input, f16, [160, 16]{{.*}}#sofa_isa.symbol<"o", output, f16, [200, 8]
// Two credits for each double-buffered tile set, then the KV-head loop (2 query heads), one query tile.
// CHECK:      sofa_isa.post signal = 96
// CHECK-NEXT: sofa_isa.post signal = 96
// CHECK:      sofa_isa.loop count = 2 {
// Causal: queries 0..99 see keys 0..99, so only KV tiles 0..3 (two pairs) run; the fifth
// (keys 128..129) is skipped. The pair count is a register, as it grows with the query tile.
// CHECK-NEXT:   sofa_isa.set rd = r3, imm = 0
// CHECK-NEXT:   sofa_isa.set rd = r15, imm = 2
// CHECK:        sofa_isa.sufa_init lanes = 100, vdepth = 8
// CHECK:        sofa_isa.loopr count = r15 {
// CHECK:          sofa_isa.dlzs_score q = {{.*}}, lanes = 100, keys = 32, depth = 16, wait = 1, signal = 2
// SADS clips in A-hat units: radius 12 logits / scale 0.25 = 48.
// CHECK:          sofa_isa.sads {{.*}}m = 8, radius = 48.0, key_base = r5, query_base = r3, kv_len = 130, causal = 1
// CHECK:          sofa_isa.rass
// CHECK:          sofa_isa.dma_gather
// CHECK:          sofa_isa.dma_gather
// CHECK:          sofa_isa.sufa_step
// CHECK:          sofa_isa.sufa_step
// CHECK:        }
// CHECK-NEXT:   sofa_isa.sufa_norm out = {{.*}}, lanes = 100, vdepth = 8, signal = 128
// CHECK-NEXT:   sofa_isa.dma_store
// CHECK-NOT:    sofa_isa.sufa_step
// CHECK:        sofa_isa.addi rd = r15, rs = r15, imm = 1
// CHECK:      sofa_isa.halt
