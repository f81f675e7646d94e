// RUN: sofa-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @gqa_heads(%q: tensor<1x3x8x4xf32>, %k: tensor<1x2x8x4xf32>) -> tensor<1x3x8x4xf32> {
  %0 = sofa.attention %q, %k, %k scale 0.5 heads 3 / 2 : tensor<1x3x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32> -> tensor<1x3x8x4xf32>
  func.return %0 : tensor<1x3x8x4xf32>
}
// CHECK: query heads (3) must be a multiple of KV heads (2) for GQA/MQA

// -----

func.func @head_attr_mismatch(%q: tensor<1x4x8x4xf32>) -> tensor<1x4x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 2 / 2 : tensor<1x4x8x4xf32>, tensor<1x4x8x4xf32>, tensor<1x4x8x4xf32> -> tensor<1x4x8x4xf32>
  func.return %0 : tensor<1x4x8x4xf32>
}
// CHECK: Q has 4 heads but the op says q_heads = 2

// -----

func.func @head_dim(%q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %0 = sofa.attention %q, %k, %k scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32> -> tensor<1x1x8x8xf32>
  func.return %0 : tensor<1x1x8x8xf32>
}
// CHECK: Q and K head dims differ: 4 vs 8

// -----

func.func @int_inputs(%q: tensor<1x1x8x4xi32>) -> tensor<1x1x8x4xi32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 : tensor<1x1x8x4xi32>, tensor<1x1x8x4xi32>, tensor<1x1x8x4xi32> -> tensor<1x1x8x4xi32>
  func.return %0 : tensor<1x1x8x4xi32>
}
// CHECK: Q must have a float element type, got tensor<1x1x8x4xi32>

// -----

