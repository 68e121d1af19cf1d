// Test kernel: out[i] = in[i] + lcg^rounds(i) for i < n, where
// lcg(v) = v * 1664525 + 1013904223 (mod 2^32). Reads `in` only at the end,
// after `rounds` iterations, so a launch takes as long as a test needs to
// catch a transfer that does not wait for it. Twin of test_slow_add.cl.
// Arguments: read(in, n), write(out, n), uint n, uint rounds.
// llvmpipe runs the loop on the CPU a few invocations at a time: a few
// thousand rounds over 64 Ki invocations already take a good part of a second.
#version 460
#extension GL_EXT_buffer_reference : require

// The layout line comes first: gl_WorkGroupSize read above it would be 1.
layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_uints { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    const_uints src;  // "in" and "out" are GLSL keywords
    uints dst;
    uint n;
    uint rounds;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= n) return;
    uint v = i;
    for (uint r = 0u; r < rounds; ++r) v = v * 1664525u + 1013904223u;
    dst.v[i] = src.v[i] + v;
}
