// bench (conjugate gradient): y[i] = x[i] for i < n.
__kernel void bench_copy(__global const float* x, __global float* y, uint n) {
    uint i = (uint)get_global_id(0);
    if (i < n) y[i] = x[i];
}
