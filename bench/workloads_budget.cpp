// bench/workloads_budget.cpp - streaming through a device memory budget: the
// same kernels over the same working set, once in a context whose device
// budget holds it all (in budget) and once in one whose budget holds half of
// it (usm: oversubscribed 2x, every window evicts another), both measured in
// this process and interleaved.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench.hpp"
#include "kernels.hpp"

namespace bench {

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t group = 256;
constexpr int warmup = 1;  // the in-budget copy becomes resident there; the other one reaches its steady state

/// One context on the workload's device with its own budget, one allocation
/// of `n` words (x[i] = i + what the launches added so far), and the passes
/// that stream through it window by window.
class budget_stream {
public:
    budget_stream(const std::string& backend, std::size_t budget, std::size_t n, std::size_t window, int passes)
        : m_ctx(make_context(backend, budget)),
          m_dev(&m_ctx->devices().front()),
          m_kernel(load(*m_dev, kernels::stream_add)),
          m_x(m_ctx->alloc_unique<std::uint32_t>(n)),
          m_n(n),
          m_window(window),
          m_passes(passes) {
        std::uint32_t* h = m_x.get().get();
        for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<std::uint32_t>(i);
    }

    usm::device& device() noexcept { return *m_dev; }

    /// One repetition: `passes` passes of one launch per window, queued
    /// without waiting, then one wait; spot-checks after the timing.
    double run(phases& ph, const std::string& label) {
        m_ctx->reset_stats();
        stopwatch sw(ph);
        usm::event last;
        for (int p = 0; p < m_passes; ++p) {
            for (std::size_t off = 0; off < m_n; off += m_window) {
                const std::size_t count = std::min(m_window, m_n - off);
                last = m_dev->launch(m_kernel, usm::grid{(count + group - 1) / group}, usm::group{group},
                                     usm::read_write(m_x.get() + static_cast<std::ptrdiff_t>(off), count),
                                     static_cast<std::uint32_t>(count), 1u);
            }
            ++m_added;
        }
        last.wait();
        const double seconds = sw.stop();
        m_last = m_ctx->stats();
        m_most_resident = std::max(m_most_resident, m_dev->resident_bytes());
        for (std::size_t off = 0; off < m_n; off += m_window) check(off, label);
        check(m_n - 1, label);
        return seconds;
    }

    /// Every word, after the measurement (throws mismatch).
    void verify_all(const std::string& label) const {
        const std::uint32_t* h = m_x.get().get();
        for (std::size_t i = 0; i < m_n; ++i)
            if (h[i] != static_cast<std::uint32_t>(i) + m_added) check(i, label);
    }

    const usm::stats& last_stats() const noexcept { return m_last; }
    std::uint64_t most_resident() const noexcept { return m_most_resident; }

private:
    static std::unique_ptr<usm::context> make_context(const std::string& backend, std::size_t budget) {
        usm::context_options co;
        co.backend = backend;
        co.device = backend + ":0";  // the device usm-bench's own context has
        co.device_budget = budget;
        return std::make_unique<usm::context>(co);
    }

    void check(std::size_t i, const std::string& label) const {
        const std::uint32_t got = m_x.get()[static_cast<std::ptrdiff_t>(i)];
        const std::uint32_t want = static_cast<std::uint32_t>(i) + m_added;
        if (got != want)
            throw mismatch(strprintf("oversubscribed/%s: x[%zu] = %u, expected %u", label.c_str(), i, got, want));
    }

    // The context comes first: it outlives the kernel and the allocation.
    std::unique_ptr<usm::context> m_ctx;
    usm::device* m_dev;
    usm::kernel m_kernel;
    usm::unique_ptr<std::uint32_t[]> m_x;
    std::size_t m_n;
    std::size_t m_window;
    int m_passes;
    std::uint32_t m_added = 0;
    usm::stats m_last{};
    std::uint64_t m_most_resident = 0;
};

std::string mib_text(std::uint64_t bytes) { return strprintf("%.0f MiB", static_cast<double>(bytes) / double(mib)); }

}  // namespace

