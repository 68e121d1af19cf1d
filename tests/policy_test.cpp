// tests/policy_test.cpp - the policies (include/usm/policy.hpp) on the fake
// backend: read-ahead, eviction, thrashing and copy path, built-in and a
// program's own, with exact counts. No driver is involved: these test the
// core's decisions (tests/fake_backend.hpp); the product is tested on
// lavapipe and PoCL by the device suites.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/context_impl.hpp"
#include "fake_backend.hpp"
#include "support.hpp"
#include "usm/usm.hpp"

namespace {

constexpr std::size_t block_bytes = std::size_t{64} << 10;  // the fake contexts' block
constexpr std::size_t block_pages = block_bytes / 4096;
constexpr std::size_t block_words = block_bytes / sizeof(std::uint32_t);
constexpr std::size_t page_words = 4096 / sizeof(std::uint32_t);

/// Kernels of the fake device: fill (write x, n, seed) writes fill_value(i,
/// seed); increment (read_write x, n) adds one.
void define_kernels() {
    usm_test::fake::define_kernel("fill", [](const usm_test::fake::launch_view& l) {
        auto* x = l.memory<std::uint32_t>(0);
        const auto n = l.value<std::uint32_t>(1), seed = l.value<std::uint32_t>(2);
        for (std::uint32_t i = 0; i < n; ++i) x[i] = usm_test::fill_value(i, seed);
    });
    usm_test::fake::define_kernel("increment", [](const usm_test::fake::launch_view& l) {
        auto* x = l.memory<std::uint32_t>(0);
        const auto n = l.value<std::uint32_t>(1);
        for (std::uint32_t i = 0; i < n; ++i) ++x[i];
    });
}

class policies : public testing::Test {
protected:
    void open(usm::context_options o = usm_test::fake::context_options(), const usm_test::fake::options& device = {}) {
        define_kernels();
        usm_test::fake::install(device);
        ctx = std::make_unique<usm::context>(o);
        dev = &ctx->devices().front();
        fake = &usm_test::fake::last_device();
        fill = dev->load_kernel(usm::opencl_c(""), "fill");
        increment = dev->load_kernel(usm::opencl_c(""), "increment");
    }
    void TearDown() override {
        if (ctx) ctx->impl().check_invariants();
    }

    usm::stats since(const usm::stats& before) const { return usm_test::stats_delta(ctx->stats(), before); }

    /// The words of `x` made device-exclusive by the fill kernel.
    void fill_on_device(usm::ptr<std::uint32_t> x, std::size_t n, std::uint32_t seed) {
        dev->launch(fill, usm::grid{1}, usm::group{1}, usm::write(x, n), static_cast<std::uint32_t>(n), seed).wait();
    }
    void bump(usm::ptr<std::uint32_t> x, std::size_t n) {
        dev->launch(increment, usm::grid{1}, usm::group{1}, usm::read_write(x, n), static_cast<std::uint32_t>(n))
            .wait();
    }
    std::size_t device_pages(usm::ptr<std::uint32_t> x, std::size_t n) const {
        return ctx->query(x, n).device_pages.at(0);
    }

    std::unique_ptr<usm::context> ctx;
    usm::device* dev = nullptr;
    usm_test::fake::device* fake = nullptr;
    usm::kernel fill, increment;
};

/* --- read-ahead ------------------------------------------------------------ */

// density: faults at pages 0, 1, 3, 9, 25, 41, 57, each window twice the
// run before it, up to a block (16 pages) ahead; off: each page alone.
TEST_F(policies, a_sequential_sweep_takes_seven_faults_with_density_read_ahead_and_one_a_page_without) {
    struct expected {
        const char* read_ahead;
        std::uint64_t faults, pages_read_ahead, batches;
    };
    for (const expected& e : {expected{"density", 7, 57, 7}, expected{"off", 64, 0, 64}}) {
        SCOPED_TRACE(e.read_ahead);
        usm::context_options o = usm_test::fake::context_options();
        o.read_ahead = e.read_ahead;
        open(o);
        const std::size_t n = 4 * block_words;  // 64 pages, device-exclusive
        auto x = ctx->alloc<std::uint32_t>(n);
        fill_on_device(x, n, 7);
        const usm::stats before = ctx->stats();
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], usm_test::fill_value(i, 7)) << i;
        const usm::stats d = since(before);
        EXPECT_EQ(d.host_read_faults, e.faults);
        EXPECT_EQ(d.pages_to_host, 64u);
        EXPECT_EQ(d.pages_read_ahead, e.pages_read_ahead);
        EXPECT_EQ(d.transfer_batches, e.batches);
        ctx->impl().check_invariants();
        ctx->free(x);
        ctx.reset();
    }
}

