// RUN: sofa-opt %s | sofa-opt | filecheck %s
// RUN: sofa-opt %s --print-op-generic | sofa-opt | filecheck %s
// RUN: sofa-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: sofa-opt %s --print-op-generic | %mlir-check | filecheck %s --check-prefix=MLIR

// MLIR: MLIR-OK

func.func @attention(%q: tensor<1x4x128x64xf32>, %k: tensor<1x2x128x64xf32>, %v: tensor<1x2x128x32xf32>,
                     %m: tensor<128x128xi1>, %bias: tensor<1x1x128x128xf32>) -> tensor<1x4x128x32xf32> {
  %dense = sofa.attention %q, %k, %v scale 0.125 heads 4 / 2 : tensor<1x4x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x32xf32> -> tensor<1x4x128x32xf32>
  %masked = sofa.attention %q, %k, %v mask %m scale 0.125 heads 4 / 2 causal : tensor<1x4x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x32xf32>, tensor<128x128xi1> -> tensor<1x4x128x32xf32>
  %sparse = sofa.attention %q, %k, %v mask %bias scale 0.125 heads 4 / 2 sparsity <keep = 0.25, tile = 32, radius = inf, predictor = "dlzs"> : tensor<1x4x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x32xf32>, tensor<1x1x128x128xf32> -> tensor<1x4x128x32xf32>
  func.return %sparse : tensor<1x4x128x32xf32>
}

// CHECK-LABEL: func.func @attention
// CHECK: %dense = sofa.attention %q, %k, %v scale 1.250000e-01 heads 4 / 2 : tensor<1x4x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x32xf32> -> tensor<1x4x128x32xf32>
// CHECK: %masked = sofa.attention %q, %k, %v mask %m scale 1.250000e-01 heads 4 / 2 causal : {{.*}}, tensor<128x128xi1> -> tensor<1x4x128x32xf32>
// CHECK: %sparse = sofa.attention %q, %k, %v mask %bias scale 1.250000e-01 heads 4 / 2 sparsity <keep = 0.25, tile = 32, radius = inf, predictor = "dlzs">

// GENERIC: "sofa.attention"(%q, %k, %v) <{scale = 1.250000e-01 : f64, q_heads = 4 : i64, kv_heads = 2 : i64}>
// GENERIC: "sofa.attention"(%q, %k, %v, %bias) <{{.*}}sparsity = #sofa.sparsity<keep = 0.25, tile = 32, radius = inf, predictor = "dlzs">}>

func.func @stages(%x: tensor<1x96x128xf32>, %wk: tensor<128x128xf32>, %q: tensor<1x4x80x64xf32>,
                  %k: tensor<1x2x96x64xf32>, %v: tensor<1x2x96x64xf32>) -> tensor<1x4x80x64xf32> {
  %codes, %base = sofa.wk_to_lz %wk : tensor<128x128xf32> -> tensor<128x128xi8>
  %khat = sofa.dlzs_key %x, %codes, %base heads 2 : tensor<1x96x128xf32>, tensor<128x128xi8> -> tensor<1x2x96x64xf16>
  %scores = sofa.dlzs_score %q, %khat : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf16> -> tensor<1x4x80x96xf16>
  %idx = sofa.sads %scores scale 0.125 causal sparsity <keep = 0.5, tile = 32, radius = 6.0, predictor = "dlzs"> : tensor<1x4x80x96xf16> -> tensor<1x4x80x3x16xi32>
  %out = sofa.sufa %q, %k, %v, %idx scale 0.125 tile 32 causal : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>, tensor<1x2x96x64xf32>, tensor<1x4x80x3x16xi32> -> tensor<1x4x80x64xf32>
  func.return %out : tensor<1x4x80x64xf32>
}

// CHECK-LABEL: func.func @stages
// CHECK: %codes, %base = sofa.wk_to_lz %wk : tensor<128x128xf32> -> tensor<128x128xi8>
// CHECK: %khat = sofa.dlzs_key %x, %codes, %base heads 2 : tensor<1x96x128xf32>, tensor<128x128xi8> -> tensor<1x2x96x64xf16>
// CHECK: %scores = sofa.dlzs_score %q, %khat : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf16> -> tensor<1x4x80x96xf16>
// CHECK: %idx = sofa.sads %scores scale 1.250000e-01 causal sparsity <keep = 0.5, tile = 32, radius = 6.0, predictor = "dlzs"> : tensor<1x4x80x96xf16> -> tensor<1x4x80x3x16xi32>
// CHECK: %out = sofa.sufa %q, %k, %v, %idx scale 1.250000e-01 tile 32 causal : {{.*}} -> tensor<1x4x80x64xf32>

// GENERIC: "sofa.wk_to_lz"(%wk) : (tensor<128x128xf32>) -> (tensor<128x128xi8>, i32)
// GENERIC: "sofa.sads"(%scores) <{scale = 1.250000e-01 : f64, causal, sparsity = #sofa.sparsity<keep = 0.5, tile = 32, radius = 6.0, predictor = "dlzs">}>

func.func @target() attributes {sofa.target = #sofa.target<>, sofa.small = #sofa.target<lanes = 64, temp_sram = 57344, clock_mhz = 800.0>} {
  func.return
}

