// tests/multi_device_test.cpp - several devices in one context: read copies
// of a page on several devices at once, a write on one invalidating the
// others, device-to-device migration through host staging, and kernels in
// flight on one device ordering launches on another. Run over three pairs:
// two logical Vulkan devices, two logical OpenCL devices, and lavapipe beside
// PoCL (Vulkan and OpenCL kernels in one context). Page movements are checked
// through usm::stats.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <kernels/test_copy_cl.hpp>
#include <kernels/test_copy_comp.hpp>
#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>
#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_md_affine_cl.hpp>
#include <kernels/test_md_affine_comp.hpp>
#include <kernels/test_slow_fill_cl.hpp>
#include <kernels/test_slow_fill_comp.hpp>

#include "core/context_impl.hpp"
#include "support.hpp"

namespace {

using usm_test::fill_value;
using usm_test::slow_value;
constexpr std::size_t words_per_page = 4096 / sizeof(std::uint32_t);

std::uint32_t u32(std::size_t i) { return static_cast<std::uint32_t>(i); }

usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

/* --- configurations ----------------------------------------------------- */

/// A pair of devices in one context. The name's ending picks the CTest label
/// (tests/CMakeLists.txt): vulkan, opencl, or mixed for both.
struct configuration {
    const char* name;
    const char* backend;
    const char* device;
    usm::backend first;
    usm::backend second;
};

constexpr configuration configurations[] = {
    {"two_vulkan", "vulkan", "vulkan:0,vulkan:0", usm::backend::vulkan, usm::backend::vulkan},
    {"two_opencl", "opencl", "opencl:0,opencl:0", usm::backend::opencl, usm::backend::opencl},
    {"lavapipe_pocl_mixed", "all", "vulkan:0,opencl:0", usm::backend::vulkan, usm::backend::opencl},
};

const configuration& configuration_named(std::string_view name) {
    for (const configuration& c : configurations)
        if (name == c.name) return c;
    throw std::invalid_argument("no configuration named " + std::string(name));
}

/// Base of every suite here: `ctx` holds exactly two devices, `a` (also
/// `dev`) and `b`, as the configuration asks. A configuration whose devices
/// cannot be opened skips, or fails in CI.
class multi_device : public usm_test::device_test {
protected:
    void SetUp() override {
        const configuration& c = configuration_named(GetParam());
        usm::context_options o;
        o.backend = c.backend;
        o.device = c.device;
        try {
            ctx = std::make_unique<usm::context>(o);
        } catch (const usm::error& e) {
            if (e.kind() == usm::errc::no_device && !usm_test::in_ci()) GTEST_SKIP() << e.what();
            FAIL() << "cannot open " << c.name << " (backend " << c.backend << ", devices " << c.device
                   << "): " << e.what();
        }
        const auto devices = ctx->devices();
        if (devices.size() != 2 || devices[0].backend() != c.first || devices[1].backend() != c.second) {
            std::string opened;
            for (usm::device& d : devices) opened += std::string(" ") + usm::to_string(d.backend()) + ":" + d.name();
            if (!usm_test::in_ci())
                GTEST_SKIP() << c.name << " needs devices " << c.device << "; opened:" << opened
                             << " (USM_BACKEND / USM_DEVICE override the test's choice)";
            FAIL() << c.name << " needs devices " << c.device << "; opened:" << opened;
        }
        a = &devices[0];
        b = &devices[1];
        dev = a;
    }

    /// Every test ends by checking the page-state and MMU invariants.
    void TearDown() override {
        if (!ctx) return;
        try {
            ctx->impl().check_invariants();
        } catch (const std::exception& e) {
            ADD_FAILURE() << e.what();
        }
    }

    usm::kernel load(usm::device& d, const usm_test::kernel_source& k) { return usm_test::load(d, k); }

