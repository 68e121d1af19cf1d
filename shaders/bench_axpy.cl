// bench (conjugate gradient): y[i] += alpha * x[i] for i < n.
#pragma OPENCL FP_CONTRACT OFF

__kernel void bench_axpy(__global const float* x, __global float* y, float alpha, uint n) {
    uint i = (uint)get_global_id(0);
    if (i < n) y[i] += alpha * x[i];
}
