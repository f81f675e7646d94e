// A causal kernel runs op by op on the `sofa_isa` IR interpreter (`sofa-run-ir --kernels interpreter`):
// bit-identical to `sofa-run-ir` (which runs the kernel on the binary simulator) and within
// rtol 1e-6 of the `sofa`-dialect interpreter on the tiled IR.
// RUN: sofa-opt %s -p 'sofa-coordinated-tiling{keep=0.25 tile=32}' -o %t.tiled.mlir
// RUN: sofa-run-ir %t.tiled.mlir --random-inputs 3 --output %t.tiled.npz
// RUN: sofa-opt %t.tiled.mlir -p sofa-lower-to-isa -o %t.isa.mlir
// RUN: filecheck %s --check-prefix=ISA < %t.isa.mlir
// RUN: sofa-run-ir %t.isa.mlir --kernels interpreter --random-inputs 3 --output %t.ir.npz | filecheck %s --check-prefix=IR
// RUN: sofa-run-ir %t.isa.mlir --random-inputs 3 --output %t.sim.npz
// RUN: %python %S/../../tools/compare_npz.py %t.ir.npz result0 %t.sim.npz result0 --exact | filecheck %s --check-prefix=EXACT
// RUN: %python %S/../../tools/compare_npz.py %t.ir.npz result0 %t.tiled.npz result0 --rtol 1e-6 | filecheck %s --check-prefix=CLOSE

// Causal GQA: 2 query heads share one KV head; 40 queries see at most keys 0..39 of 70.
func.func @main(%q: tensor<1x2x40x8xf32>, %k: tensor<1x1x70x8xf32>, %v: tensor<1x1x70x4xf32>) -> tensor<1x2x40x4xf32> {
  %o = sofa.attention %q, %k, %v scale 0.25 heads 2 / 1 causal : tensor<1x2x40x8xf32>, tensor<1x1x70x8xf32>, tensor<1x1x70x4xf32> -> tensor<1x2x40x4xf32>
  func.return %o : tensor<1x2x40x4xf32>
}

// The run-time pair count (`loopr`) skips the KV tiles past the diagonal.
// ISA: sofa_isa.loopr count = r{{[0-9]+}} {
// ISA: sofa_isa.sads {{.*}}causal = 1

// IR: kernel attn0: {{[0-9]+}} instructions: addi barrier dlzs.score dma.gather dma.load dma.prefetch dma.store halt loop loopr post rass sads set sufa.init sufa.norm sufa.step{{$}}
// IR-NEXT: result[0]: (1, 2, 40, 4) float32{{$}}

// EXACT: bit-identical: 320 elements
// CLOSE: max relative error
