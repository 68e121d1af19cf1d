// test_gather: out[i] = the uint at usm address where[i], loaded through the
// page table (the twin of test_gather.comp).
#include "usm.cl"

__kernel void test_gather(__global usm_space* space, __global const ulong* where, __global uint* out, uint n) {
    uint i = get_global_id(0);
    if (i < n) out[i] = usm_load_uint(space, where[i]);
}