    usm::event copy(usm::device& d, const usm::kernel& k, usm::ptr<std::uint32_t> in, usm::ptr<std::uint32_t> out,
                    std::size_t n) {
        return d.launch(k, groups_for(n), usm::group{64}, usm::read(in, n), usm::write(out, n), u32(n));
    }
    usm::event affine(usm::device& d, const usm::kernel& k, usm::ptr<std::uint32_t> x, std::size_t n, std::uint32_t mul,
                      std::uint32_t add) {
        return d.launch(k, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n), mul, add);
    }

    usm::device* a = nullptr;
    usm::device* b = nullptr;
};

std::string configuration_name(const testing::TestParamInfo<const char*>& info) { return info.param; }

#define USM_INSTANTIATE_PER_PAIR(suite)                                                                        \
    INSTANTIATE_TEST_SUITE_P(pairs, suite, testing::Values("two_vulkan", "two_opencl", "lavapipe_pocl_mixed"), \
                             configuration_name)

/* --- read copies on several devices ------------------------------------- */

class read_copies : public multi_device {};

TEST_P(read_copies, several_devices_hold_read_copies_of_a_page_at_once) {
    const std::size_t pages = 16, n = pages * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out_a = ctx->alloc<std::uint32_t>(n);
    auto out_b = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = fill_value(u32(i), 7);
    usm::kernel copy_a = load(*a, USM_TEST_KERNEL(test_copy));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));

    // Two readers of the same pages on two devices: neither waits for the other.
    usm::stats before = ctx->stats();
    usm::event ea = copy(*a, copy_a, x, out_a, n);
    usm::event eb = copy(*b, copy_b, x, out_b, n);
    EXPECT_EQ(since(before).kernel_waits, 0u) << "readers on two devices must not wait for each other";
    ea.wait();
    eb.wait();
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, 2 * pages) << "x goes to each device once";
    EXPECT_EQ(d.bytes_to_device, 2 * pages * 4096);
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(d.pages_zero_filled, 2 * pages) << "the fresh outputs are filled, not copied";
    EXPECT_EQ(d.launches, 2u);

    // Both devices still hold x: a second round of reads moves nothing.
    before = ctx->stats();
    copy(*a, copy_a, x, out_a, n).wait();
    copy(*b, copy_b, x, out_b, n).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(d.pages_zero_filled, 0u);
    EXPECT_EQ(d.transfer_batches, 0u);

    // And so does the host: reading x there is free.
    before = ctx->stats();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], fill_value(u32(i), 7)) << i;
    d = since(before);
    EXPECT_EQ(d.host_read_faults, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);

    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_a[i], fill_value(u32(i), 7)) << "device a, " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_b[i], fill_value(u32(i), 7)) << "device b, " << i;
}

TEST_P(read_copies, a_write_on_one_device_invalidates_the_copies_elsewhere) {
    const std::size_t pages = 16, n = pages * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out_a = ctx->alloc<std::uint32_t>(n);
    auto out_b = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = fill_value(u32(i), 11);
    usm::kernel copy_a = load(*a, USM_TEST_KERNEL(test_copy));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));
    usm::kernel increment_a = load(*a, USM_TEST_KERNEL(test_increment));
    copy(*a, copy_a, x, out_a, n).wait();
    copy(*b, copy_b, x, out_b, n).wait();  // x now valid on the host, a and b

    // a writes x in place: its copy is valid, so nothing moves.
    usm::stats before = ctx->stats();
    a->launch(increment_a, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n)).wait();
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(d.transfer_batches, 0u);

    // b's copy is stale now (its mirror still holds the old words): b reads
    // a's result, which travels a -> host -> b, every page once each way.
    before = ctx->stats();
    copy(*b, copy_b, x, out_b, n).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    EXPECT_EQ(d.bytes_to_host, pages * 4096);
    EXPECT_EQ(d.pages_to_device, pages);
    EXPECT_EQ(d.bytes_to_device, pages * 4096);
    EXPECT_EQ(d.transfer_batches, 2u) << "one download batch from a, one upload batch to b";

    // Nothing changed since: a reading x again moves nothing, nor does the host.
    before = ctx->stats();
    copy(*a, copy_a, x, out_a, n).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    before = ctx->stats();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], fill_value(u32(i), 11) + 1u) << i;
    d = since(before);
    EXPECT_EQ(d.host_read_faults, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);

    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_b[i], fill_value(u32(i), 11) + 1u) << "device b saw, " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_a[i], fill_value(u32(i), 11) + 1u) << "device a saw, " << i;
}