TEST_F(policies, density_read_ahead_fills_a_region_once_more_than_half_is_home) {
    open();
    const std::size_t n = block_words;
    auto x = ctx->alloc<std::uint32_t>(n);
    fill_on_device(x, n, 3);
    const usm::stats before = ctx->stats();
    // Scattered reads come alone...
    EXPECT_EQ(x[0 * page_words], usm_test::fill_value(0 * page_words, 3));
    EXPECT_EQ(x[2 * page_words], usm_test::fill_value(2 * page_words, 3));
    EXPECT_EQ(x[9 * page_words], usm_test::fill_value(9 * page_words, 3));
    EXPECT_EQ(since(before).pages_to_host, 3u);
    EXPECT_EQ(since(before).pages_read_ahead, 0u);
    // ... until a region is more than half home: page 1 makes pages 0-3
    // three quarters home, so page 3 comes along.
    EXPECT_EQ(x[1 * page_words], usm_test::fill_value(1 * page_words, 3));
    const usm::stats d = since(before);
    EXPECT_EQ(d.host_read_faults, 4u);
    EXPECT_EQ(d.pages_to_host, 5u);
    EXPECT_EQ(d.pages_read_ahead, 1u);
    EXPECT_EQ(ctx->query(x + 3 * page_words, 1).host_pages, 1u);
    EXPECT_EQ(ctx->query(x + 4 * page_words, 1).host_pages, 0u);
}

/// A fault over a bitmap of host copies, for asking a policy directly.
class bitmap_fault final : public usm::host_fault_view {
public:
    explicit bitmap_fault(std::vector<bool> held, std::size_t block) : m_held(std::move(held)) {
        page_count = m_held.size();
        block_pages = block;
    }
    bool host_valid(std::size_t p) const noexcept override { return p < m_held.size() && m_held[p]; }
    std::size_t host_valid_count(std::size_t first, std::size_t end) const noexcept override {
        std::size_t n = 0;
        for (std::size_t p = first; p < end; ++p) n += host_valid(p);
        return n;
    }

private:
    std::vector<bool> m_held;
};

/// The density rule as documented, page by page: the largest aligned region
/// more than half held (counting the region chosen so far as held), then the
/// sweep window of twice the held run before the page, up to a block.
usm::page_range density_reference(const bitmap_fault& f) {
    usm::page_range r{f.page, f.page + 1};
    for (std::size_t size = 2; size <= f.block_pages; size *= 2) {
        const std::size_t lo = f.page & ~(size - 1), hi = std::min(lo + size, f.page_count);
        std::size_t valid = 0;
        for (std::size_t q = lo; q < hi; ++q) valid += (q >= r.first && q < r.end) || f.host_valid(q);
        if (2 * valid > size) r = {lo, hi};
    }
    std::size_t run = 0;
    while (run < f.block_pages && run < f.page && f.host_valid(f.page - 1 - run)) ++run;
    if (run > 0) r.end = std::max(r.end, std::min({f.page + 2 * run, f.page + f.block_pages, f.page_count}));
    return r;
}

TEST(density_read_ahead, answers_as_its_rule_over_random_host_copies_with_one_count_per_half_region) {
    auto density = usm::make_read_ahead_policy("density");
    std::uint32_t seed = 12345;
    auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
    for (int trial = 0; trial < 400; ++trial) {
        const std::size_t block = trial % 2 ? 16 : 512;
        const std::size_t pages = 3 * block + next() % block;  // a partial block at the end
        const unsigned density_percent = next() % 101;         // from empty to full
        std::vector<bool> held(pages);
        for (std::size_t p = 0; p < pages; ++p) held[p] = next() % 100 < density_percent;
        const std::size_t page = next() % pages;
        held[page] = false;  // usm asks only when the host lacks the page
        bitmap_fault f(held, block);
        f.page = page;
        const usm::page_range expected = density_reference(f);
        const usm::page_range got = density->on_host_fault(f);
        ASSERT_EQ(got.first, expected.first) << "trial " << trial << " page " << f.page;
        ASSERT_EQ(got.end, expected.end) << "trial " << trial << " page " << f.page;
    }
}

