# RUN: %sofa-as %s -o %t.sofa --target-hash 1111111111111111111111111111111111111111111111111111111111111111
# RUN: not %sofa-func %t.sofa --expected-hash 2222222222222222222222222222222222222222222222222222222222222222 2>&1 | filecheck %s
# RUN: %sofa-func %t.sofa --expected-hash 1111111111111111111111111111111111111111111111111111111111111111 | filecheck %s --check-prefix=OK
    halt
# CHECK: trap at pc=0 (program header): config-hash mismatch: program was built for 1111111111111111..., this machine is 2222222222222222...
# OK: instructions executed: 1
