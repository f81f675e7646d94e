// RUN: sofa-opt %s -p sofa-preprocess-weights | filecheck %s
// RUN: sofa-opt %s -p sofa-preprocess-weights --print-op-generic | %mlir-check | filecheck %s --check-prefix=MLIR
// Same numbers before and after folding:
// RUN: sofa-run-ir %s --random-inputs 2 --print > %t.before
// RUN: sofa-opt %s -p sofa-preprocess-weights -o %t.folded.mlir
// RUN: sofa-run-ir %t.folded.mlir --random-inputs 2 --print > %t.after
// RUN: diff %t.before %t.after

// MLIR: MLIR-OK

func.func @main(%x: tensor<1x3x4xf32>) -> tensor<1x1x3x2xf16> {
  // W_k = [[1, -0.5], [0.3, 0.001], [0, -1], [6, 2]]: max 6 -> base = floor(log2 6) - 7 = -5.
  %wk = host.constant dense<[[1.0, -0.5], [0.3, 0.001], [0.0, -1.0], [6.0, 2.0]]> : tensor<4x2xf32>
  %codes, %base = sofa.wk_to_lz %wk : tensor<4x2xf32> -> tensor<4x2xi8>
  %khat = sofa.dlzs_key %x, %codes, %base heads 1 : tensor<1x3x4xf32>, tensor<4x2xi8> -> tensor<1x1x3x2xf16>
  func.return %khat : tensor<1x1x3x2xf16>
}

// 1 = 2^0 -> e 5; -0.5 -> sign | e 4 = 12; 0.3 -> 2^-2 -> e 3; 0.001 < 2^-5 -> zero (8);
// 0 -> zero (8); -1 -> sign | e 5 = 13; 6 -> 2^2 -> e 7; 2 -> e 6.
// CHECK:      %wk_lz = host.constant dense<{{\[\[}}5, 12], [3, 8], [8, 13], [7, 6]]> : tensor<4x2xi8>
// CHECK-NEXT: %wk_lz_base = arith.constant -5 : i32
// CHECK-NEXT: %khat = sofa.dlzs_key %x, %wk_lz, %wk_lz_base heads 1
// CHECK-NOT:  sofa.wk_to_lz
