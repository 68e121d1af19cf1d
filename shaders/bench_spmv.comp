// bench (conjugate gradient): y = A x for a CSR matrix with n rows.
// Arguments: read(rowptr, n + 1), read(col, nnz), read(val, nnz),
// read(x, n), write(y, n), uint n.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_uints { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer out_floats { float v[]; };

layout(push_constant, std430) uniform args {
    const_uints rowptr;
    const_uints col;
    const_floats val;
    const_floats x;
    out_floats y;
    uint n;
};

void main() {
    uint row = gl_GlobalInvocationID.x;
    if (row >= n) return;
    float sum = 0.0;
    for (uint k = rowptr.v[row]; k < rowptr.v[row + 1]; ++k) sum += val.v[k] * x.v[col.v[k]];
    y.v[row] = sum;
}