TEST_P(read_copies, partial_writes_move_only_the_pages_written) {
    const std::size_t pages = 32, n = pages * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out_a = ctx->alloc<std::uint32_t>(n);
    auto out_b = ctx->alloc<std::uint32_t>(n);
    std::vector<std::uint32_t> expected(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = expected[i] = fill_value(u32(i), 5);
    usm::kernel copy_a = load(*a, USM_TEST_KERNEL(test_copy));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));
    usm::kernel increment_a = load(*a, USM_TEST_KERNEL(test_increment));
    copy(*a, copy_a, x, out_a, n).wait();
    copy(*b, copy_b, x, out_b, n).wait();

    // a writes [5 pages + 100, 9 pages + 5): parts of pages 5 to 9.
    const std::size_t first = 5 * words_per_page + 100, count = 4 * words_per_page - 95, written_pages = 5;
    usm::stats before = ctx->stats();
    a->launch(increment_a, groups_for(count), usm::group{64}, usm::read_write(x + first, count), u32(count)).wait();
    for (std::size_t i = first; i < first + count; ++i) ++expected[i];
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);

    // b reads all of x: only the five pages a wrote travel.
    before = ctx->stats();
    copy(*b, copy_b, x, out_b, n).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_host, written_pages);
    EXPECT_EQ(d.pages_to_device, written_pages);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_b[i], expected[i]) << i;

    // A host write to one page invalidates that page on both devices: each
    // device's next read takes that page alone from the host.
    before = ctx->stats();
    x[20 * words_per_page + 3] = expected[20 * words_per_page + 3] = 1'234'567;
    d = since(before);
    EXPECT_EQ(d.host_write_faults, 1u);
    EXPECT_EQ(d.pages_to_host, 0u) << "the host copy was valid";
    for (usm::device* on : {a, b}) {
        before = ctx->stats();
        copy(*on, on == a ? copy_a : copy_b, x, on == a ? out_a : out_b, n).wait();
        d = since(before);
        EXPECT_EQ(d.pages_to_device, 1u) << "device " << on->index();
        EXPECT_EQ(d.pages_to_host, 0u) << "device " << on->index();
    }
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_a[i], expected[i]) << "device a, " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out_b[i], expected[i]) << "device b, " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], expected[i]) << "host, " << i;
}

/* --- device to device --------------------------------------------------- */

class device_to_device : public multi_device {};

TEST_P(device_to_device, a_chain_of_writers_on_both_devices_is_exact_at_every_step) {
    const std::size_t pages = 8, n = pages * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out = ctx->alloc<std::uint32_t>(n);
    usm::kernel fill_a = load(*a, USM_TEST_KERNEL(test_fill));
    usm::kernel copy_a = load(*a, USM_TEST_KERNEL(test_copy));
    usm::kernel affine_a = load(*a, USM_TEST_KERNEL(test_md_affine));
    usm::kernel affine_b = load(*b, USM_TEST_KERNEL(test_md_affine));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));

    // a writes fresh memory: filled on a, nothing copied.
    usm::stats before = ctx->stats();
    a->launch(fill_a, groups_for(n), usm::group{64}, usm::write(x, n), u32(n), 42u).wait();
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_zero_filled, pages);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);

    // b updates in place what a wrote: a -> host -> b.
    before = ctx->stats();
    affine(*b, affine_b, x, n, 3, 1).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    EXPECT_EQ(d.pages_to_device, pages);

    // a reads b's result: b -> host -> a.
    before = ctx->stats();
    copy(*a, copy_a, x, out, n).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    EXPECT_EQ(d.pages_to_device, pages);
    EXPECT_EQ(d.pages_zero_filled, pages);  // out, fresh

    // The host kept the copy staged on its way to a: reading x is free; out
    // comes from a.
    before = ctx->stats();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], fill_value(u32(i), 42) * 3u + 1u) << "x on host, " << i;
    EXPECT_EQ(since(before).pages_to_host, 0u);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], fill_value(u32(i), 42) * 3u + 1u) << "a read, " << i;
    EXPECT_EQ(since(before).pages_to_host, pages);

    // One more round the other way: a updates, b reads.
    affine(*a, affine_a, x, n, 5, 7).wait();
    copy(*b, copy_b, x, out, n).wait();
    for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i], (fill_value(u32(i), 42) * 3u + 1u) * 5u + 7u) << "b read, " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], (fill_value(u32(i), 42) * 3u + 1u) * 5u + 7u) << i;
}