/* --- oversubscribed streaming ------------------------------------------- */

result run_oversubscribed(const options& o, backend_setup& s) {
    const std::size_t budget = o.quick ? 16 * mib : 128 * mib;  // the oversubscribed context's
    const std::size_t bytes = 2 * budget;                       // the working set, both contexts
    const std::size_t window = o.quick ? 4 * mib : 16 * mib;
    const int passes = 2;
    const std::size_t n = bytes / sizeof(std::uint32_t);

    budget_stream in_budget(s.backend, 2 * bytes, n, window / sizeof(std::uint32_t), passes);
    budget_stream over(s.backend, budget, n, window / sizeof(std::uint32_t), passes);

    const double gib_per_run = static_cast<double>(passes) * static_cast<double>(bytes) / double(1 << 30);
    std::vector<variant> variants;
    variants.push_back({"usm", [&](phases& ph) { return over.run(ph, "oversubscribed-2x"); }, gib_per_run});
    variants.push_back({"in-budget", [&](phases& ph) { return in_budget.run(ph, "in-budget"); }, gib_per_run});
    result r =
        make_result("oversubscribed", s.backend, "seconds per GiB streamed",
                    strprintf("%d passes of read_write launches over %s windows of %s, queued, one wait: budget %s "
                              "(usm: oversubscribed 2x) vs %s (in-budget)",
                              passes, mib_text(window).c_str(), mib_text(bytes).c_str(),
                              mib_text(over.device().budget()).c_str(), mib_text(in_budget.device().budget()).c_str()),
                    measure(o.repetitions, variants, warmup));
    in_budget.verify_all("in-budget");
    over.verify_all("oversubscribed-2x");

    r.stats = over.last_stats();
    const usm::stats& in = in_budget.last_stats();
    r.extra.emplace_back("usm_gib_per_s", 1.0 / r.usm_seconds);
    for (const baseline_figure& b : r.baselines)
        if (b.name == "in-budget") {
            r.extra.emplace_back("in_budget_gib_per_s", 1.0 / b.seconds);
            r.extra.emplace_back("throughput_fraction", b.seconds / r.usm_seconds);
        }
    r.extra.emplace_back("usm_blocks_evicted", static_cast<double>(r.stats->blocks_evicted));
    r.extra.emplace_back("usm_pages_written_back", static_cast<double>(r.stats->pages_written_back));
    r.extra.emplace_back("usm_blocks_pinned", static_cast<double>(r.stats->blocks_pinned));
    r.extra.emplace_back("usm_blocks_in_place", static_cast<double>(r.stats->blocks_in_place));
    r.extra.emplace_back("usm_pages_in_place", static_cast<double>(r.stats->pages_in_place));
    r.extra.emplace_back("usm_most_resident_bytes", static_cast<double>(over.most_resident()));
    r.extra.emplace_back("in_budget_blocks_evicted", static_cast<double>(in.blocks_evicted));

    if (over.device().budget() != budget || in_budget.device().budget() != 2 * bytes)
        r.note = "USM_DEVICE_BUDGET overrides the budgets this workload sets: the figures do not compare what they say";
    else if (r.stats->blocks_evicted == 0)
        r.note = "usm evicted nothing over a working set twice its budget";
    if (in.blocks_evicted != 0)
        r.note += (r.note.empty() ? "" : "; ") + std::string("the in-budget context evicted blocks");
    if (over.most_resident() > over.device().budget() || in_budget.most_resident() > in_budget.device().budget()) {
        r.verified = false;
        r.failure = strprintf("resident bytes above the budget: %llu of %llu (usm), %llu of %llu (in-budget)",
                              static_cast<unsigned long long>(over.most_resident()),
                              static_cast<unsigned long long>(over.device().budget()),
                              static_cast<unsigned long long>(in_budget.most_resident()),
                              static_cast<unsigned long long>(in_budget.device().budget()));
    }
    add_target(r, "oversubscribed 2x throughput >= 50% of in-budget (usm <= 2 x)", "in-budget", 2.0);
    return r;
}

}  // namespace bench
