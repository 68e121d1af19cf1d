// bench (conjugate gradient): y[i] = x[i] for i < n.
// Arguments: read(x, n), write(y, n), uint n.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer out_floats { float v[]; };

layout(push_constant, std430) uniform args {
    const_floats x;
    out_floats y;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) y.v[i] = x.v[i];
}
