// saxpy: y = a * x + y on every device of the context, with the host checking
// y after every round. No buffer copy is written anywhere: x and y are usm
// memory that host loops and kernels both touch.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <kernels/saxpy_cl.hpp>
#include <kernels/saxpy_comp.hpp>

#include "sample.hpp"
#include "usm/usm.hpp"

int main(int argc, char** argv) try {
    const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : std::size_t{1} << 22;
    const int rounds = 3;
    const float a = 2.0f;
    usm::context ctx;
    bool all_ok = true;
    for (usm::device& gpu : ctx.devices()) {
        ctx.reset_stats();
        usm::unique_ptr<float[]> x = ctx.alloc_unique<float>(n);
        usm::unique_ptr<float[]> y = ctx.alloc_unique<float>(n);
        for (std::size_t i = 0; i < n; ++i) {  // plain host loops over usm memory
            x[i] = static_cast<float>(i % 1000);
            y[i] = 1.0f;
        }
        usm::kernel saxpy = sample::load(gpu, usm::kernels::saxpy_comp, usm::kernels::saxpy_cl, "saxpy");

        bool ok = true;
        for (int r = 1; r <= rounds; ++r) {
            gpu.launch(saxpy, usm::grid{(n + 255) / 256}, usm::group{256}, usm::read(x.get(), n),
                       usm::read_write(y.get(), n), a, static_cast<std::uint32_t>(n))
                .wait();
            // Every value is a small integer, so float arithmetic is exact.
            for (std::size_t i = 0; i < n && ok; ++i) {
                const float expected = 1.0f + static_cast<float>(r) * a * static_cast<float>(i % 1000);
                if (y[i] != expected) {
                    std::fprintf(stderr, "saxpy: round %d: y[%zu] = %g, expected %g\n", r, i, y[i], expected);
                    ok = false;
                }
            }
        }
        sample::report("saxpy", gpu,
                       "n=" + std::to_string(n) + ", " + std::to_string(rounds) + " rounds, host check each", ok,
                       ctx.stats());
        all_ok = all_ok && ok;
    }
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "saxpy: %s\n", e.what());
    return 2;
}
