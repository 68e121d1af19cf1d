// tests/prefetch_test.cpp - context::prefetch, once per backend: what moves
// (usm::stats), what a later launch still moves (nothing), ordering without
// host waits, host writes racing a prefetch's copy, errors, and injected
// failures that lose nothing.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <kernels/test_copy_cl.hpp>
#include <kernels/test_copy_comp.hpp>
#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>
#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_slow_fill_cl.hpp>
#include <kernels/test_slow_fill_comp.hpp>

#include "core/context_impl.hpp"
#include "core/fault_injection.hpp"
#include "support.hpp"

namespace {

using usm_test::device_test;
using usm_test::slow_value;
constexpr std::size_t words_per_page = 4096 / sizeof(std::uint32_t);

std::uint32_t host_value(std::size_t i) { return static_cast<std::uint32_t>(i * 3 + 1); }
usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

class prefetch : public device_test {
protected:
    void SetUp() override {
        device_test::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
        copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    }
    void TearDown() override { usm::detail::testing::clear_injected_failures(); }

    /// n words written by the host.
    usm::ptr<std::uint32_t> host_written(std::size_t n) {
        auto x = ctx->alloc<std::uint32_t>(n);
        for (std::size_t i = 0; i < n; ++i) x[i] = host_value(i);
        return x;
    }

    usm::kernel increment, copy;
};

TEST_P(prefetch, moves_the_range_in_one_batch_and_the_launch_after_it_moves_nothing) {
    const std::size_t pages = 64, n = pages * words_per_page;
    auto x = host_written(n);
    const usm::stats before = ctx->stats();
    usm::event moved = ctx->prefetch(x, n, *dev);
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, pages);
    EXPECT_EQ(d.transfer_batches, 1u);
    EXPECT_EQ(d.launches, 0u);

    // Not waited for: the launch orders itself after the copy on the device.
    const usm::stats before_launch = ctx->stats();
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n)).wait();
    d = since(before_launch);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_zero_filled, 0u);
    EXPECT_EQ(d.transfer_batches, 0u);
    EXPECT_EQ(d.kernel_waits, 0u);
    EXPECT_TRUE(moved.ready());
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], host_value(i) + 1) << i;
    ctx->impl().check_invariants();
}

TEST_P(prefetch, a_second_prefetch_and_host_reads_are_free) {
    const std::size_t pages = 16, n = pages * words_per_page;
    auto x = host_written(n);
    ctx->prefetch(x, n, *dev).wait();
    const usm::stats before = ctx->stats();
    usm::event again = ctx->prefetch(x, n, *dev);
    EXPECT_TRUE(again.ready()) << "nothing had to move";
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += x[i];  // the host kept its copy
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(d.host_read_faults, 0u);
    EXPECT_GT(sum, 0u);
}

TEST_P(prefetch, fresh_pages_are_filled_not_copied) {
    const std::size_t pages = 32, n = pages * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    const usm::stats before = ctx->stats();
    ctx->prefetch(x, n, *dev).wait();
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_zero_filled, pages);
    EXPECT_EQ(d.pages_to_device, 0u);
    auto seen = ctx->alloc<std::uint32_t>(n);
    dev->launch(copy, groups_for(n), usm::group{64}, usm::read(x, n), usm::write(seen, n), std::uint32_t(n)).wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 0u) << i;
}

TEST_P(prefetch, an_interior_range_moves_exactly_its_pages) {
    const std::size_t pages = 20, n = pages * words_per_page;
    auto x = host_written(n);
    const usm::stats before = ctx->stats();
    // Words from the middle of page 3 to the middle of page 5: pages 3, 4, 5.
    ctx->prefetch(x + 3 * words_per_page + 100, 2 * words_per_page, *dev).wait();
    EXPECT_EQ(since(before).pages_to_device, 3u);
    const usm::stats before_launch = ctx->stats();
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n)).wait();
    EXPECT_EQ(since(before_launch).pages_to_device, pages - 3);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], host_value(i) + 1) << i;
}

