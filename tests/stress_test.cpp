// tests/stress_test.cpp - eight host threads on one context for a bounded
// time, once per backend: host faults on the same pages (disjoint words) and
// on different pages while kernels run on other ranges, launches from every
// thread, host accesses that must wait for the kernel writing their page,
// allocations made and freed meanwhile. Every value is predicted exactly, and
// the page-state invariants are checked while the threads run and at the end.
//
// Ownership makes the values deterministic whatever the interleaving: word w
// of the shared array belongs to thread w % 8, and only that thread changes
// it, from the host or through kernels that touch its words only (but
// declare, and so migrate, whole pages that other threads are using).
//
// USM_STRESS_SECONDS (default 3) sets the time per backend; docs/concurrency.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_stress_add_cl.hpp>
#include <kernels/test_stress_add_comp.hpp>
#include <kernels/test_stress_gather_cl.hpp>
#include <kernels/test_stress_gather_comp.hpp>

#include "core/context_impl.hpp"
#include "support.hpp"

namespace {

using usm_test::device_test;
using clock_type = std::chrono::steady_clock;

constexpr std::uint32_t thread_count = 8;
constexpr std::size_t words_per_page = 4096 / sizeof(std::uint32_t);
constexpr std::size_t owned_per_page = words_per_page / thread_count;
constexpr std::size_t shared_pages = 16;
constexpr std::size_t shared_words = shared_pages * words_per_page;
constexpr std::size_t own_pages = 6;
constexpr std::size_t own_words = own_pages * words_per_page;
static_assert(words_per_page % thread_count == 0, "every page holds the same words of every thread");

std::uint32_t u32(std::size_t i) { return static_cast<std::uint32_t>(i); }
usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

std::chrono::milliseconds run_time() {
    double seconds = 3.0;
    if (const char* s = std::getenv("USM_STRESS_SECONDS"); s != nullptr && *s != '\0') seconds = std::atof(s);
    return std::chrono::milliseconds(static_cast<long long>(std::max(seconds, 0.1) * 1000));
}

/// The first few failures of any thread, with what was being done.
class failures {
public:
    void add(std::string what) {
        std::lock_guard lock(m_mutex);
        if (m_messages.size() < 20) m_messages.push_back(std::move(what));
        m_failed.store(true, std::memory_order_release);
    }
    bool any() const noexcept { return m_failed.load(std::memory_order_acquire); }
    std::vector<std::string> messages() const {
        std::lock_guard lock(m_mutex);
        return m_messages;
    }

private:
    mutable std::mutex m_mutex;
    std::vector<std::string> m_messages;
    std::atomic<bool> m_failed{false};
};

/// The kernels a thread launches: the test's shared ones, or (odd threads)
/// its own, built while the other threads already run.
struct kernel_set {
    usm::kernel add, gather, increment;
};

kernel_set load_kernels(usm::device& dev) {
    return {usm_test::load(dev, USM_TEST_KERNEL(test_stress_add)),
            usm_test::load(dev, USM_TEST_KERNEL(test_stress_gather)),
            usm_test::load(dev, USM_TEST_KERNEL(test_increment))};
}

/// What the whole run shares: the context, the shared array, and every
/// thread's private arrays (read back by the main thread at the end).
struct shared_state {
    usm::context* ctx = nullptr;
    usm::device* dev = nullptr;
    const kernel_set* common = nullptr;
    usm::ptr<std::uint32_t> shared;
    std::vector<usm::ptr<std::uint32_t>> own;       // per thread, own_words
    std::vector<usm::ptr<std::uint32_t>> gathered;  // per thread, shared_pages * owned_per_page
    clock_type::time_point deadline;
    failures failed;
};

/// Counters of one thread, summed in the report.
struct tally {
    std::uint64_t operations = 0;
    std::uint64_t launches = 0;
    std::uint64_t checked_words = 0;
    double longest = 0;  // seconds, of one operation: how far past the deadline a run may go
    const char* longest_was = "";
};

/// One host thread's run. Everything it expects is in `shared_expect` (its
/// words of the shared array, index k = word k * 8 + t) and `own_expect`.
class worker {
public:
    worker(shared_state& s, std::uint32_t t)
        : m_s(s), m_t(t), m_rng(0x5eed + t), m_shared_expect(shared_words / thread_count), m_own_expect(own_words) {}

