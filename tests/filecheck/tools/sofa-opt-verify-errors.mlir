// A verifier failure is reported with the failing op marked, exit status 1.
// RUN: not sofa-opt %s 2>&1 | filecheck %s
// RUN: sofa-opt --verify-diagnostics %s | filecheck %s

func.func @main(%a: f32) -> f32 {
  %c = arith.constant 1 : i32
  func.return %c : i32
}

// CHECK-NOT: Traceback
// CHECK: Expected arguments to have the same types as the function output types: expected [f32], got [i32]
// CHECK: "func.return"(%c) : (i32) -> ()
// CHECK-NEXT: ^^^^^^^^^^^^^
// CHECK-NOT: Traceback
