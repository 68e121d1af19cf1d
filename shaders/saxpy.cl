// saxpy: y[i] = a * x[i] + y[i] for i < n.
//
// FP_CONTRACT OFF: without it the compiler may fuse a * x + y into one fma,
// whose rounding differs from the separate multiply and add that a C++
// reference computes, and samples and tests compare results bit for bit.
#pragma OPENCL FP_CONTRACT OFF

__kernel void saxpy(__global const float* x, __global float* y, float a, uint n) {
    size_t i = get_global_id(0);
    if (i < n) y[i] = a * x[i] + y[i];
}