    void run() noexcept {
        const char* doing = "starting";
        try {
            // Values set by the main thread before the threads started.
            for (std::size_t k = 0; k < m_shared_expect.size(); ++k) m_shared_expect[k] = initial_shared(word_of(k));
            for (std::size_t i = 0; i < own_words; ++i) m_own_expect[i] = initial_own(m_t, i);
            kernel_set mine;
            const kernel_set* k = m_s.common;
            if (m_t % 2 == 1) {
                doing = "loading kernels";
                const auto start = clock_type::now();
                mine = load_kernels(*m_s.dev);
                k = &mine;
                m_tally.longest = std::chrono::duration<double>(clock_type::now() - start).count();
                m_tally.longest_was = doing;
            }
            for (auto start = clock_type::now(); start < m_s.deadline && !m_s.failed.any();) {
                switch (pick(0, 9)) {
                    case 0:
                    case 1:
                        doing = "host increments of shared pages";
                        host_increment_shared();
                        break;
                    case 2:
                        doing = "host check of shared pages";
                        host_check_shared(pick_range(shared_pages, 4));
                        break;
                    case 3:
                    case 4:
                        doing = "kernel add on shared pages";
                        kernel_add_shared(*k);
                        break;
                    case 5:
                        doing = "kernel gather from shared pages";
                        kernel_gather_shared(*k);
                        break;
                    case 6:
                        doing = "host writes of own pages";
                        host_write_own();
                        break;
                    case 7:
                        doing = "kernel increment of own pages";
                        kernel_increment_own(*k);
                        break;
                    case 8:
                        doing = "host check of own pages";
                        host_check_own();
                        break;
                    case 9:
                        doing = "alloc, launch, free";
                        churn(*k);
                        break;
                }
                ++m_tally.operations;
                if (m_pending.size() > 6) {
                    doing = "waiting for events";
                    for (const usm::event& e : m_pending) e.wait();
                    m_pending.clear();
                }
                const auto end = clock_type::now();
                if (const double took = std::chrono::duration<double>(end - start).count(); took > m_tally.longest) {
                    m_tally.longest = took;
                    m_tally.longest_was = doing;
                }
                start = end;
            }
            doing = "waiting for events";
            for (const usm::event& e : m_pending) e.wait();
            m_pending.clear();
        } catch (const std::exception& e) {
            fail(std::string(doing) + ": " + e.what());
        }
    }

    static std::uint32_t initial_shared(std::size_t w) { return u32(w) * 7u + 3u; }
    static std::uint32_t initial_own(std::uint32_t t, std::size_t i) { return (t << 24) | u32(i); }

    std::uint32_t shared_expected(std::size_t w) const { return m_shared_expect[w / thread_count]; }
    std::uint32_t own_expected(std::size_t i) const { return m_own_expect[i]; }
    const tally& counts() const noexcept { return m_tally; }

private:
    struct page_range {
        std::size_t first, count;
    };

    std::size_t pick(std::size_t lo, std::size_t hi) {
        return std::uniform_int_distribution<std::size_t>(lo, hi)(m_rng);
    }
    page_range pick_range(std::size_t pages, std::size_t longest) {
        const std::size_t count = pick(1, longest);
        return {pick(0, pages - count), count};
    }
    std::size_t word_of(std::size_t k) const { return k * thread_count + m_t; }

    void fail(std::string what) { m_s.failed.add("thread " + std::to_string(m_t) + ": " + std::move(what)); }
    bool expect_word(const char* what, std::size_t index, std::uint32_t expected, std::uint32_t seen) {
        ++m_tally.checked_words;
        if (seen == expected) return true;
        fail(std::string(what) + ": word " + std::to_string(index) + " is " + std::to_string(seen) + ", expected " +
             std::to_string(expected));
        return false;
    }

    /* --- the shared array: same pages as every other thread ----------- */

    // Read-modify-write of this thread's words only: the other threads' words
    // in the same pages change meanwhile, from the host and from kernels.
    void host_increment_shared() {
        const page_range r = pick_range(shared_pages, 3);
        for (std::size_t w = r.first * words_per_page + m_t; w < (r.first + r.count) * words_per_page;
             w += thread_count) {
            m_s.shared[static_cast<std::ptrdiff_t>(w)] += 1;
            ++m_shared_expect[w / thread_count];
        }
    }

    void host_check_shared(page_range r) {
        for (std::size_t w = r.first * words_per_page + m_t; w < (r.first + r.count) * words_per_page;
             w += thread_count)
            if (!expect_word("shared", w, shared_expected(w), m_s.shared[static_cast<std::ptrdiff_t>(w)])) return;
    }

