// sofa-run-ir on upstream ops: input matching, printing, saving.
// RUN: %python -c "import numpy as np; np.savez('%t.idx.npz', arg1=np.float32(2.25), arg0=np.float32(1.5))"
// RUN: sofa-run-ir %s --inputs %t.idx.npz --print | filecheck %s --check-prefix=ADD
// RUN: %python -c "import numpy as np; np.savez('%t.pos.npz', np.float32(1.5), np.float32(2.25))"
// RUN: sofa-run-ir %s --inputs %t.pos.npz --print | filecheck %s --check-prefix=ADD
// RUN: %python -c "import numpy as np; np.savez('%t.names.npz', y=np.arange(4, dtype=np.int32), x=np.ones((2, 3), np.float32))"
// RUN: sofa-run-ir %s --symbol pair --inputs %t.names.npz --print --output %t.out.npz | filecheck %s --check-prefix=PAIR
// RUN: %python -c "import numpy as np; r = np.load('%t.out.npz'); print(sorted(r.files), r['result1'].tolist())" | filecheck %s --check-prefix=SAVED
// RUN: sofa-run-ir %s --random-inputs 7 --print > %t.r1
// RUN: sofa-run-ir %s --random-inputs 7 --print > %t.r2
// RUN: diff %t.r1 %t.r2
// RUN: sofa-run-ir %s --symbol seven | filecheck %s --check-prefix=SEVEN

func.func @main(%a: f32, %b: f32) -> f32 {
  %c = arith.addf %a, %b : f32
  func.return %c : f32
}

func.func @pair(%x: tensor<2x3xf32>, %y: tensor<?xi32>) -> (tensor<2x3xf32>, tensor<?xi32>) {
  func.return %x, %y : tensor<2x3xf32>, tensor<?xi32>
}

func.func @seven() -> i32 {
  %c = arith.constant 7 : i32
  func.return %c : i32
}

// ADD: result[0]: () float32
// ADD-NEXT: 3.75

// PAIR: result[0]: (2, 3) float32
// PAIR-NEXT: {{\[\[}}1. 1. 1.]
// PAIR-NEXT: [1. 1. 1.]]
// PAIR-NEXT: result[1]: (4,) int32
// PAIR-NEXT: [0 1 2 3]

// SAVED: ['result0', 'result1'] [0, 1, 2, 3]

// SEVEN: result[0]: () int32
// SEVEN-NOT: 7
