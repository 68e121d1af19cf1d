// bench: work-item 0 adds one to p[0] (see bench_tick.comp).
__kernel void bench_tick(__global uint* p) {
    if (get_global_id(0) == 0) p[0] += 1u;
}