TEST_P(device_to_device, back_to_back_updates_alternating_devices_are_ordered_without_host_waits) {
    const std::size_t pages = 64, n = pages * words_per_page;
    const int hops = 8;
    auto x = ctx->alloc<std::uint32_t>(n);
    std::vector<std::uint32_t> expected(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = expected[i] = u32(i);
    usm::kernel affine_a = load(*a, USM_TEST_KERNEL(test_md_affine));
    usm::kernel affine_b = load(*b, USM_TEST_KERNEL(test_md_affine));

    // No event is waited on: each launch must see the previous one's result
    // (usm waits for the writer on the other device, then stages its pages).
    const usm::stats before = ctx->stats();
    usm::event last;
    for (int h = 0; h < hops; ++h) {
        const std::uint32_t mul = 2u * static_cast<std::uint32_t>(h) + 3u, add = 100u + static_cast<std::uint32_t>(h);
        last = h % 2 == 0 ? affine(*a, affine_a, x, n, mul, add) : affine(*b, affine_b, x, n, mul, add);
        for (std::uint32_t& e : expected) e = e * mul + add;
    }
    last.wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], expected[i]) << i;

    // The first hop uploads x; each later one moves every page device ->
    // host -> device; the host's read takes the last writer's pages.
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, static_cast<std::size_t>(hops) * pages);
    EXPECT_EQ(d.pages_to_host, static_cast<std::size_t>(hops) * pages);
    EXPECT_EQ(d.launches, static_cast<std::uint64_t>(hops));
}

TEST_P(device_to_device, disjoint_halves_of_one_allocation_stay_on_their_devices_under_concurrent_launches) {
    const std::size_t pages = 32, n = pages * words_per_page, half = n / 2;
    const int rounds = 20;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = u32(3 * i);
    usm::kernel increment_a = load(*a, USM_TEST_KERNEL(test_increment));
    usm::kernel increment_b = load(*b, USM_TEST_KERNEL(test_increment));

    // Two host threads, one per device, each updating its own half.
    const usm::stats before = ctx->stats();
    auto work = [&](usm::device& on, const usm::kernel& k, usm::ptr<std::uint32_t> part) {
        for (int r = 0; r < rounds; ++r)
            on.launch(k, groups_for(half), usm::group{64}, usm::read_write(part, half), u32(half));
    };
    std::thread ta([&] { work(*a, increment_a, x); });
    std::thread tb([&] { work(*b, increment_b, x + static_cast<std::ptrdiff_t>(half)); });
    ta.join();
    tb.join();
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, pages) << "each half goes to its device once";
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(d.kernel_waits, 0u) << "the halves share no page: no launch waits for the other device";
    EXPECT_EQ(d.launches, 2u * rounds);

    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], u32(3 * i) + u32(rounds)) << i;
    EXPECT_EQ(since(before).pages_to_host, pages);
}

/* --- in-flight kernels across devices ----------------------------------- */

class inflight_across : public multi_device {};