/// A program's read-ahead: everything from the faulting page to `to`, which
/// may lie past the allocation (usm cuts it).
class read_to final : public usm::read_ahead_policy {
public:
    explicit read_to(std::size_t to) : m_to(to) {}
    std::string_view name() const noexcept override { return "read_to"; }
    usm::page_range on_host_fault(const usm::host_fault_view& f) override {
        seen.push_back(f.page);
        return {f.page + 5, m_to};  // starts past the page: usm widens it back to the page
    }
    std::vector<std::size_t> seen;

private:
    std::size_t m_to;
};

TEST_F(policies, a_programs_read_ahead_is_used_and_its_range_cut_to_the_allocation) {
    usm::context_options o = usm_test::fake::context_options();
    auto mine = std::make_shared<read_to>(1000);
    o.policies.read_ahead = mine;
    open(o);
    const std::size_t n = 4 * block_words;
    auto x = ctx->alloc<std::uint32_t>(n);
    fill_on_device(x, n, 5);
    const usm::stats before = ctx->stats();
    EXPECT_EQ(x[10 * page_words], usm_test::fill_value(10 * page_words, 5));
    EXPECT_EQ(since(before).pages_to_host, 54u);  // pages 10 to 63
    EXPECT_EQ(since(before).pages_read_ahead, 53u);
    EXPECT_EQ(x[3 * page_words], usm_test::fill_value(3 * page_words, 5));  // 3 to 9 were still away
    EXPECT_EQ(since(before).pages_to_host, 61u);
    EXPECT_EQ(mine->seen, (std::vector<std::size_t>{10, 3}));
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], usm_test::fill_value(i, 5)) << i;
    EXPECT_EQ(since(before).host_read_faults, 3u);  // 10, 3, then 0 for pages 0-2
}

TEST_F(policies, an_unknown_policy_name_is_an_error_naming_the_choices) {
    usm::context_options o = usm_test::fake::context_options();
    o.read_ahead = "clairvoyant";
    define_kernels();
    usm_test::fake::install();
    try {
        usm::context bad(o);
        FAIL() << "expected errc::invalid_argument";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::invalid_argument);
        EXPECT_NE(std::string(e.what()).find("'clairvoyant' is not one of density, off"), std::string::npos)
            << e.what();
    }
}

/* --- eviction ---------------------------------------------------------------- */

/// A budget of `blocks` blocks, thrashing off unless `thrashing` says.
usm::context_options budget_of(std::size_t blocks, const char* thrashing = "off") {
    usm::context_options o = usm_test::fake::context_options();
    o.device_budget = blocks * block_bytes;
    o.thrashing = thrashing;
    return o;
}

/// One-block allocations, written by the host (so a launch copies them).
std::vector<usm::ptr<std::uint32_t>> blocks_of(usm::context& ctx, std::size_t count) {
    std::vector<usm::ptr<std::uint32_t>> out;
    for (std::size_t b = 0; b < count; ++b) {
        out.push_back(ctx.alloc<std::uint32_t>(block_words));
        for (std::size_t i = 0; i < block_words; ++i) out.back()[i] = static_cast<std::uint32_t>(b * 1000 + i);
    }
    return out;
}

TEST_F(policies, lru_evicts_the_least_recently_used_blocks_and_writes_them_back) {
    open(budget_of(4));
    auto b = blocks_of(*ctx, 6);
    const usm::stats before = ctx->stats();
    for (std::size_t k = 0; k < 6; ++k) bump(b[k], block_words);  // b4 takes b0's room, b5 b1's
    usm::stats d = since(before);
    EXPECT_EQ(d.blocks_evicted, 2u);
    EXPECT_EQ(d.pages_evicted, 2 * block_pages);
    EXPECT_EQ(d.pages_written_back, 2 * block_pages);  // the kernel wrote them: the device held them alone
    EXPECT_EQ(device_pages(b[0], block_words), 0u);
    EXPECT_EQ(device_pages(b[1], block_words), 0u);
    for (std::size_t k = 2; k < 6; ++k) EXPECT_EQ(device_pages(b[k], block_words), block_pages) << k;
    bump(b[2], block_words);  // resident: used again, nothing moves
    bump(b[0], block_words);  // takes b3's room: b2 was used since
    EXPECT_EQ(device_pages(b[3], block_words), 0u);
    EXPECT_EQ(device_pages(b[2], block_words), block_pages);
    EXPECT_EQ(since(before).blocks_evicted, 3u);
    EXPECT_EQ(ctx->stats(b[3]).blocks_evicted, 1u);
    for (std::size_t k = 0; k < 6; ++k) {
        const std::uint32_t bumps = k == 0 || k == 2 ? 2 : 1;
        for (std::size_t i = 0; i < block_words; ++i)
            ASSERT_EQ(b[k][i], static_cast<std::uint32_t>(k * 1000 + i) + bumps) << k << " " << i;
    }
}

