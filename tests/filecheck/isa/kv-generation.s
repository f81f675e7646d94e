# On-demand K/V generation by hand: kvmark -> kvlist -> kvgen over two hidden
# chunks (bias first, then accumulate) -> dma.scatter. Lanes 0 and 1 select keys
# {1, 5} and {5, 6, 2} (-1 is an empty slot), so exactly keys 1, 2, 5, 6 are
# generated: K_i = b + x_i W with x_i = [i, 2i, 1, 0], W = [[1,0],[0,1],[1,1],[2,0]],
# b = [10, 20], i.e. K_i = [11 + i, 21 + 2i]; the other rows stay zero. kvlist
# clears the bits it lists, so the stored bitmap byte is 0.
#
# RUN: %sofa-as %s -o %t.sofa
# RUN: sofa-sim %t.sofa --print | filecheck %s
# RUN: sofa-sim %t.sofa --json | filecheck %s --check-prefix=WORK
# An index beyond the bitmap traps:
# RUN: sed 's/keys=8/keys=6/' %s > %t.bad.s
# RUN: %sofa-as %t.bad.s -o %t.bad.sofa
# RUN: not %sofa-func %t.bad.sofa 2>&1 | filecheck %s --check-prefix=TRAP
#
# CHECK:      output k: float32 [8, 2]
# CHECK-NEXT: {{\[\[}} 0.  0.]
# CHECK-NEXT: [12. 23.]
# CHECK-NEXT: [13. 25.]
# CHECK-NEXT: [ 0.  0.]
# CHECK-NEXT: [ 0.  0.]
# CHECK-NEXT: [16. 31.]
# CHECK-NEXT: [17. 33.]
# CHECK-NEXT: [ 0.  0.]]
# CHECK:      output list: int32 [5]
# CHECK-NEXT: [4 1 2 5 6]
# CHECK:      output bitmap: uint8 [1]
# CHECK-NEXT: [0]
# The two kvgen chunks run on the K/V-generation unit.
# WORK: "kvgen": {
# WORK: "instructions": 2,
# TRAP: trap at pc=2 (kvmark {{.*}}keys=6): index 6 is outside the bitmap's 6 keys
.symbol idx const i32 [2,3] @0
.symbol x const f32 [8,4] @64
.symbol w const f32 [4,2] @192
.symbol b const f32 [2] @256
.symbol k output f32 [8,2] @320
.symbol list output i32 [5] @448
.symbol bitmap output u8 [1] @512
.data 0 0100000005000000ffffffff050000000600000002000000
.data 64 00000000000000000000803f000000000000803f000000400000803f0000000000000040000080400000803f00000000000040400000c0400000803f0000000000008040000000410000803f000000000000a040000020410000803f000000000000c040000040410000803f000000000000e040000060410000803f00000000
.data 192 0000803f00000000000000000000803f0000803f0000803f0000004000000000
.data 256 000020410000a041
    dma.load dst=temp[r0+0], src=dram[r0+0], rows=1, row_bytes=24, src_stride=24
    barrier
    kvmark idx=temp[r0+0], bitmap=temp[r0+64], lanes=2, m=3, keys=8
    barrier
    set rd=r5, imm=0
    kvlist bitmap=temp[r0+64], out=temp[r0+128], key_base=r5, window=8, clear=1
    barrier
    dma.gather dst=token[r0+0], src=dram[r0+64], list=temp[r0+128], key_base=r5, window=8, row_bytes=8, src_stride=16
    dma.load dst=weight[r0+0], src=dram[r0+192], rows=1, row_bytes=16, src_stride=16
    dma.load dst=temp[r0+192], src=dram[r0+256], rows=1, row_bytes=8, src_stride=8
    barrier
    kvgen x=token[r0+0], w=weight[r0+0], out=token[r0+1024], list=temp[r0+128], key_base=r5, window=8, hidden=2, cols=2, dtype=f32, bias=temp[r0+192], mode=2
    barrier
    dma.gather dst=token[r0+0], src=dram[r0+72], list=temp[r0+128], key_base=r5, window=8, row_bytes=8, src_stride=16
    dma.load dst=weight[r0+0], src=dram[r0+208], rows=1, row_bytes=16, src_stride=16
    barrier
    kvgen x=token[r0+0], w=weight[r0+0], out=token[r0+1024], list=temp[r0+128], key_base=r5, window=8, hidden=2, cols=2, dtype=f32, bias=temp[r0+192], mode=1
    barrier
    dma.scatter src=token[r0+1024], dst=dram[r0+320], list=temp[r0+128], key_base=r5, window=8, row_bytes=8, dst_stride=8
    dma.store src=temp[r0+128], dst=dram[r0+448], rows=1, row_bytes=20, dst_stride=20
    dma.store src=temp[r0+64], dst=dram[r0+512], rows=1, row_bytes=1, dst_stride=1
    barrier
    halt