    // A kernel that adds to this thread's words of whole pages: the pages
    // move to the device and every other thread touching them faults and
    // waits. Checking right away (no wait()) is the host access to a range a
    // kernel is writing: the fault must wait for the kernel.
    void kernel_add_shared(const kernel_set& k) {
        const page_range r = pick_range(shared_pages, 4);
        const std::uint32_t add = u32(pick(1, 1000));
        auto base = m_s.shared + static_cast<std::ptrdiff_t>(r.first * words_per_page);
        const std::size_t n = r.count * owned_per_page;
        usm::event e = m_s.dev->launch(k.add, groups_for(n), usm::group{64},
                                       usm::read_write(base, r.count * words_per_page), u32(n), thread_count, m_t, add);
        ++m_tally.launches;
        for (std::size_t w = r.first * words_per_page + m_t; w < (r.first + r.count) * words_per_page;
             w += thread_count)
            m_shared_expect[w / thread_count] += add;
        switch (pick(0, 3)) {
            case 0:
            case 1:
                host_check_shared(r);
                break;
            case 2:
                e.wait();
                host_check_shared(r);
                break;
            default:
                m_pending.push_back(e);  // checked by a later operation or at the end
        }
    }

    // A launch that reads pages other threads are writing, and copies this
    // thread's words out: the other threads' host writes must wait for it,
    // and it must see this thread's earlier kernels (same queue) and writes.
    // Half the time this thread then overwrites the very words the kernel is
    // reading before looking at its output: that write must wait for the
    // kernel too, which still reads the old values.
    void kernel_gather_shared(const kernel_set& k) {
        const page_range r = pick_range(shared_pages, shared_pages);
        const std::uint32_t add = u32(pick(0, 1000));
        const std::size_t n = r.count * owned_per_page;
        auto in = m_s.shared + static_cast<std::ptrdiff_t>(r.first * words_per_page);
        usm::ptr<std::uint32_t> out = m_s.gathered[m_t];
        m_s.dev->launch(k.gather, groups_for(n), usm::group{64}, usm::read(in, r.count * words_per_page),
                        usm::write(out, n), u32(n), thread_count, m_t, add);
        ++m_tally.launches;
        auto word = [&](std::size_t i) { return r.first * words_per_page + i * thread_count + m_t; };
        std::vector<std::uint32_t> expected(n);
        for (std::size_t i = 0; i < n; ++i) expected[i] = shared_expected(word(i)) + add;
        if (pick(0, 1) == 0) {
            for (std::size_t i = 0; i < n; ++i) {
                m_s.shared[static_cast<std::ptrdiff_t>(word(i))] += 1;
                ++m_shared_expect[word(i) / thread_count];
            }
        }
        for (std::size_t i = 0; i < n; ++i)
            if (!expect_word("gathered", i, expected[i], out[static_cast<std::ptrdiff_t>(i)])) return;
    }

    /* --- this thread's own pages -------------------------------------- */

    void host_write_own() {
        usm::ptr<std::uint32_t> own = m_s.own[m_t];
        for (int j = 0; j < 32; ++j) {
            const std::size_t i = pick(0, own_words - 1);
            const std::uint32_t v = u32(m_rng());
            own[static_cast<std::ptrdiff_t>(i)] = v;
            m_own_expect[i] = v;
        }
    }

    void host_check_own() {
        const page_range r = pick_range(own_pages, own_pages);
        usm::ptr<std::uint32_t> own = m_s.own[m_t];
        for (std::size_t i = r.first * words_per_page; i < (r.first + r.count) * words_per_page; ++i)
            if (!expect_word("own", i, m_own_expect[i], own[static_cast<std::ptrdiff_t>(i)])) return;
    }

    void kernel_increment_own(const kernel_set& k) {
        const page_range r = pick_range(own_pages, own_pages);
        const std::size_t n = r.count * words_per_page;
        auto base = m_s.own[m_t] + static_cast<std::ptrdiff_t>(r.first * words_per_page);
        usm::event e = m_s.dev->launch(k.increment, groups_for(n), usm::group{64}, usm::read_write(base, n), u32(n));
        ++m_tally.launches;
        for (std::size_t i = r.first * words_per_page; i < (r.first + r.count) * words_per_page; ++i) ++m_own_expect[i];
        if (pick(0, 1) == 0) {
            // Straight after the launch: the fault waits for the kernel.
            const std::size_t i = r.first * words_per_page + pick(0, n - 1);
            expect_word("own after launch", i, m_own_expect[i], m_s.own[m_t][static_cast<std::ptrdiff_t>(i)]);
        } else {
            m_pending.push_back(e);
        }
    }

    // An allocation used and freed while the other threads fault and launch:
    // free() waits for the kernel still using it.
    void churn(const kernel_set& k) {
        const std::size_t n = pick(1, 3) * words_per_page - pick(0, 100);
        usm::ptr<std::uint32_t> p = m_s.ctx->alloc<std::uint32_t>(n);
        for (std::size_t i = 0; i < n; ++i)
            if (!expect_word("fresh", i, 0u, p[static_cast<std::ptrdiff_t>(i)])) break;
        for (std::size_t i = 0; i < n; i += 97) p[static_cast<std::ptrdiff_t>(i)] = u32(i) + m_t;
        m_s.dev->launch(k.increment, groups_for(n), usm::group{64}, usm::read_write(p, n), u32(n));
        ++m_tally.launches;
        if (pick(0, 1) == 0)
            for (std::size_t i = 0; i < n; i += 97)
                if (!expect_word("churn", i, u32(i) + m_t + 1, p[static_cast<std::ptrdiff_t>(i)])) break;
        m_s.ctx->free(p);
    }

