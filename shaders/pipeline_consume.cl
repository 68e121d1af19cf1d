// The pipeline sample's consumer (OpenCL): a [1 2 1] smoothing of the
// producer's signal, edges clamped, plus the frame number.
__kernel void pipeline_consume(__global const uint* signal, __global uint* smooth, uint n, uint frame) {
    uint i = (uint)get_global_id(0);
    if (i >= n) return;
    uint left = signal[i > 0 ? i - 1 : i];
    uint right = signal[i + 1 < n ? i + 1 : i];
    smooth[i] = left + 2u * signal[i] + right + frame;
}
