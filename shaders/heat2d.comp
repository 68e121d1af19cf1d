// One explicit step of the 2D heat equation on an n x n row-major grid:
//   interior:  out = in + alpha * (up + down + left + right - 4 * center)
//   boundary (row or column 0 or n - 1): out = in
// Arguments (docs/kernel-abi.md): read(in, n * n), write(out, n * n), uint n, float alpha.
// Dispatch in 2D: x runs over columns, y over rows; the group size (16 x 16
// is typical) arrives through specialization constants 0 and 1.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer out_floats { float v[]; };

layout(push_constant, std430) uniform args {
    const_floats src;  // "in" and "out" are GLSL keywords
    out_floats dst;
    uint n;
    float alpha;
};

void main() {
    uint col = gl_GlobalInvocationID.x;
    uint row = gl_GlobalInvocationID.y;
    if (row >= n || col >= n) return;

    uint k = row * n + col;
    float center = src.v[k];
    if (row == 0 || col == 0 || row == n - 1 || col == n - 1) {
        dst.v[k] = center;
        return;
    }
    float sum = src.v[k - n] + src.v[k + n] + src.v[k - 1] + src.v[k + 1];
    dst.v[k] = center + alpha * (sum - 4.0 * center);
}