TEST_F(policies, lru_takes_blocks_preferring_another_place_first_and_read_mostly_ones_last) {
    open(budget_of(4));
    auto b = blocks_of(*ctx, 5);
    for (std::size_t k = 0; k < 4; ++k) bump(b[k], block_words);
    ctx->advise(b[0], block_words, usm::advice::read_mostly);                    // oldest, but kept
    ctx->advise(b[3], block_words, usm::advice::preferred_location, usm::host);  // newest, but goes first
    bump(b[4], block_words);
    EXPECT_EQ(device_pages(b[3], block_words), 0u);
    EXPECT_EQ(device_pages(b[0], block_words), block_pages);
    bump(b[3], block_words);  // b1 now: the oldest plain block
    EXPECT_EQ(device_pages(b[1], block_words), 0u);
    EXPECT_EQ(device_pages(b[0], block_words), block_pages);
    EXPECT_EQ(ctx->stats().blocks_evicted, 2u);
}

/// A program's eviction policy: never evicts one allocation, and lets the
/// built-in LRU order the rest.
class keep_one final : public usm::eviction_policy {
public:
    explicit keep_one(const void* keep) : m_keep(keep), m_lru(usm::make_eviction_policy("lru")) {}
    std::string_view name() const noexcept override { return "keep_one"; }
    void choose(const usm::eviction_request& request, std::span<const usm::eviction_candidate> candidates,
                std::vector<std::size_t>& order) override {
        ++calls;
        std::vector<usm::eviction_candidate> others;
        std::vector<std::size_t> index;
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            if (candidates[i].allocation == m_keep) continue;
            others.push_back(candidates[i]);
            index.push_back(i);
        }
        std::vector<std::size_t> theirs;
        m_lru->choose(request, others, theirs);
        for (std::size_t i : theirs) order.push_back(index[i]);
        last = request;
    }
    unsigned calls = 0;
    usm::eviction_request last;

private:
    const void* m_keep;
    std::shared_ptr<usm::eviction_policy> m_lru;
};

TEST_F(policies, a_programs_eviction_policy_keeps_the_allocation_it_chooses) {
    for (bool mine : {false, true}) {
        SCOPED_TRACE(mine ? "keep_one" : "lru");
        usm::context_options o = budget_of(4);
        ctx.reset();
        define_kernels();
        usm_test::fake::install();
        auto probe = std::make_unique<usm::context>(o);  // to learn where the first allocation lands
        const void* first = probe->alloc<std::uint32_t>(block_words).get();
        probe.reset();
        auto policy = std::make_shared<keep_one>(first);
        if (mine) o.policies.eviction = policy;
        open(o);
        auto b = blocks_of(*ctx, 5);
        ASSERT_EQ(b[0].get(), first);
        for (std::size_t pass = 0; pass < 3; ++pass)
            for (std::size_t k = 0; k < 5; ++k) bump(b[k], block_words);
        const usm::stats kept = ctx->stats(b[0]);
        if (mine) {
            EXPECT_EQ(kept.blocks_evicted, 0u);
            EXPECT_EQ(kept.pages_to_device, block_pages);  // once, then resident
            EXPECT_EQ(device_pages(b[0], block_words), block_pages);
            EXPECT_EQ(policy->calls, 9u);  // once per launch that needs room
            EXPECT_EQ(policy->last.budget_pages, 4 * block_pages);
            EXPECT_EQ(policy->last.pages_over, block_pages);
        } else {
            EXPECT_EQ(kept.blocks_evicted, 3u);  // LRU takes it every pass
            EXPECT_EQ(kept.pages_to_device, 3 * block_pages);
        }
        // Under LRU every launch past the fourth needs room (11); with the
        // first allocation kept, its launches hit and the rest cycle
        // through three blocks (9).
        EXPECT_EQ(ctx->stats().blocks_evicted, mine ? 9u : 11u);
        for (std::size_t k = 0; k < 5; ++k)
            for (std::size_t i = 0; i < block_words; i += 97)
                ASSERT_EQ(b[k][i], static_cast<std::uint32_t>(k * 1000 + i) + 3) << k << " " << i;
        ctx->impl().check_invariants();
    }
}

