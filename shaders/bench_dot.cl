// bench (conjugate gradient): partial[g] = sum of a[i] * b[i] over the 256
// elements 256 g .. 256 g + 255 (those below n), in order, by one work-item
// (see bench_dot.comp).
#pragma OPENCL FP_CONTRACT OFF

__kernel void bench_dot(__global const float* a, __global const float* b, __global float* partial, uint n) {
    uint g = (uint)get_global_id(0);
    uint first = g * 256u;
    if (first >= n) return;
    uint end = min(first + 256u, n);
    float sum = 0.0f;
    for (uint i = first; i < end; ++i) sum += a[i] * b[i];
    partial[g] = sum;
}
