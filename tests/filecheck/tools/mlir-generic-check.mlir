// sofa-opt's generic output is valid input for upstream MLIR.
// RUN: sofa-opt --print-op-generic %s | %mlir-check | filecheck %s

func.func @main(%a: f32, %b: f32) -> f32 {
  %c = arith.addf %a, %b : f32
  %d = arith.mulf %c, %a : f32
  func.return %d : f32
}

// CHECK: MLIR-OK 4
