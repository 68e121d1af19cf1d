// heat2d: a 5-point stencil on an N x N grid iterated on the device, the host
// reading a few cells every k iterations (each read brings back only the page
// holding the cell). Checked against the same iteration on the CPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include <kernels/heat2d_cl.hpp>
#include <kernels/heat2d_comp.hpp>

#include "sample.hpp"
#include "usm/usm.hpp"

namespace {

void cpu_step(const std::vector<float>& in, std::vector<float>& out, std::uint32_t n, float alpha) {
    for (std::uint32_t i = 0; i < n; ++i) {
        for (std::uint32_t j = 0; j < n; ++j) {
            const std::size_t c = std::size_t{i} * n + j;
            if (i == 0 || j == 0 || i == n - 1 || j == n - 1) {
                out[c] = in[c];
                continue;
            }
            out[c] = in[c] + alpha * (in[c - n] + in[c + n] + in[c - 1] + in[c + 1] - 4.0f * in[c]);
        }
    }
}

}  // namespace

int main(int argc, char** argv) try {
    const std::uint32_t n = argc > 1 ? static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 0)) : 512;
    const int iterations = 200, every = 20;
    const float alpha = 0.2f;
    const std::size_t cells = std::size_t{n} * n;
    const std::size_t probes[] = {cells / 2 + n / 2, cells / 3 + n / 4, cells / 4 + 3 * n / 4, cells * 2 / 3 + n / 3};

    // The CPU reference, once.
    std::vector<float> ref(cells, 0.0f), next(cells);
    for (std::uint32_t i = n / 4; i < 3 * n / 4; ++i)
        for (std::uint32_t j = n / 4; j < 3 * n / 4; ++j) ref[std::size_t{i} * n + j] = 100.0f;
    std::vector<std::vector<float>> ref_probes;
    for (int it = 1; it <= iterations; ++it) {
        cpu_step(ref, next, n, alpha);
        std::swap(ref, next);
        if (it % every == 0) {
            std::vector<float> row;
            for (std::size_t p : probes) row.push_back(ref[p]);
            ref_probes.push_back(row);
        }
    }

    usm::context ctx;
    bool all_ok = true;
    for (usm::device& gpu : ctx.devices()) {
        ctx.reset_stats();
        usm::unique_ptr<float[]> a = ctx.alloc_unique<float>(cells);
        usm::unique_ptr<float[]> b = ctx.alloc_unique<float>(cells);
        for (std::uint32_t i = n / 4; i < 3 * n / 4; ++i)
            for (std::uint32_t j = n / 4; j < 3 * n / 4; ++j) a[std::size_t{i} * n + j] = 100.0f;
        usm::kernel step = sample::load(gpu, usm::kernels::heat2d_comp, usm::kernels::heat2d_cl, "heat2d");

        // The device may contract a*b+c into one rounding: allow a few ulps.
        auto close = [](float got, float want) {
            return std::fabs(got - want) <= 1e-4f * std::max(1.0f, std::fabs(want));
        };
        bool ok = true;
        float* in = a.get().get();
        float* out = b.get().get();
        for (int it = 1; it <= iterations; ++it) {
            gpu.launch(step, usm::grid{(n + 15) / 16, (n + 15) / 16}, usm::group{16, 16}, usm::read(in, cells),
                       usm::write(out, cells), n, alpha);
            std::swap(in, out);
            if (it % every == 0) {  // the host peeks at a few cells: waits for the kernel, moves 4 pages
                const auto& want = ref_probes[static_cast<std::size_t>(it / every - 1)];
                for (std::size_t p = 0; p < std::size(probes); ++p) {
                    if (!close(in[probes[p]], want[p])) {
                        std::fprintf(stderr, "heat2d: iteration %d: cell %zu = %g, expected %g\n", it, probes[p],
                                     in[probes[p]], want[p]);
                        ok = false;
                    }
                }
            }
        }
        float worst = 0.0f;
        for (std::size_t c = 0; c < cells; ++c) worst = std::max(worst, std::fabs(in[c] - ref[c]));
        ok = ok && worst <= 1e-3f;
        char what[160];
        std::snprintf(what, sizeof what, "%ux%u, %d iterations, 4 cells read every %d, max |error| %.2g", n, n,
                      iterations, every, static_cast<double>(worst));
        sample::report("heat2d", gpu, what, ok, ctx.stats());
        all_ok = all_ok && ok;
    }
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "heat2d: %s\n", e.what());
    return 2;
}
