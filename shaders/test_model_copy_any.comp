// out[i] = the word at usm address in + 4 i for i < n, read through the page
// table (the source is not declared). Args: usm::any, write or read_write
// uint out, uint64 in, uint n; launched usm::replayable. Model test.
#version 460
#include "usm.glsl"
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints_out { uint v[]; };
layout(push_constant, std430) uniform args { usm_space space; uints_out out_; uint64_t in_; uint n; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) out_.v[i] = usm_load_uint(space, in_ + 4ul * i);
}