/// A policy that throws: usm logs it once and asks the built-in default.
class throwing_eviction final : public usm::eviction_policy {
public:
    std::string_view name() const noexcept override { return "throwing"; }
    void choose(const usm::eviction_request&, std::span<const usm::eviction_candidate>,
                std::vector<std::size_t>& order) override {
        order.push_back(12345);  // nonsense first: the fallback starts afresh
        throw std::runtime_error("no idea");
    }
};

TEST_F(policies, a_policy_that_throws_is_answered_by_the_built_in_default) {
    usm::context_options o = budget_of(2);
    o.policies.eviction = std::make_shared<throwing_eviction>();
    open(o);
    auto b = blocks_of(*ctx, 3);
    for (std::size_t k = 0; k < 3; ++k) bump(b[k], block_words);
    EXPECT_EQ(ctx->stats().blocks_evicted, 1u);
    EXPECT_EQ(device_pages(b[0], block_words), 0u);  // what LRU would take
    for (std::size_t i = 0; i < block_words; ++i) ASSERT_EQ(b[0][i], static_cast<std::uint32_t>(i) + 1);
}

/* --- thrashing ------------------------------------------------------------------ */

TEST_F(policies, pinning_keeps_one_bouncing_block_of_a_cycle_through_twice_the_budget) {
    for (const char* thrashing : {"pin", "off"}) {
        SCOPED_TRACE(thrashing);
        ctx.reset();
        open(budget_of(2, thrashing));
        auto b = blocks_of(*ctx, 3);
        // a b c a b c a b c a b c through two blocks of room: LRU evicts from
        // the third launch on. The seventh finds a bouncing twice; pinned, it
        // stays, and the tenth launch finds it there.
        for (std::size_t pass = 0; pass < 4; ++pass)
            for (std::size_t k = 0; k < 3; ++k) bump(b[k], block_words);
        const usm::stats s = ctx->stats();
        const bool pins = std::string(thrashing) == "pin";
        EXPECT_EQ(s.blocks_pinned, pins ? 1u : 0u);
        EXPECT_EQ(s.blocks_evicted, pins ? 9u : 10u);
        EXPECT_EQ(ctx->stats(b[0]).blocks_pinned, pins ? 1u : 0u);
        for (std::size_t k = 0; k < 3; ++k)
            for (std::size_t i = 0; i < block_words; i += 101)
                ASSERT_EQ(b[k][i], static_cast<std::uint32_t>(k * 1000 + i) + 4) << k << " " << i;
        ctx->impl().check_invariants();
    }
}

TEST_F(policies, in_place_thrashing_keeps_blocks_bouncing_through_one_block_in_host_memory) {
    usm_test::fake::options device;
    device.host_memory_in_place = true;
    open(budget_of(1, "in_place"), device);
    auto b = blocks_of(*ctx, 2);
    const usm::stats before = ctx->stats();
    // a b a b a b a b through one block: a bounces the second time at the
    // fifth launch, b at the sixth; from then on both are used in place.
    for (std::size_t pass = 0; pass < 4; ++pass)
        for (std::size_t k = 0; k < 2; ++k) bump(b[k], block_words);
    const usm::stats d = since(before);
    EXPECT_EQ(d.blocks_evicted, 5u);
    EXPECT_EQ(d.blocks_in_place, 2u);
    EXPECT_EQ(d.pages_in_place, 2 * block_pages);
    EXPECT_EQ(d.pages_to_device, 6 * block_pages);
    EXPECT_EQ(fake->calls().imports, 2u);
    EXPECT_EQ(dev->resident_bytes(), 0u);
    for (std::size_t k = 0; k < 2; ++k)
        for (std::size_t i = 0; i < block_words; ++i)
            ASSERT_EQ(b[k][i], static_cast<std::uint32_t>(k * 1000 + i) + 4) << k << " " << i;
}