TEST_P(prefetch, a_host_write_racing_the_copy_waits_for_it_and_the_device_sees_the_write) {
    const std::size_t pages = 256, n = pages * words_per_page;  // 1 MiB: the copy takes a while
    auto x = host_written(n);
    auto out = ctx->alloc<std::uint32_t>(n);
    ctx->prefetch(x, n, *dev);  // not waited for
    x[5] = 12345;               // must not race the copy reading the host's bytes
    x[n - 1] = 678;
    const usm::stats before = ctx->stats();
    dev->launch(copy, groups_for(n), usm::group{64}, usm::read(x, n), usm::write(out, n), std::uint32_t(n)).wait();
    EXPECT_EQ(since(before).pages_to_device, 2u) << "only the two pages the host wrote move again";
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t want = i == 5 ? 12345u : i == n - 1 ? 678u : host_value(i);
        ASSERT_EQ(out[i], want) << i;
        ASSERT_EQ(x[i], want) << i;
    }
    ctx->impl().check_invariants();
}

TEST_P(prefetch, to_the_host_brings_device_data_back_before_returning) {
    const std::size_t pages = 24, n = pages * words_per_page;
    auto x = host_written(n);
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n)).wait();
    const usm::stats before = ctx->stats();
    usm::event back = ctx->prefetch(x, n, usm::host);
    EXPECT_TRUE(back.ready());
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    const usm::stats before_reads = ctx->stats();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], host_value(i) + 1) << i;
    d = since(before_reads);
    EXPECT_EQ(d.host_read_faults, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    ctx->impl().check_invariants();
}

TEST_P(prefetch, overlaps_launches_on_other_data_in_a_double_buffered_loop) {
    const std::size_t chunks = 6, chunk = 32 * words_per_page;
    auto x = host_written(chunks * chunk);
    usm::event previous = ctx->prefetch(x, chunk, *dev);
    for (std::size_t c = 0; c < chunks; ++c) {
        // Prefetch the next chunk while this one is incremented.
        if (c + 1 < chunks) ctx->prefetch(x + (c + 1) * chunk, chunk, *dev);
        previous = dev->launch(increment, groups_for(chunk), usm::group{64}, usm::read_write(x + c * chunk, chunk),
                               std::uint32_t(chunk));
    }
    previous.wait();
    const usm::stats s = ctx->stats();
    EXPECT_EQ(s.pages_to_device, chunks * 32);  // every page once, by the prefetches
    for (std::size_t i = 0; i < chunks * chunk; ++i) ASSERT_EQ(x[i], host_value(i) + 1) << i;
}

TEST_P(prefetch, freeing_during_the_copy_waits_for_it) {
    const std::size_t n = 512 * words_per_page;
    auto x = host_written(n);
    ctx->prefetch(x, n, *dev);
    ctx->free(x);
    auto y = ctx->alloc<std::uint32_t>(n);  // may reuse the range: reads zero
    for (std::size_t i = 0; i < n; i += 997) ASSERT_EQ(y[i], 0u) << i;
    ctx->impl().check_invariants();
}

