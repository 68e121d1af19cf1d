// out[i] = the word at usm address in + 4 i, read through the page table.
// Model test (the twin of test_model_copy_any.comp).
#include "usm.cl"
__kernel void test_model_copy_any(__global usm_space* space, __global uint* out, ulong in, uint n) {
    size_t i = get_global_id(0);
    if (i < n) out[i] = usm_load_uint(space, in + 4 * i);
}