TEST_F(policies, a_block_the_host_and_the_device_take_turns_on_turns_in_place_at_the_fourth_return) {
    for (const char* thrashing : {"in_place", "off"}) {
        SCOPED_TRACE(thrashing);
        usm_test::fake::options device;
        device.host_memory_in_place = true;
        usm::context_options o = usm_test::fake::context_options();
        o.thrashing = thrashing;
        ctx.reset();
        open(o, device);
        auto x = ctx->alloc<std::uint32_t>(block_words);
        for (std::size_t i = 0; i < block_words; ++i) x[i] = 0;
        const usm::stats before = ctx->stats();
        for (std::uint32_t turn = 1; turn <= 6; ++turn) {
            bump(x, block_words);
            ASSERT_EQ(x[0], 2 * turn - 1);  // the host's read, then its write: the device copy goes
            x[0] = 2 * turn;
        }
        const usm::stats d = since(before);
        const bool acts = std::string(thrashing) == "in_place";
        EXPECT_EQ(d.blocks_in_place, acts ? 1u : 0u);
        EXPECT_EQ(d.pages_in_place, acts ? block_pages : 0u);  // the sixth launch
        EXPECT_EQ(x[1], 6u);
    }
}

/* --- copy path ---------------------------------------------------------------- */

TEST_F(policies, auto_copies_by_cpu_up_to_its_limit_towards_the_device_and_at_any_size_home) {
    usm::context_options o = usm_test::fake::context_options();
    o.cpu_copy_max_to_device = 8 * 4096;
    open(o);
    const std::size_t n = 2 * block_words;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
    bump(x, 8 * page_words);  // 32 KiB: at the limit
    EXPECT_EQ(fake->calls().cpu_uploads, 1u);
    EXPECT_EQ(fake->calls().queued_uploads, 0u);
    bump(x + 8 * page_words, 9 * page_words);  // 36 KiB: past it
    EXPECT_EQ(fake->calls().queued_uploads, 1u);
    EXPECT_EQ(fake->calls().bytes_uploaded, 17u * 4096);
    for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(x[i], static_cast<std::uint32_t>(i) + (i < 17 * page_words ? 1 : 0)) << i;
    EXPECT_EQ(fake->calls().queued_downloads, 0u);
    EXPECT_GE(fake->calls().cpu_downloads, 1u);
}

TEST_F(policies, queue_and_cpu_paths_and_a_device_that_cannot_copy_by_cpu) {
    struct row {
        const char* path;
        bool device_copies;
        bool expect_cpu;
    };
    for (const row& r : {row{"queue", true, false}, row{"cpu", true, true}, row{"cpu", false, false}}) {
        SCOPED_TRACE(std::string(r.path) + (r.device_copies ? " on a CPU device" : " on a device without CPU copies"));
        usm::context_options o = usm_test::fake::context_options();
        o.copy_path = r.path;
        usm_test::fake::options device;
        device.cpu_copies = r.device_copies;
        ctx.reset();
        open(o, device);
        EXPECT_EQ(dev->properties().cpu_copies, r.device_copies);
        auto x = ctx->alloc<std::uint32_t>(4 * block_words);  // 256 KiB each way
        for (std::size_t i = 0; i < 4 * block_words; ++i) x[i] = static_cast<std::uint32_t>(i);
        bump(x, 4 * block_words);
        ctx->prefetch(x, 4 * block_words, usm::host);
        const usm_test::fake::call_counts c = fake->calls();
        EXPECT_EQ(c.cpu_uploads, r.expect_cpu ? 1u : 0u);
        EXPECT_EQ(c.queued_uploads, r.expect_cpu ? 0u : 1u);
        EXPECT_EQ(c.cpu_downloads, r.expect_cpu ? 1u : 0u);
        EXPECT_EQ(c.queued_downloads, r.expect_cpu ? 0u : 1u);
        for (std::size_t i = 0; i < 4 * block_words; ++i) ASSERT_EQ(x[i], static_cast<std::uint32_t>(i) + 1) << i;
    }
}

/// A program's copy path: records what it is asked, and queues everything.
class recording_path final : public usm::copy_path_policy {
public:
    std::string_view name() const noexcept override { return "recording"; }
    usm::transfer_path choose(const usm::transfer_request& batch) override {
        seen.push_back(batch);
        return usm::transfer_path::queue;
    }
    std::vector<usm::transfer_request> seen;
};

