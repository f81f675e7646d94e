// RUN: sofa-opt %s --split-input-file --verify-diagnostics | filecheck %s

sofa_isa.set rd = r1, imm = 2147483648
// CHECK: set: field 'imm' = 2147483648 out of range [-2147483648, 2147483647]

// -----

sofa_isa.sufa_init lanes = 4096, vdepth = 32
// CHECK: sufa.init: field 'lanes' = 4096 out of range [1, 4095]

// -----

sofa_isa.sufa_norm out = temp[r0 + 5], lanes = 128, vdepth = 32
// CHECK: sufa.norm: field 'out' offset 5 is not aligned to its 2-byte elements

// -----

sofa_isa.dma_load dst = temp[r0 + 262144], src = dram[r0 + 0], rows = 1, row_bytes = 1, src_stride = 0
// CHECK: dma.load: field 'dst': SRAM offset 262144 out of range [0, 262143]

// -----

sofa_isa.sufa_init lanes = 128, vdepth = 32, wait = 256
// CHECK: wait mask 256 out of range [0, 0xff]

// -----

sofa_isa.barrier signal = 1
// CHECK: barrier: only 'post' may signal among control instructions

// -----

sofa_isa.post
// CHECK: post: signal mask is empty

// -----

sofa_isa.sads scores = temp[r0 + 0], out = token[r0 + 0], lanes = 128, keys = 64, m = 65, radius = inf, key_base = r5, query_base = r3, kv_len = 200, causal = 0
// CHECK: sads: m = 65 exceeds keys = 64

// -----

sofa_isa.sads scores = temp[r0 + 0], out = token[r0 + 0], lanes = 128, keys = 64, m = 8, radius = 0.0, key_base = r5, query_base = r3, kv_len = 200, causal = 0
// CHECK: sads: field 'radius' = 0.0 must be positive (or inf)

// -----

sofa_isa.sufa_step q = token[r0 + 0], k = token[r0 + 0], v = token[r0 + 0], idx = token[r0 + 0], key_base = r5, lanes = 128, m = 16, window = 8, depth = 64, vdepth = 32, scale = 0.125, dtype = f32
// CHECK: sufa.step: m = 16 exceeds window = 8

// -----

sofa_isa.sufa_step q = token[r0 + 0], k = token[r0 + 0], v = token[r0 + 0], idx = token[r0 + 0], key_base = r5, lanes = 128, m = 1, window = 8, depth = 64, vdepth = 32, scale = 0.0, dtype = f32
// CHECK: sufa.step: field 'scale' = 0.0 must be finite and positive

// -----

"sofa_isa.dma_load"() <{dst = #sofa_isa.sram<scratch, r0 + 0>, src = #sofa_isa.dram<r0 + 0>, rows = 1 : i64, row_bytes = 1 : i64, src_stride = 0 : i64, wait = 0 : i64, signal = 0 : i64}> : () -> ()
// CHECK: unknown SRAM buffer 'scratch' (expected token, weight, temp)

// -----

"sofa_isa.set"() <{rd = 16 : i64, imm = 0 : i64, wait = 0 : i64, signal = 0 : i64}> : () -> ()
// CHECK: set: field 'rd' = r16 out of range [0, 15]

// -----

"sofa_isa.kvgen"() <{x = #sofa_isa.sram<token, r0 + 0>, w = #sofa_isa.sram<weight, r0 + 0>, out = #sofa_isa.sram<temp, r0 + 0>, list = #sofa_isa.sram<temp, r0 + 0>, key_base = 5 : i64, window = 64 : i64, hidden = 128 : i64, cols = 64 : i64, dtype = "bf16", bias = #sofa_isa.sram<weight, r0 + 0>, mode = 0 : i64, wait = 0 : i64, signal = 0 : i64}> : () -> ()
// CHECK: kvgen: field 'dtype' = 'bf16' must be one of f16, f32

// -----

sofa_isa.loop count = 0 {
  sofa_isa.barrier
}
// CHECK: loop count 0 out of range [1, 16777215]

// -----

sofa_isa.loop count = 1 {
  sofa_isa.loop count = 1 {
    sofa_isa.loop count = 1 {
      sofa_isa.loop count = 1 {
        sofa_isa.loop count = 1 {
          sofa_isa.barrier
        }
      }
    }
  }
}
// CHECK: loops nest 5 deep; the hardware supports 4

// -----

sofa_isa.program {config_hash = "xyz", dram_bytes = 4096 : i64, symbols = [], segments = []} {
  sofa_isa.halt
}
// CHECK: config_hash must be 64 lowercase hex digits, got 'xyz'

// -----

sofa_isa.program {config_hash = "0000000000000000000000000000000000000000000000000000000000000000", dram_bytes = 4096 : i64, symbols = [#sofa_isa.symbol<"q", input, f32, [64, 64], 0, 16384>], segments = []} {
  sofa_isa.halt
}
// CHECK: symbol 'q' [0, +16384) lies outside DRAM

// -----

sofa_isa.program {config_hash = "0000000000000000000000000000000000000000000000000000000000000000", dram_bytes = 65536 : i64, symbols = [#sofa_isa.symbol<"q", input, f32, [4], 0, 16>, #sofa_isa.symbol<"q", output, f32, [4], 16, 16>], segments = []} {
  sofa_isa.halt
}
// CHECK: symbol 'q' is defined twice

// -----

sofa_isa.loopr count = r2 {
}
// CHECK: loop body is empty

// -----

"sofa_isa.loopr"() <{count = 16 : i64}> ({
  sofa_isa.barrier
}) : () -> ()
// CHECK: loopr count register r16 out of range r0..r15

// -----

sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 4096 : i64, symbols = [], segments = [#sofa_isa.segment<8192, "00">]} {
  sofa_isa.halt
}
// CHECK: segment at 8192 lies outside DRAM

// -----

sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 4096 : i64, symbols = [], segments = [#sofa_isa.segment<0, "zz">]} {
  sofa_isa.halt
}
// CHECK: segment data is not a hex byte string


// -----

sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 4096 : i64, symbols = [], segments = []} {
  sofa_isa.softcap cap = -2.0
  sofa_isa.halt
}
// CHECK: field 'cap' = -2.0 must be finite and non-negative (0: no cap)
