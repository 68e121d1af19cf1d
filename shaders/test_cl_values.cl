// Test kernel: stores its value arguments, one per ulong, so a test can check
// that each reached the kernel with its exact bytes.
__kernel void test_cl_values(__global ulong* out, ulong a, int b, float c, uchar d, short e) {
    if (get_global_id(0) != 0) return;
    out[0] = a;
    out[1] = (ulong)(long)b;
    out[2] = (ulong)as_uint(c);
    out[3] = (ulong)d;
    out[4] = (ulong)(long)e;
}
