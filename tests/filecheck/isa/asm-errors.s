# RUN: not %sofa-as %s -o %t.sofa 2>&1 | filecheck %s
    set rd=r1, imm=0
    dlzs.score q=token[r0+0], khat=temp[r0+0], out=temp[r0+0], lanes=5000, keys=64, depth=64
# CHECK: asm-errors.s:3:64: dlzs.score: field 'lanes' = 5000 out of range [1, 4095]