TEST_F(policies, a_programs_copy_path_sees_each_batch) {
    usm::context_options o = usm_test::fake::context_options();
    auto mine = std::make_shared<recording_path>();
    o.policies.copy_path = mine;
    open(o);
    auto x = ctx->alloc<std::uint32_t>(block_words);
    for (std::size_t i = 0; i < 3 * page_words; ++i) x[i] = 1;
    bump(x, block_words);  // 3 pages copied, 13 zero-filled: one batch of 16 pages
    EXPECT_EQ(x[0], 2u);   // one download (the density region of page 0: itself)
    ASSERT_EQ(mine->seen.size(), 2u);
    EXPECT_EQ(mine->seen[0].direction, usm::transfer_direction::to_device);
    EXPECT_EQ(mine->seen[0].bytes, block_bytes);
    EXPECT_TRUE(mine->seen[0].cpu_possible);
    EXPECT_EQ(mine->seen[0].device, 0u);
    EXPECT_EQ(mine->seen[1].direction, usm::transfer_direction::to_host);
    EXPECT_EQ(mine->seen[1].bytes, 4096u);
    EXPECT_EQ(fake->calls().queued_uploads, 1u);
    EXPECT_EQ(fake->calls().queued_downloads, 1u);
}

TEST_F(policies, usm_cpu_copy_max_sets_both_limits_and_zero_turns_cpu_copies_off) {
    {
        usm_test::scoped_env limits("USM_CPU_COPY_MAX", "16K,8K");
        const usm::context_options o = usm::detail::resolve_options({});
        EXPECT_EQ(o.cpu_copy_max_to_device, 16u * 1024);
        EXPECT_EQ(o.cpu_copy_max_to_host, 8u * 1024);
        EXPECT_EQ(o.copy_path, "auto");
    }
    {
        usm_test::scoped_env off("USM_CPU_COPY_MAX", "0");
        EXPECT_EQ(usm::detail::resolve_options({}).copy_path, "queue");
    }
    {
        usm_test::scoped_env path("USM_COPY_PATH", "cpu");
        usm::context_options given;
        given.policies.copy_path = std::make_shared<recording_path>();
        const usm::context_options o = usm::detail::resolve_options(given);
        EXPECT_EQ(o.copy_path, "cpu");
        EXPECT_EQ(o.policies.copy_path, nullptr);  // the variable wins over the program's object
    }
    {
        usm_test::scoped_env bad("USM_EVICT", "random");
        EXPECT_THROW(usm::detail::resolve_options({}), usm::error);
    }
}

/* --- the fake itself ------------------------------------------------------------ */

TEST_F(policies, the_fakes_latency_makes_a_host_read_wait_for_the_kernel) {
    usm_test::fake::options device;
    device.latency = std::chrono::milliseconds(30);
    open(usm_test::fake::context_options(), device);
    auto x = ctx->alloc<std::uint32_t>(block_words);
    const usm::event e =
        dev->launch(fill, usm::grid{1}, usm::group{1}, usm::write(x, block_words), std::uint32_t{block_words}, 9u);
    EXPECT_FALSE(e.ready());
    const usm::stats before = ctx->stats();
    EXPECT_EQ(x[5], usm_test::fill_value(5, 9));
    EXPECT_EQ(since(before).kernel_waits, 1u);
    EXPECT_TRUE(e.ready());
}

TEST_F(policies, a_failed_upload_of_the_fake_leaves_the_data_and_states_as_they_were) {
    usm::context_options o = usm_test::fake::context_options();
    o.copy_path = "queue";
    open(o);
    auto x = ctx->alloc<std::uint32_t>(block_words);
    for (std::size_t i = 0; i < block_words; ++i) x[i] = static_cast<std::uint32_t>(i);
    fake->fail_next(usm_test::fake::failing::upload);
    try {
        bump(x, block_words);
        FAIL() << "expected errc::transfer_failed";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::transfer_failed);
    }
    ctx->impl().check_invariants();
    EXPECT_EQ(device_pages(x, block_words), 0u);
    bump(x, block_words);
    for (std::size_t i = 0; i < block_words; ++i) ASSERT_EQ(x[i], static_cast<std::uint32_t>(i) + 1);
}

}  // namespace
