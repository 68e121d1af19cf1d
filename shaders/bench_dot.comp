// bench (conjugate gradient): partial[g] = sum of a[i] * b[i] over the 256
// elements 256 g .. 256 g + 255 (those below n), summed in order by one
// work-item: no shared memory and no barriers, which CPU devices run far
// faster than a work-group tree. The host adds the partial sums.
// Arguments: read(a, n), read(b, n), write(partial, (n + 255) / 256), uint n.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer out_floats { float v[]; };

layout(push_constant, std430) uniform args {
    const_floats a;
    const_floats b;
    out_floats partial;
    uint n;
};

void main() {
    uint g = gl_GlobalInvocationID.x;
    uint first = g * 256u;
    if (first >= n) return;
    uint end = min(first + 256u, n);
    float sum = 0.0;
    for (uint i = first; i < end; ++i) sum += a.v[i] * b.v[i];
    partial.v[g] = sum;
}
