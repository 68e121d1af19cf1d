// bench: the smallest kernel that still touches its argument: work-item 0
// adds one to p[0]. Launched as one group of one item, it measures what a
// launch costs beyond the kernel itself.
// Arguments: read_write(p, count) of any count >= 1.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    uints p;
};

void main() {
    if (gl_GlobalInvocationID.x == 0) p.v[0] += 1u;
}
