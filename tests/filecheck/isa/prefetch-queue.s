# The second load queue: `dma.prefetch` is `dma.load` on its own queue, so a
# load there does not wait behind a blocked `dma.load`; the two queues share
# the DRAM read channel. Cycles worked out by hand for the paper's config
# (1 GHz, 512 B/cycle, 100-cycle DRAM latency, 4-cycle DMA setup).
#
# RUN: sofa-as %s -o %t.sofa
# RUN: sofa-objdump %t.sofa --source > %t.s
# RUN: sofa-as %t.s -o %t2.sofa
# RUN: cmp %t.sofa %t2.sofa
# RUN: filecheck %s --check-prefix=SRC < %t.s
# RUN: sofa-sim %t.sofa --json --trace %t.trace.json | filecheck %s
# RUN: filecheck %s --check-prefix=TRACE < %t.trace.json
# The same program with the prefetch on the main queue: it waits behind load #3.
# RUN: sed 's/dma.prefetch/dma.load/' %s > %t.main.s
# RUN: sofa-as %t.main.s -o %t.main.sofa
# RUN: sofa-sim %t.main.sofa --json | filecheck %s --check-prefix=MAIN
#
# load #1 (4096 B): issue 0..12 (setup 4 + 8 on the channel 4..12), data at 112
# store (16 B) waits for it: 112..117, done 217
# load #3 waits for the store: 217..222, data at 322
# prefetch (4096 B): starts at 0 on its own queue, but the channel is busy
#   until 12: it streams 12..20, data at 120
# On the main queue instead it would run 222..234, data at 334.
#
# SRC: dma.prefetch dst=temp[r0+4096], src=dram[r0+0], rows=1, row_bytes=4096, src_stride=4096
# CHECK: "total_cycles": 322,
# CHECK: "dma_prefetch": {
# CHECK-NEXT: "instructions": 1,
# CHECK-NEXT: "busy_cycles": 120,
# MAIN: "total_cycles": 334,
# TRACE: "thread_name","args":{"name":"dma_prefetch"}

.symbol x const u8 [8192] @0
.symbol y output f32 [4] @8192
    dma.load dst=temp[r0+0], src=dram[r0+0], rows=1, row_bytes=4096, src_stride=4096 ; signal=0b1
    dma.store src=temp[r0+0], dst=dram[r0+8192], rows=1, row_bytes=16, dst_stride=16 ; wait=0b1 signal=0b10
    dma.load dst=temp[r0+8192], src=dram[r0+4096], rows=1, row_bytes=16, src_stride=16 ; wait=0b10
    dma.prefetch dst=temp[r0+4096], src=dram[r0+0], rows=1, row_bytes=4096, src_stride=4096
    halt
