// saxpy: y[i] = a * x[i] + y[i] for i < n.
// Arguments (docs/kernel-abi.md): read(x, n), read_write(y, n), float a, uint n.
#version 460
#extension GL_EXT_buffer_reference : require

// The layout line comes first: gl_WorkGroupSize read above it would be 1.
layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer floats { float v[]; };

layout(push_constant, std430) uniform args {
    const_floats x;
    floats y;
    float a;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) y.v[i] = a * x.v[i] + y.v[i];
}
