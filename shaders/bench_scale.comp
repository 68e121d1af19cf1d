// bench (conjugate gradient): x[i] *= alpha for i < n.
// Arguments: read_write(x, n), float alpha, uint n.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) buffer floats { float v[]; };

layout(push_constant, std430) uniform args {
    floats x;
    float alpha;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) x.v[i] *= alpha;
}
