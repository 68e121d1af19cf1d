// bench (conjugate gradient): y[i] += alpha * x[i] for i < n.
// Arguments: read(x, n), read_write(y, n), float alpha, uint n.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer floats { float v[]; };

layout(push_constant, std430) uniform args {
    const_floats x;
    floats y;
    float alpha;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) y.v[i] += alpha * x.v[i];
}
