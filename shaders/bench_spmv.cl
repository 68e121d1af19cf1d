// bench (conjugate gradient): y = A x for a CSR matrix with n rows.
#pragma OPENCL FP_CONTRACT OFF

__kernel void bench_spmv(__global const uint* rowptr, __global const uint* col, __global const float* val,
                         __global const float* x, __global float* y, uint n) {
    uint row = (uint)get_global_id(0);
    if (row >= n) return;
    float sum = 0.0f;
    for (uint k = rowptr[row]; k < rowptr[row + 1]; ++k) sum += val[k] * x[col[k]];
    y[row] = sum;
}
