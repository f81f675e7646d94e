// A decode step (one query per sample and head) is marked #sofa.decode by the tiling pass and lowered to
// the decode kernel (option decode=true; off by default); several queries or keep < 1 keep the SOFA stages.
// (decode=false, bad options and the driver's options: tests/driver/test_decode_wiring.py.)
// The mark round-trips through the printer and the parser:
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{decode=true decode_lowering=bifurcated decode_prefix=32 decode_tile=16}' | sofa-opt | filecheck %s
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{decode=true},sofa-lower-to-isa' | filecheck %s --check-prefix=ISA

builtin.module attributes {sofa.target = #sofa.target<>} {
  // 2 samples, GQA 4 query heads on 2 KV heads, a 96-row cache.
  func.func @step(%q: tensor<2x4x1x64xf32>, %k: tensor<2x2x96x64xf32>, %v: tensor<2x2x96x64xf32>) -> tensor<2x4x1x64xf32> {
    %o = sofa.attention %q, %k, %v scale 0.125 heads 4 / 2 : tensor<2x4x1x64xf32>, tensor<2x2x96x64xf32>, tensor<2x2x96x64xf32> -> tensor<2x4x1x64xf32>
    func.return %o : tensor<2x4x1x64xf32>
  }
  func.func @prefill(%q: tensor<1x4x8x64xf32>, %k: tensor<1x2x8x64xf32>, %v: tensor<1x2x8x64xf32>) -> tensor<1x4x8x64xf32> {
    %o = sofa.attention %q, %k, %v scale 0.125 heads 4 / 2 causal : tensor<1x4x8x64xf32>, tensor<1x2x8x64xf32>, tensor<1x2x8x64xf32> -> tensor<1x4x8x64xf32>
    func.return %o : tensor<1x4x8x64xf32>
  }
}

// CHECK-LABEL: func.func @step
// CHECK:         sofa.attention {{.*}} {sofa.decode = #sofa.decode<lowering = "bifurcated", prefix = 32, tile = 16>}
// CHECK-NOT:     sofa.sufa
// CHECK-LABEL: func.func @prefill
// CHECK:         sofa.sufa

// ISA-LABEL: func.func @step
// ISA:         sofa.kernel_call "attn0"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<2x4x1x64xf32>, tensor<2x2x96x64xf32>, tensor<2x2x96x64xf32>) -> tensor<2x4x1x64xf32>
// ISA-LABEL: func.func @prefill
// ISA:         sofa.kernel_call "attn1"
// ISA:       sofa_isa.program @attn0
// ISA-SAME:    #sofa_isa.symbol<"ks", input, f16, [384, 64]
