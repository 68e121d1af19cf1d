// heat2d: one explicit step of the heat equation on an n x n row-major grid.
//
// Launched over a 2D range: i = row = get_global_id(1), j = column =
// get_global_id(0), so consecutive work-items touch consecutive floats. The
// global range may exceed n (it is a whole number of work-groups): items
// outside the grid do nothing. Boundary cells (row or column 0 or n - 1)
// keep their value; interior cells take
//     out = in + alpha * (up + down + left + right - 4 * center).
// FP_CONTRACT OFF and the explicit order of the sum make the result
// reproducible bit for bit by the same expression in C++.
#pragma OPENCL FP_CONTRACT OFF

__kernel void heat2d(__global const float* in, __global float* out, uint n, float alpha) {
    size_t i = get_global_id(1);
    size_t j = get_global_id(0);
    if (i >= n || j >= n) return;
    size_t c = i * n + j;
    if (i == 0 || j == 0 || i == n - 1 || j == n - 1) {
        out[c] = in[c];
        return;
    }
    float center = in[c];
    float sum = in[c - n] + in[c + n];  // up + down
    sum = sum + in[c - 1];              // + left
    sum = sum + in[c + 1];              // + right
    float laplacian = sum - 4.0f * center;
    out[c] = center + alpha * laplacian;
}
