// bench (conjugate gradient): x[i] *= alpha for i < n.
__kernel void bench_scale(__global float* x, float alpha, uint n) {
    uint i = (uint)get_global_id(0);
    if (i < n) x[i] *= alpha;
}
