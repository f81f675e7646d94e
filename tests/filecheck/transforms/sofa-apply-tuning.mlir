// Per-layer tuning: sofa-apply-tuning marks ops by index, sofa-coordinated-tiling honours the marks
// over its global options (layer 1 keeps the global keep = 0.5 and the cost model's tile).
// RUN: sofa-opt %s -p 'sofa-apply-tuning{tiles="0=32" keeps="0=0.25,1=0.5"}' | filecheck %s --check-prefix=MARK
// RUN: sofa-opt %s -p 'sofa-apply-tuning{tiles="0=32" keeps="0=0.25"},sofa-coordinated-tiling{keep=0.5}' | filecheck %s
// Errors name the layer.
// RUN: not sofa-opt %s -p 'sofa-apply-tuning{tiles="2=32"}' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not sofa-opt %s -p 'sofa-apply-tuning{keeps="1=1.5"}' 2>&1 | filecheck %s --check-prefix=KEEP
// RUN: not sofa-opt %s -p 'sofa-apply-tuning{tiles="0=256" keeps="0=1.0"}' 2>&1 | filecheck %s --check-prefix=FIT
// RUN: not sofa-opt %s -p 'sofa-apply-tuning{tiles="0=1024"}' 2>&1 | filecheck %s --check-prefix=LONG
// RUN: not sofa-opt %s -p 'sofa-apply-tuning{tiles="x=32"}' 2>&1 | filecheck %s --check-prefix=SYNTAX

builtin.module attributes {sofa.target = #sofa.target<>} {
  func.func @main(%q : tensor<1x1x256x64xf32>, %k : tensor<1x1x256x64xf32>, %v : tensor<1x1x256x64xf32>) -> (tensor<1x1x256x64xf32>, tensor<1x1x256x64xf32>) {
    %a = sofa.attention %q, %k, %v scale 0.125 heads 1 / 1 : tensor<1x1x256x64xf32>, tensor<1x1x256x64xf32>, tensor<1x1x256x64xf32> -> tensor<1x1x256x64xf32>
    %b = sofa.attention %q, %k, %v scale 0.125 heads 1 / 1 : tensor<1x1x256x64xf32>, tensor<1x1x256x64xf32>, tensor<1x1x256x64xf32> -> tensor<1x1x256x64xf32>
    func.return %a, %b : tensor<1x1x256x64xf32>, tensor<1x1x256x64xf32>
  }
}

// MARK: sofa.attention {{.*}} {sofa.tuning = {tile = 32 : i64, keep = 2.500000e-01 : f64}}
// MARK: sofa.attention {{.*}} {sofa.tuning = {keep = 5.000000e-01 : f64}}

// CHECK: sofa.sads {{.*}} sparsity <keep = 0.25, tile = 32,
// CHECK: sofa.sads {{.*}} sparsity <keep = 0.5, tile = {{[0-9]+}},

// UNKNOWN: tuning names layer 2, but the model has 2 attention layer(s) (indices 0..1)
// KEEP: tuning layer 1: keep must satisfy 0 < keep <= 1, got 1.5
// FIT: tuning layer 0: tile 256 does not fit the target: SRAM region
// LONG: tuning layer 0: tile 1024 exceeds the layer's 256 keys
// SYNTAX: tiles: expected LAYER=VALUE with a layer index, got 'x=32'
