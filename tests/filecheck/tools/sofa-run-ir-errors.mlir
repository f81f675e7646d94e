// Bad runner input is one clear error line naming the argument, exit status 1.
// RUN: %python -c "import numpy as np; np.savez('%t.shape.npz', arg0=np.ones((3, 2), np.float32), arg1=np.arange(4, dtype=np.int32))"
// RUN: not sofa-run-ir %s --symbol pair --inputs %t.shape.npz 2>&1 | filecheck %s --check-prefix=SHAPE
// RUN: %python -c "import numpy as np; np.savez('%t.dtype.npz', arg0=np.ones((2, 3)), arg1=np.arange(4, dtype=np.int32))"
// RUN: not sofa-run-ir %s --symbol pair --inputs %t.dtype.npz 2>&1 | filecheck %s --check-prefix=DTYPE
// RUN: %python -c "import numpy as np; np.savez('%t.keys.npz', arg0=np.float32(1), arg2=np.float32(2))"
// RUN: not sofa-run-ir %s --symbol pair --inputs %t.keys.npz 2>&1 | filecheck %s --check-prefix=KEYS
// RUN: not sofa-run-ir %s --symbol pair --random-inputs 0 2>&1 | filecheck %s --check-prefix=RANDOM
// RUN: not sofa-run-ir %s --symbol pair 2>&1 | filecheck %s --check-prefix=NOINPUTS
// RUN: not sofa-run-ir %s --symbol nope --random-inputs 0 2>&1 | filecheck %s --check-prefix=SYMBOL
// RUN: not sofa-run-ir %s --symbol pair --inputs %s 2>&1 | filecheck %s --check-prefix=NOTNPZ
// RUN: not sofa-run-ir %s.missing 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: not sofa-run-ir %s --symbol pair --inputs %s.npz 2>&1 | filecheck %s --check-prefix=NONPZ

func.func @pair(%x: tensor<2x3xf32>, %y: tensor<?xi32>) -> (tensor<2x3xf32>, tensor<?xi32>) {
  func.return %x, %y : tensor<2x3xf32>, tensor<?xi32>
}

// SHAPE-NOT: Traceback
// SHAPE: sofa-run-ir: error: argument 0 (%x): expected shape (2, 3) for tensor<2x3xf32>, got (3, 2)
// DTYPE: sofa-run-ir: error: argument 0 (%x): expected dtype float32 for tensor<2x3xf32>, got float64
// KEYS: sofa-run-ir: error: inputs have keys ['arg0', 'arg2'], but the function takes 2 arguments: expected ['arg0', 'arg1']
// RANDOM: sofa-run-ir: error: argument 1 (%y): --random-inputs only fills float arguments, not tensor<?xi32>; use --inputs
// NOINPUTS: sofa-run-ir: error: @pair takes 2 arguments: pass --inputs or --random-inputs
// SYMBOL-NOT: Traceback
// SYMBOL: Could not find symbol nope
// NOTNPZ: sofa-run-ir: error: {{.*}}sofa-run-ir-errors.mlir: not an .npz archive
// MISSING: sofa-run-ir: error: {{.*}}sofa-run-ir-errors.mlir.missing: No such file or directory
// NONPZ: sofa-run-ir: error: cannot read inputs '{{.*}}sofa-run-ir-errors.mlir.npz': No such file or directory
