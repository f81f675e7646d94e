# Cycle counts worked out by hand for the paper's config (1 GHz, 512 GB/s,
# 100 ns DRAM latency, 4-cycle DMA setup; docs/simulator.md has the formulas).
#
# RUN: sofa-as %s -o %t.sofa
# RUN: sofa-sim %t.sofa --print | filecheck %s --check-prefix=OUT
# RUN: sofa-sim %t.sofa --json | filecheck %s
# Halving the bandwidth does not change a 16-byte copy (one cycle either way),
# but doubling the DRAM latency adds 100 cycles to each of the two dependent
# load -> store hops.
# RUN: sed 's/dram_latency_ns = 100.0/dram_latency_ns = 200.0/' %S/../../../configs/sofa-28nm.toml > %t.toml
# RUN: sofa-sim %t.sofa --config %t.toml --json | filecheck %s --check-prefix=SLOW
#
# load #1: issue 0..5 (setup 4 + 16 B / 512 B per cycle = 1), data at 5 + 100 = 105
# store #1 waits for it: issue 105..110, done 210
# load #2 issues right after load #1 (in order on its engine): 5..10, data at 110
# store #2: its engine is free at 110, token ready at 110: done 110 + 5 + 100 = 215
#
# OUT: output y: float32 [2, 4]
# OUT-NEXT: {{\[\[}}1. 2. 3. 4.]
# OUT-NEXT: [1. 2. 3. 4.]]
# CHECK: "total_cycles": 215,
# CHECK: "dram_read_bytes": 32,
# CHECK: "dram_write_bytes": 32,
# SLOW: "total_cycles": 415,

.symbol c const f32 [4] @256
.symbol y output f32 [2,4] @512
.data 256 0000803f000000400000404000008040
    set rd=r1, imm=0
    loop count=2, body=3
      dma.load dst=temp[r0+0], src=dram[r0+256], rows=1, row_bytes=16, src_stride=16 ; signal=0b1
      dma.store src=temp[r0+0], dst=dram[r1+512], rows=1, row_bytes=16, dst_stride=16 ; wait=0b1
      addi rd=r1, rs=r1, imm=16
    halt
