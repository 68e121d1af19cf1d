// bench: out[i] = (i * 2654435761) ^ seed for i < n, grid-stride (256 MiB of
// uints is more work-groups than one dimension allows).
// Arguments (docs/kernel-abi.md): write(out, n), uint n, uint seed.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    uints dst;
    uint n;
    uint seed;
};

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += stride) dst.v[i] = (i * 2654435761u) ^ seed;
}