TEST_P(inflight_across, a_read_on_one_device_waits_for_a_write_in_flight_on_the_other) {
    const std::size_t n = 1 << 20;
    const std::uint32_t rounds = 200;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 0xffffffffu;  // stale words nobody may see again
    usm::kernel slow_a = load(*a, USM_TEST_KERNEL(test_slow_fill));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));

    const usm::stats before = ctx->stats();
    usm::event written = a->launch(slow_a, groups_for(n), usm::group{64}, usm::write(x, n), u32(n), rounds);
    usm::event read = copy(*b, copy_b, x, out, n);
    // b's launch staged a's output: a had to finish before it returned.
    EXPECT_TRUE(written.ready());
    read.wait();
    const usm::stats d = since(before);
    EXPECT_GE(d.kernel_waits, 1u);
    EXPECT_EQ(d.pages_to_host, n / words_per_page);
    EXPECT_EQ(d.pages_to_device, n / words_per_page + n / words_per_page) << "x to a (old contents kept), x to b";
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], slow_value(u32(i), rounds)) << "b saw, " << i;
    for (std::size_t i = 0; i < n; i += 997) ASSERT_EQ(x[i], slow_value(u32(i), rounds)) << "host saw, " << i;
}

TEST_P(inflight_across, a_write_after_a_write_in_flight_elsewhere_lands_last) {
    const std::size_t n = 1 << 20, half = n / 2;
    const std::uint32_t rounds = 200;
    auto x = ctx->alloc<std::uint32_t>(n);
    usm::kernel slow_a = load(*a, USM_TEST_KERNEL(test_slow_fill));
    usm::kernel fill_b = load(*b, USM_TEST_KERNEL(test_fill));

    // a writes all of x slowly; b at once overwrites the second half.
    const usm::stats before = ctx->stats();
    a->launch(slow_a, groups_for(n), usm::group{64}, usm::write(x, n), u32(n), rounds);
    usm::event last = b->launch(fill_b, groups_for(half), usm::group{64},
                                usm::write(x + static_cast<std::ptrdiff_t>(half), half), u32(half), 99u);
    last.wait();
    EXPECT_GE(since(before).kernel_waits, 1u);
    for (std::size_t i = 0; i < half; ++i) ASSERT_EQ(x[i], slow_value(u32(i), rounds)) << "a's half, " << i;
    for (std::size_t i = half; i < n; ++i) ASSERT_EQ(x[i], fill_value(u32(i - half), 99)) << "b's half, " << i;
}

TEST_P(inflight_across, launches_on_pages_a_kernel_elsewhere_does_not_write_do_not_wait) {
    const std::size_t n = 1 << 20, half = n / 2;
    const std::uint32_t rounds = 200;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out = ctx->alloc<std::uint32_t>(half);
    for (std::size_t i = 0; i < n; ++i) x[i] = u32(i);
    usm::kernel slow_a = load(*a, USM_TEST_KERNEL(test_slow_fill));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));

    // a writes the first half; b reads the second (no page in common).
    const usm::stats before = ctx->stats();
    usm::event written = a->launch(slow_a, groups_for(half), usm::group{64}, usm::write(x, half), u32(half), rounds);
    usm::event read = copy(*b, copy_b, x + static_cast<std::ptrdiff_t>(half), out, half);
    EXPECT_EQ(since(before).kernel_waits, 0u);
    read.wait();
    written.wait();
    for (std::size_t i = 0; i < half; ++i) ASSERT_EQ(out[i], u32(half + i)) << i;
    for (std::size_t i = 0; i < half; ++i) ASSERT_EQ(x[i], slow_value(u32(i), rounds)) << i;
    for (std::size_t i = half; i < n; ++i) ASSERT_EQ(x[i], u32(i)) << i;
}

