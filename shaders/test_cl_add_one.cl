// Test kernel: x[i] += 1 for i < n.
__kernel void test_cl_add_one(__global uint* x, uint n) {
    size_t i = get_global_id(0);
    if (i < n) x[i] += 1u;
}