    shared_state& m_s;
    std::uint32_t m_t;
    std::mt19937_64 m_rng;
    std::vector<std::uint32_t> m_shared_expect;
    std::vector<std::uint32_t> m_own_expect;
    std::vector<usm::event> m_pending;
    tally m_tally;
};

class stress : public device_test {};

TEST_P(stress, eight_threads_fault_and_launch_with_exact_values_and_invariants) {
    shared_state s;
    s.ctx = ctx.get();
    s.dev = dev;
    const kernel_set common = load_kernels(*dev);
    s.common = &common;
    s.shared = ctx->alloc<std::uint32_t>(shared_words);
    for (std::size_t w = 0; w < shared_words; ++w) s.shared[static_cast<std::ptrdiff_t>(w)] = worker::initial_shared(w);
    for (std::uint32_t t = 0; t < thread_count; ++t) {
        s.own.push_back(ctx->alloc<std::uint32_t>(own_words));
        for (std::size_t i = 0; i < own_words; ++i)
            s.own[t][static_cast<std::ptrdiff_t>(i)] = worker::initial_own(t, i);
        s.gathered.push_back(ctx->alloc<std::uint32_t>(shared_pages * owned_per_page));
    }
    const usm::stats before = ctx->stats();

    const auto length = run_time();
    const auto started = clock_type::now();
    s.deadline = started + length;
    std::vector<std::unique_ptr<worker>> workers;
    for (std::uint32_t t = 0; t < thread_count; ++t) workers.push_back(std::make_unique<worker>(s, t));
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

    // Meanwhile the page states must stay consistent at every moment the
    // context lock is free: check them while the threads fault and launch.
    std::uint64_t invariant_checks = 0;
    while (clock_type::now() < s.deadline && !s.failed.any()) {
        try {
            ctx->impl().check_invariants();
            ++invariant_checks;
        } catch (const std::exception& e) {
            s.failed.add(std::string("invariants during the run: ") + e.what());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    for (std::thread& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(clock_type::now() - started).count();

    for (const std::string& m : s.failed.messages()) ADD_FAILURE() << m;
    ASSERT_FALSE(s.failed.any());

    // Every word, read back by a thread that did not write it.
    for (std::size_t w = 0; w < shared_words; ++w)
        ASSERT_EQ(s.shared[static_cast<std::ptrdiff_t>(w)], workers[w % thread_count]->shared_expected(w))
            << "shared word " << w << " (thread " << w % thread_count << ")";
    for (std::uint32_t t = 0; t < thread_count; ++t)
        for (std::size_t i = 0; i < own_words; ++i)
            ASSERT_EQ(s.own[t][static_cast<std::ptrdiff_t>(i)], workers[t]->own_expected(i))
                << "thread " << t << " own word " << i;
    ctx->impl().check_invariants();

    tally total;
    for (const auto& w : workers) {
        total.operations += w->counts().operations;
        total.launches += w->counts().launches;
        total.checked_words += w->counts().checked_words;
        if (w->counts().longest > total.longest) {
            total.longest = w->counts().longest;
            total.longest_was = w->counts().longest_was;
        }
    }
    const usm::stats d = since(before);
    EXPECT_EQ(d.launches, total.launches);
    EXPECT_GT(d.host_read_faults + d.host_write_faults, 0u);
    EXPECT_GT(d.pages_to_host, 0u);
    EXPECT_GT(d.pages_to_device, 0u);
    EXPECT_GT(total.launches, thread_count);                    // every thread got to launch
    EXPECT_EQ(ctx->stats().allocations, 1 + 2 * thread_count);  // churn freed all of its own
    std::printf(
        "[ stress   ] %s, %s fault path: %.2f s, %llu operations, %llu launches, %llu words checked, "
        "%llu invariant checks, longest operation %.2f s (%s); %s\n",
        GetParam(), ctx->fault_handling() == usm::fault_path::userfaultfd ? "userfaultfd" : "signal", seconds,
        static_cast<unsigned long long>(total.operations), static_cast<unsigned long long>(total.launches),
        static_cast<unsigned long long>(total.checked_words), static_cast<unsigned long long>(invariant_checks),
        total.longest, total.longest_was, d.to_string().c_str());
}

USM_INSTANTIATE_PER_BACKEND(stress);

}  // namespace
