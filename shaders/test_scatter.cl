// test_scatter: stores values[i] at usm address where[i] through the page
// table, done[i] = 1 when allowed (the twin of test_scatter.comp; `target`
// is the declared range the stores are meant for).
#include "usm.cl"

__kernel void test_scatter(__global usm_space* space, __global const ulong* where, __global const uint* values,
                           __global uint* done, __global uint* target, uint n) {
    uint i = get_global_id(0);
    if (i < n) done[i] = usm_store_uint(space, where[i], values[i]) ? 1u : 0u;
}