// CHECK-LABEL: func.func @target()
// CHECK-SAME: sofa.target = #sofa.target<>
// CHECK-SAME: sofa.small = #sofa.target<lanes = 64, temp_sram = 57344, clock_mhz = 800.0>

func.func @projection(%x: tensor<2x16x32xf32>, %wk: tensor<32x16xf32>, %wv: tensor<32x8xf32>, %bk: tensor<16xf32>) -> tensor<2x2x16x8xf32> {
  %k, %v = sofa.kv_projection %x, %wk, %wv bias_k(%bk : tensor<16xf32>) heads 2 : tensor<2x16x32xf32>, tensor<32x16xf32>, tensor<32x8xf32> -> tensor<2x2x16x8xf32>, tensor<2x2x16x4xf32>
  %k2, %v2 = sofa.kv_projection %x, %wk, %wv heads 2 : tensor<2x16x32xf32>, tensor<32x16xf32>, tensor<32x8xf32> -> tensor<2x2x16x8xf32>, tensor<2x2x16x4xf32>
  func.return %k : tensor<2x2x16x8xf32>
}

// CHECK-LABEL: func.func @projection
// CHECK: %k, %v = sofa.kv_projection %x, %wk, %wv bias_k(%bk : tensor<16xf32>) heads 2 : tensor<2x16x32xf32>, tensor<32x16xf32>, tensor<32x8xf32> -> tensor<2x2x16x8xf32>, tensor<2x2x16x4xf32>
// CHECK: %k2, %v2 = sofa.kv_projection %x, %wk, %wv heads 2 : tensor<2x16x32xf32>, tensor<32x16xf32>, tensor<32x8xf32> -> tensor<2x2x16x8xf32>, tensor<2x2x16x4xf32>
// GENERIC: "sofa.kv_projection"(%x, %wk, %wv, %bk) <{kv_heads = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>}>

func.func @baseline_and_kernels(%q: tensor<1x4x80x64xf32>, %k: tensor<1x2x96x64xf32>) -> tensor<1x4x80x96xf16> {
  %scores = sofa.mul4_score %q, %k : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32> -> tensor<1x4x80x96xf16>
  %o = sofa.kernel_call "attn0"(%q, %k) : (tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>) -> tensor<1x4x80x96xf16>
  sofa.kernel_call "side_effects_only"() : () -> ()
  func.return %scores : tensor<1x4x80x96xf16>
}

// CHECK-LABEL: func.func @baseline_and_kernels
// CHECK: %scores = sofa.mul4_score %q, %k : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32> -> tensor<1x4x80x96xf16>
// CHECK: %o = sofa.kernel_call "attn0"(%q, %k) : (tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>) -> tensor<1x4x80x96xf16>
// CHECK: sofa.kernel_call "side_effects_only"() : () -> ()

// GENERIC: "sofa.mul4_score"(%q, %k) : (tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>) -> tensor<1x4x80x96xf16>
// GENERIC: "sofa.kernel_call"(%q, %k) <{kernel = "attn0"}> : (tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>) -> tensor<1x4x80x96xf16>

// softcap caps the scaled scores (c tanh(s / c)) before the mask; a biased sofa.sads ranks the capped, scaled
// prediction plus a run-time additive mask's bias.
func.func @softcap(%q: tensor<1x4x80x64xf32>, %k: tensor<1x2x96x64xf32>, %v: tensor<1x2x96x64xf32>,
                   %scores: tensor<1x4x80x96xf16>, %bias: tensor<1x1x80x96xf32>) -> tensor<1x4x80x64xf32> {
  %a = sofa.attention %q, %k, %v mask %bias scale 0.125 softcap 30.0 heads 4 / 2 : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>, tensor<1x2x96x64xf32>, tensor<1x1x80x96xf32> -> tensor<1x4x80x64xf32>
  %idx = sofa.sads %scores mask %bias scale 0.125 softcap 30.0 biased causal sparsity <keep = 0.5, tile = 32, radius = inf, predictor = "dlzs"> : tensor<1x4x80x96xf16>, tensor<1x1x80x96xf32> -> tensor<1x4x80x3x16xi32>
  %out = sofa.sufa %q, %k, %v, %idx mask %bias scale 0.125 softcap 30.0 tile 32 causal : tensor<1x4x80x64xf32>, tensor<1x2x96x64xf32>, tensor<1x2x96x64xf32>, tensor<1x4x80x3x16xi32>, tensor<1x1x80x96xf32> -> tensor<1x4x80x64xf32>
  func.return %out : tensor<1x4x80x64xf32>
}

// CHECK-LABEL: func.func @softcap
// CHECK: %a = sofa.attention %q, %k, %v mask %bias scale 1.250000e-01 softcap 3.000000e+01 heads 4 / 2 :
// CHECK: %idx = sofa.sads %scores mask %bias scale 1.250000e-01 softcap 3.000000e+01 biased causal sparsity
// CHECK: %out = sofa.sufa %q, %k, %v, %idx mask %bias scale 1.250000e-01 softcap 3.000000e+01 tile 32 causal :
// GENERIC: "sofa.sads"(%scores, %bias) <{scale = 1.250000e-01 : f64, softcap = 3.000000e+01 : f64, biased, causal,