TEST_P(prefetch, bad_arguments_are_named_and_change_nothing) {
    const std::size_t n = 4 * words_per_page;
    auto x = host_written(n);
    const usm::stats before = ctx->stats();
    auto expect_error = [&](usm::errc kind, const std::string& what, auto&& call) {
        try {
            call();
            ADD_FAILURE() << "accepted: " << what;
        } catch (const usm::error& e) {
            EXPECT_EQ(e.kind(), kind) << e.what();
            EXPECT_NE(std::string(e.what()).find("prefetch"), std::string::npos) << e.what();
        }
    };
    std::uint32_t local = 0;
    expect_error(usm::errc::not_a_usm_pointer, "a stack address",
                 [&] { ctx->prefetch(usm::ptr<std::uint32_t>(&local), 1, *dev); });
    expect_error(usm::errc::out_of_range, "past the end", [&] { ctx->prefetch(x + 1, n, *dev); });
    expect_error(usm::errc::out_of_range, "past the end, to the host", [&] { ctx->prefetch(x + 1, n, usm::host); });
    auto other = usm_test::open_backend(GetParam());
    expect_error(usm::errc::invalid_argument, "a device of another context",
                 [&] { ctx->prefetch(x, n, other->devices().front()); });
    auto foreign = other->alloc<std::uint32_t>(n);
    expect_error(usm::errc::not_a_usm_pointer, "memory of another context", [&] { ctx->prefetch(foreign, n, *dev); });
    EXPECT_TRUE(ctx->prefetch(x, 0, *dev).ready());

    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], host_value(i)) << i;
    ctx->impl().check_invariants();
}

TEST_P(prefetch, a_failed_copy_throws_and_loses_nothing) {
    namespace injection = usm::detail::testing;
    const std::size_t pages = 8, n = pages * words_per_page;
    auto x = host_written(n);
    for (auto call : {injection::injected_call::create_mirror, injection::injected_call::upload}) {
        injection::inject_failure(call);
        const usm::stats before = ctx->stats();
        EXPECT_THROW(ctx->prefetch(x, n, *dev), usm::error);
        injection::clear_injected_failures();
        EXPECT_EQ(since(before).pages_to_device, 0u);
        ctx->impl().check_invariants();
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], host_value(i)) << i;
    }
    x[0] = 99;  // the host still owns it
    ctx->prefetch(x, n, *dev).wait();
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n)).wait();
    EXPECT_EQ(x[0], 100u);
    for (std::size_t i = 1; i < n; ++i) ASSERT_EQ(x[i], host_value(i) + 1) << i;
}

/* --- two devices -------------------------------------------------------- */

class prefetch_two_devices : public testing::TestWithParam<const char*> {};

TEST_P(prefetch_two_devices, waits_for_a_writer_elsewhere_and_moves_its_result) {
    usm::context_options o;
    o.device = std::string(GetParam()) + ":0," + GetParam() + ":0";  // two logical devices
    std::unique_ptr<usm::context> ctx;
    try {
        ctx = usm_test::open_backend(GetParam(), o);
    } catch (const usm::error& e) {
        if (e.kind() == usm::errc::no_device && !usm_test::in_ci()) GTEST_SKIP() << e.what();
        FAIL() << e.what();
    }
    ASSERT_EQ(ctx->devices().size(), 2u);
    usm::device& a = ctx->devices()[0];
    usm::device& b = ctx->devices()[1];
    const std::size_t n = 64 * words_per_page;
    const std::uint32_t rounds = 200;
    auto x = ctx->alloc<std::uint32_t>(n);
    auto out = ctx->alloc<std::uint32_t>(n);
    usm::kernel slow = usm_test::load(a, USM_TEST_KERNEL(test_slow_fill));
    usm::kernel copy_b = usm_test::load(b, USM_TEST_KERNEL(test_copy));
    a.launch(slow, groups_for(n), usm::group{64}, usm::write(x, n), std::uint32_t(n), rounds);
    ctx->prefetch(x, n, b).wait();  // after the writer on a, through the host
    const usm::stats before = ctx->stats();
    b.launch(copy_b, groups_for(n), usm::group{64}, usm::read(x, n), usm::write(out, n), std::uint32_t(n)).wait();
    const usm::stats after = ctx->stats();
    EXPECT_EQ(after.pages_to_device - before.pages_to_device, 0u) << "x was on b already";
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], slow_value(static_cast<std::uint32_t>(i), rounds)) << i;
    ctx->impl().check_invariants();
}

USM_INSTANTIATE_PER_BACKEND(prefetch);
USM_INSTANTIATE_PER_BACKEND(prefetch_two_devices);

}  // namespace
