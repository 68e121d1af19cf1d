// Built against the installed usm package by tests/package_test.cmake.
#include <usm/usm.hpp>

#include <cstdio>

static const char* source = R"(
__kernel void twice(__global int* v, uint n) {
    size_t i = get_global_id(0);
    if (i < n) v[i] *= 2;
}
)";

int main() try {
    usm::context ctx;
    const std::size_t n = 10000;
    usm::unique_ptr<int[]> v = ctx.alloc_unique<int>(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<int>(i);
    int launched = 0;
    for (usm::device& d : ctx.devices()) {
        if (d.backend() != usm::backend::opencl) continue;
        usm::kernel k = d.load_kernel(usm::opencl_c(source), "twice");
        d.launch(k, usm::grid{(n + 63) / 64}, usm::group{64}, usm::read_write(v.get(), n), std::uint32_t(n)).wait();
        ++launched;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (v[i] != static_cast<int>(i) << launched) {
            std::printf("consumer: v[%zu] = %d, expected %d\n", i, v[i], static_cast<int>(i) << launched);
            return 1;
        }
    }
    std::printf("consumer: %zu devices, %d launches, verified; %s\n", ctx.devices().size(), launched,
                ctx.stats().to_string().c_str());
    return 0;
} catch (const usm::error& e) {
    std::printf("consumer: %s\n", e.what());
    return 1;
}
