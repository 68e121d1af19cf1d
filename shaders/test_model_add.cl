// x[i] += k for i < n. Model test.
__kernel void test_model_add(__global uint* x, uint n, uint k) {
    size_t i = get_global_id(0);
    if (i < n) x[i] += k;
}