func.func @bad_scale(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale -1.0 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: scale must be positive, got -1.0

// -----

func.func @mask_shape(%q: tensor<1x1x8x4xf32>, %m: tensor<8x7xi1>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q mask %m scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<8x7xi1> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: mask shape [8, 7] does not broadcast to scores shape [1, 1, 8, 8]

// -----

func.func @mask_type(%q: tensor<1x1x8x4xf32>, %m: tensor<8x8xi32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q mask %m scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<8x8xi32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: mask must have i1 (boolean) or float elements, got tensor<8x8xi32>

// -----

func.func @kv_length(%q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>, %v: tensor<1x1x9x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %k, %v scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x9x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: K and V sequence lengths differ: 8 vs 9

// -----

func.func @attention_result(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x5xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x5xf32>
  func.return %0 : tensor<1x1x8x5xf32>
}
// CHECK: result must be tensor<1x1x8x4x...>, got tensor<1x1x8x5xf32>

// -----

func.func @wk_rank(%w: tensor<4xf32>) {
  %codes, %base = sofa.wk_to_lz %w : tensor<4xf32> -> tensor<4xi8>
  func.return
}
// CHECK: weights must have rank 2, got tensor<4xf32>

// -----

func.func @wk_codes(%w: tensor<4x4xf32>) {
  %codes, %base = sofa.wk_to_lz %w : tensor<4x4xf32> -> tensor<4x4xi32>
  func.return
}
// CHECK: codes must have i8 elements, got tensor<4x4xi32>

// -----

func.func @key_hidden(%x: tensor<1x8x16xf32>, %c: tensor<32x8xi8>, %b: i32) {
  %k = sofa.dlzs_key %x, %c, %b heads 1 : tensor<1x8x16xf32>, tensor<32x8xi8> -> tensor<1x1x8x8xf16>
  func.return
}
// CHECK: X hidden size 16 does not match W_k rows 32

// -----

func.func @key_heads(%x: tensor<1x8x16xf32>, %c: tensor<16x8xi8>, %b: i32) {
  %k = sofa.dlzs_key %x, %c, %b heads 3 : tensor<1x8x16xf32>, tensor<16x8xi8> -> tensor<1x3x8x2xf16>
  func.return
}
// CHECK: W_k columns (8) must split into 3 heads

// -----

func.func @key_result(%x: tensor<1x8x16xf32>, %c: tensor<16x8xi8>, %b: i32) {
  %k = sofa.dlzs_key %x, %c, %b heads 2 : tensor<1x8x16xf32>, tensor<16x8xi8> -> tensor<1x2x8x4xf32>
  func.return
}
// CHECK: K-hat must be tensor<1x2x8x4xf16>, got tensor<1x2x8x4xf32>

// -----

func.func @score_depth(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x8xf16>) {
  %s = sofa.dlzs_score %q, %k : tensor<1x2x8x4xf32>, tensor<1x2x8x8xf16> -> tensor<1x2x8x8xf16>
  func.return
}
// CHECK: Q and K-hat head dims differ: 4 vs 8

// -----

func.func @score_result(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x6x4xf16>) {
  %s = sofa.dlzs_score %q, %k : tensor<1x2x8x4xf32>, tensor<1x2x6x4xf16> -> tensor<1x2x8x8xf16>
  func.return
}
// CHECK: scores must be tensor<1x2x8x6xf16>, got tensor<1x2x8x8xf16>

// -----

func.func @sads_tiles(%s: tensor<1x1x8x100xf16>) {
  %i = sofa.sads %s scale 0.5 sparsity <keep = 0.25, tile = 32> : tensor<1x1x8x100xf16> -> tensor<1x1x8x3x8xi32>
  func.return
}
// CHECK: indices must be tensor<1x1x8x4x8xi32> for Skv = 100

// -----

func.func @sads_keep(%s: tensor<1x1x8x64xf16>) {
  %i = sofa.sads %s scale 0.5 sparsity <keep = 0.1, tile = 32> : tensor<1x1x8x64xf16> -> tensor<1x1x8x2x3xi32>
  func.return
}
// CHECK: indices must be tensor<1x1x8x2x4xi32> for Skv = 64

// -----

func.func @sufa_indices(%q: tensor<1x1x8x4xf32>, %i: tensor<1x1x4x2x4xi32>) {
  %o = sofa.sufa %q, %q, %q, %i scale 0.5 tile 4 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x4x2x4xi32> -> tensor<1x1x8x4xf32>
  func.return
}
// CHECK: indices must start with [1, 1, 8], got [1, 1, 4, 2, 4]

// -----

func.func @sufa_index_type(%q: tensor<1x1x8x4xf32>, %i: tensor<1x1x8x2x4xi64>) {
  %o = sofa.sufa %q, %q, %q, %i scale 0.5 tile 4 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x2x4xi64> -> tensor<1x1x8x4xf32>
  func.return
}
// CHECK: indices must have i32 elements, got tensor<1x1x8x2x4xi64>


// -----

func.func @projection_heads(%x: tensor<1x8x16xf32>, %w: tensor<16x8xf32>) {
  %k, %v = sofa.kv_projection %x, %w, %w heads 3 : tensor<1x8x16xf32>, tensor<16x8xf32>, tensor<16x8xf32> -> tensor<1x3x8x2xf32>, tensor<1x3x8x2xf32>
  func.return
}
// CHECK: W_k columns (8) must split into 3 heads

// -----

func.func @projection_bias(%x: tensor<1x8x16xf32>, %w: tensor<16x8xf32>, %b: tensor<4xf32>) {
  %k, %v = sofa.kv_projection %x, %w, %w bias_v(%b : tensor<4xf32>) heads 2 : tensor<1x8x16xf32>, tensor<16x8xf32>, tensor<16x8xf32> -> tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>
  func.return
}
// CHECK: b_v must have 8 elements, got tensor<4xf32>

// -----

func.func @sufa_tile(%q: tensor<1x1x8x4xf32>, %i: tensor<1x1x8x2x4xi32>) {
  %o = sofa.sufa %q, %q, %q, %i scale 0.5 tile 2 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x2x4xi32> -> tensor<1x1x8x4xf32>
  func.return
}
// CHECK: indices [..., Tc = 2, m = 4] do not fit Skv = 8 in tiles of 2

// -----

func.func @mul4_result(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x6x4xf32>) {
  %s = sofa.mul4_score %q, %k : tensor<1x2x8x4xf32>, tensor<1x2x6x4xf32> -> tensor<1x2x8x6xf32>
  func.return
}
// CHECK: scores must be tensor<1x2x8x6xf16>, got tensor<1x2x8x6xf32>

// -----

func.func @mul4_heads(%q: tensor<1x3x8x4xf32>, %k: tensor<1x2x6x4xf32>) {
  %s = sofa.mul4_score %q, %k : tensor<1x3x8x4xf32>, tensor<1x2x6x4xf32> -> tensor<1x3x8x6xf16>
  func.return
}
// CHECK: query heads (3) must be a multiple of KV heads (2) for GQA/MQA

// -----

func.func @kernel_call_scalar(%x: f32) {
  %o = sofa.kernel_call "attn0"(%x) : (f32) -> tensor<4xf32>
  func.return
}
// CHECK: f32 should be of base attribute tensor


// -----

func.func @negative_softcap(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 softcap -1.0 heads 1 / 1 : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: softcap must be finite and positive, got -1.0

// -----

func.func @biased_boolean_mask(%s: tensor<1x1x8x8xf16>, %m: tensor<8x8xi1>) -> tensor<1x1x8x1x8xi32> {
  %0 = sofa.sads %s mask %m scale 0.5 biased sparsity <keep = 1.0, tile = 8, radius = inf, predictor = "dlzs"> : tensor<1x1x8x8xf16>, tensor<8x8xi1> -> tensor<1x1x8x1x8xi32>
  func.return %0 : tensor<1x1x8x1x8xi32>
}
// CHECK: biased needs a float mask (its finite entries are the bias)
