// Bad input is a diagnostic with a location and exit status 1, never a traceback.
// RUN: not sofa-opt %s 2>&1 | filecheck %s
// RUN: not sofa-opt %s -p no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// RUN: not sofa-opt %s.missing 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: sofa-opt --parsing-diagnostics %s | filecheck %s

func.func @main(%a: f32) -> f32 {
  %b = arith.addf %a, : f32
  func.return %b : f32
}

// CHECK-NOT: Traceback
// CHECK: sofa-opt-errors.mlir:8:23: error: operand expected
// CHECK-NEXT: %b = arith.addf %a, : f32
// CHECK-NEXT: ^
// CHECK-NOT: Traceback

// PASS-NOT: Traceback
// PASS: sofa-opt: error: Unrecognized passes: ['no-such-pass']

// MISSING-NOT: Traceback
// MISSING: sofa-opt: error: {{.*}}sofa-opt-errors.mlir.missing: No such file or directory
