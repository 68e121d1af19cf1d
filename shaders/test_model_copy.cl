// out[i] = in[i] for i < n (the ranges do not overlap). Model test.
__kernel void test_model_copy(__global const uint* in, __global uint* out, uint n) {
    size_t i = get_global_id(0);
    if (i < n) out[i] = in[i];
}
