// oversubscribe: a working set four times the device's memory budget,
// streamed through every device of the context in windows.
//
//   oversubscribe [BUDGET_MIB]    (default 64; USM_DEVICE_BUDGET overrides it)
//
// One allocation of 4 x budget bytes of uint32, written by the host, then
// three passes; each pass launches a kernel over each 16 MiB window in turn
// (read_write over that window only) adding a per-pass value. The device can
// hold a quarter of the data at once, so usm evicts the least recently used
// blocks, writing back what only the device holds, to make room for the next
// window. The host spot-checks after each pass and checks every element at
// the end; the device's resident bytes are checked against its budget after
// every launch.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <kernels/stream_add_cl.hpp>
#include <kernels/stream_add_comp.hpp>

#include "sample.hpp"
#include "usm/usm.hpp"

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t group = 256;
constexpr int passes = 3;

/// What pass `p` (1-based) adds: one byte each, so a pass that was lost or
/// applied twice shows in the value (1, 256, 65536).
constexpr std::uint32_t added_by(int p) { return 1u << (8 * (p - 1)); }

/// x[i] after `p` passes.
constexpr std::uint32_t expected(std::size_t i, int p) {
    std::uint32_t v = static_cast<std::uint32_t>(i);
    for (int q = 1; q <= p; ++q) v += added_by(q);
    return v;
}

std::string mib_text(std::uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / static_cast<double>(mib));
    return buf;
}

}  // namespace

int main(int argc, char** argv) try {
    usm::context_options options;
    const std::size_t budget_mib = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 64;
    if (budget_mib < 8 || budget_mib > 1024) {
        std::fprintf(stderr, "oversubscribe: a budget of %zu MiB: give 8 to 1024\n", budget_mib);
        return 2;
    }
    options.device_budget = budget_mib * mib;
    usm::context ctx(options);
    bool all_ok = true;
    for (usm::device& gpu : ctx.devices()) {
        ctx.reset_stats();
        // USM_DEVICE_BUDGET overrides the option: size the work by what the
        // device was given.
        const std::uint64_t budget = gpu.budget();
        if (budget < 8 * mib || budget > 1024 * mib) {
            std::fprintf(stderr, "oversubscribe: %s has a budget of %s: this sample wants 8 to 1024 MiB\n",
                         gpu.name().c_str(), mib_text(budget).c_str());
            all_ok = false;
            continue;
        }
        const std::size_t n = 4 * budget / sizeof(std::uint32_t);
        // A quarter of the budget at most, so that a window and the blocks
        // its unaligned ends share always fit.
        const std::size_t window = std::min<std::size_t>(16 * mib, budget / 4 / 4096 * 4096) / sizeof(std::uint32_t);
        usm::unique_ptr<std::uint32_t[]> x = ctx.alloc_unique<std::uint32_t>(n);
        for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
        usm::kernel add = sample::load(gpu, usm::kernels::stream_add_comp, usm::kernels::stream_add_cl, "stream_add");

        bool ok = true;
        std::uint64_t most_resident = 0;
        auto check = [&](std::size_t i, int p) {
            const std::uint32_t got = x[i];
            if (got == expected(i, p)) return true;
            std::fprintf(stderr, "oversubscribe: %s, after pass %d: x[%zu] = %#x, expected %#x\n", gpu.name().c_str(),
                         p, i, got, expected(i, p));
            return false;
        };
        for (int p = 1; p <= passes && ok; ++p) {
            for (std::size_t off = 0; off < n; off += window) {
                const std::size_t count = std::min(window, n - off);
                gpu.launch(add, usm::grid{(count + group - 1) / group}, usm::group{group},
                           usm::read_write(x.get() + static_cast<std::ptrdiff_t>(off), count),
                           static_cast<std::uint32_t>(count), added_by(p))
                    .wait();
                const std::uint64_t resident = gpu.resident_bytes();
                most_resident = std::max(most_resident, resident);
                if (resident > budget) {
                    std::fprintf(stderr, "oversubscribe: %s, pass %d, window at %s: %s resident, budget %s\n",
                                 gpu.name().c_str(), p, mib_text(off * sizeof(std::uint32_t)).c_str(),
                                 mib_text(resident).c_str(), mib_text(budget).c_str());
                    ok = false;
                }
            }
            // Spot checks: both ends of every window, and every (n / 61)th word.
            for (std::size_t off = 0; off < n && ok; off += window)
                ok = check(off, p) && check(std::min(off + window, n) - 1, p);
            for (std::size_t i = 0; i < n && ok; i += n / 61) ok = check(i, p);
        }
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n && ok; ++i) {
            if (x[i] != expected(i, passes) && wrong++ < 8) check(i, passes);
        }
        ok = ok && wrong == 0;
        if (wrong > 0) std::fprintf(stderr, "oversubscribe: %s: %zu elements wrong\n", gpu.name().c_str(), wrong);

        const usm::stats s = ctx.stats();
        if (s.blocks_evicted == 0 || s.pages_written_back == 0) {
            std::fprintf(stderr, "oversubscribe: %s: nothing was %s, yet the data is 4x the budget\n",
                         gpu.name().c_str(), s.blocks_evicted == 0 ? "evicted" : "written back");
            ok = false;
        }
        sample::report("oversubscribe", gpu,
                       mib_text(n * sizeof(std::uint32_t)) + " through a " + mib_text(budget) + " budget, " +
                           std::to_string(passes) + " passes of " + mib_text(window * sizeof(std::uint32_t)) +
                           " windows",
                       ok, s);
        std::printf(
            "        budget %s, most resident %s; evicted %llu blocks (%llu pages), %llu pages written back, "
            "%llu blocks pinned, %llu blocks turned to in-place access\n",
            mib_text(budget).c_str(), mib_text(most_resident).c_str(),
            static_cast<unsigned long long>(s.blocks_evicted), static_cast<unsigned long long>(s.pages_evicted),
            static_cast<unsigned long long>(s.pages_written_back), static_cast<unsigned long long>(s.blocks_pinned),
            static_cast<unsigned long long>(s.blocks_in_place));
        all_ok = all_ok && ok;
    }
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "oversubscribe: %s\n", e.what());
    return 2;
}