TEST_P(inflight_across, freeing_waits_for_both_devices_and_the_reused_range_reads_zero_on_both) {
    const std::size_t n = 1 << 18;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto seen_a = ctx->alloc<std::uint32_t>(n);
    auto seen_b = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 7;
    usm::kernel slow_a = load(*a, USM_TEST_KERNEL(test_slow_fill));
    usm::kernel increment_b = load(*b, USM_TEST_KERNEL(test_increment));
    usm::kernel copy_a = load(*a, USM_TEST_KERNEL(test_copy));
    usm::kernel copy_b = load(*b, USM_TEST_KERNEL(test_copy));

    // Both devices end up with non-zero mirrors of x, and a kernel in flight.
    b->launch(increment_b, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n)).wait();
    a->launch(slow_a, groups_for(n), usm::group{64}, usm::write(x, n), u32(n), 100u);
    ctx->free(x);

    auto reused = ctx->alloc<std::uint32_t>(n);
    ASSERT_EQ(reused.get(), x.get());
    copy(*a, copy_a, reused, seen_a, n).wait();
    copy(*b, copy_b, reused, seen_b, n).wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen_a[i], 0u) << "old bytes on a showed through at " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen_b[i], 0u) << "old bytes on b showed through at " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(reused[i], 0u) << "old host bytes showed through at " << i;
}

/* --- kernels on each device --------------------------------------------- */

class kernels_per_device : public multi_device {};

TEST_P(kernels_per_device, each_device_takes_its_own_kernel_form_and_only_its_own_kernels) {
    const std::size_t n = 4 * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = u32(i);

    // Loaded explicitly: SPIR-V on Vulkan devices, OpenCL C on OpenCL devices;
    // the other form is refused.
    auto load_native = [](usm::device& d) {
        return d.backend() == usm::backend::vulkan
                   ? d.load_kernel(usm::spirv(usm::kernels::test_increment_comp), "main")
                   : d.load_kernel(usm::opencl_c(usm::kernels::test_increment_cl), "test_increment");
    };
    auto load_foreign = [](usm::device& d) {
        return d.backend() == usm::backend::vulkan
                   ? d.load_kernel(usm::opencl_c(usm::kernels::test_increment_cl), "test_increment")
                   : d.load_kernel(usm::spirv(usm::kernels::test_increment_comp), "main");
    };
    usm::kernel on_a = load_native(*a);
    usm::kernel on_b = load_native(*b);
    for (usm::device* d : {a, b}) {
        try {
            load_foreign(*d);
            ADD_FAILURE() << "device " << d->index() << " (" << usm::to_string(d->backend())
                          << ") loaded a kernel in the other backend's form";
        } catch (const usm::error& e) {
            EXPECT_EQ(e.kind(), usm::errc::unsupported) << e.what();
        }
    }

    // A kernel belongs to the (logical) device it was loaded on.
    try {
        b->launch(on_a, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n));
        ADD_FAILURE() << "a kernel loaded on device a launched on device b";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::invalid_argument) << e.what();
        EXPECT_NE(std::string(e.what()).find("not loaded on this device"), std::string::npos) << e.what();
    }

    // The failed launch changed nothing; both kernels run, in turn, on x.
    for (int r = 0; r < 3; ++r) {
        a->launch(on_a, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n));
        b->launch(on_b, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n));
    }
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], u32(i) + 6u) << i;
}

TEST_P(kernels_per_device, memory_placed_on_one_device_reads_zero_elsewhere_and_takes_the_placed_devices_writes) {
    const std::size_t pages = 8, n = pages * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n, usm::placement::device(*b));
    auto seen = ctx->alloc<std::uint32_t>(n);
    usm::kernel copy_a = load(*a, USM_TEST_KERNEL(test_copy));
    usm::kernel increment_b = load(*b, USM_TEST_KERNEL(test_increment));

    copy(*a, copy_a, x, seen, n).wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 0u) << i;

    // b increments in place; a then reads b's words.
    const usm::stats before = ctx->stats();
    b->launch(increment_b, groups_for(n), usm::group{64}, usm::read_write(x, n), u32(n)).wait();
    copy(*a, copy_a, x, seen, n).wait();
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    EXPECT_EQ(d.pages_to_device, pages);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1u) << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], 1u) << i;
}

USM_INSTANTIATE_PER_PAIR(read_copies);
USM_INSTANTIATE_PER_PAIR(device_to_device);
USM_INSTANTIATE_PER_PAIR(inflight_across);
USM_INSTANTIATE_PER_PAIR(kernels_per_device);

}  // namespace
