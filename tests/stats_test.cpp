// usm::stats per allocation (context::stats(p)) and per device
// (device::stats()): each counts its own share, and the shares add up to the
// context's counters.
#include <gtest/gtest.h>

#include <cstdint>

#include <kernels/test_gather_cl.hpp>
#include <kernels/test_gather_comp.hpp>
#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>

#include "support.hpp"

namespace {

using usm_test::device_test;

class stats_breakdown : public device_test {};

TEST_P(stats_breakdown, each_allocation_counts_what_moved_in_and_out_of_it) {
    const std::size_t n = 64 * 1024;  // 64 pages of uint
    usm::ptr<std::uint32_t> x = ctx->alloc<std::uint32_t>(n);
    usm::ptr<std::uint32_t> y = ctx->alloc<std::uint32_t>(n / 4);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
    for (std::size_t i = 0; i < n / 4; ++i) y[i] = 1;
    ctx->reset_stats();

    usm::kernel inc = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    dev->launch(inc, usm::grid{n / 256}, usm::group{256}, usm::read_write(x, n), static_cast<std::uint32_t>(n)).wait();
    EXPECT_EQ(x[5], 6u);  // a host read brings (some of) x back

    const usm::stats sx = ctx->stats(x), sy = ctx->stats(y), sd = dev->stats(), all = ctx->stats();
    EXPECT_EQ(sx.pages_to_device, 64u);
    EXPECT_EQ(sx.bytes_to_device, 64u * 4096);
    EXPECT_EQ(sx.host_read_faults, 1u);
    EXPECT_GE(sx.pages_to_host, 1u);
    EXPECT_EQ(sx.allocations, 1u);
    EXPECT_EQ(sx.bytes_allocated, n * sizeof(std::uint32_t));
    EXPECT_EQ(sy.pages_to_device, 0u) << "y was not launched on";
    EXPECT_EQ(sy.pages_to_host, 0u);
    EXPECT_EQ(sy.host_read_faults, 0u);
    EXPECT_EQ(sy.bytes_allocated, n);

    EXPECT_EQ(sd.launches, 1u);
    EXPECT_EQ(sd.pages_to_device, 64u);
    EXPECT_EQ(sd.pages_to_host, sx.pages_to_host);
    EXPECT_EQ(sd.transfer_batches, all.transfer_batches);
    EXPECT_EQ(sd.host_read_faults, 0u) << "host faults belong to allocations, not devices";
    EXPECT_EQ(all.pages_to_device, sx.pages_to_device + sy.pages_to_device);
    EXPECT_EQ(all.pages_to_host, sx.pages_to_host + sy.pages_to_host);
    EXPECT_EQ(all.host_read_faults, sx.host_read_faults + sy.host_read_faults);

    ctx->reset_stats();
    EXPECT_EQ(ctx->stats(x).pages_to_device, 0u);
    EXPECT_EQ(dev->stats().launches, 0u);

    ctx->free(y);
    try {
        (void)ctx->stats(y);
        FAIL() << "expected not_a_usm_pointer";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::not_a_usm_pointer) << e.what();
    }
}

TEST_P(stats_breakdown, device_faults_are_counted_on_the_device_and_the_allocation_reached) {
    const std::size_t pages = 4;
    usm::ptr<std::uint32_t> data = ctx->alloc<std::uint32_t>(pages * 1024);
    usm::ptr<std::uint32_t> other = ctx->alloc<std::uint32_t>(1024);
    usm::ptr<std::uint64_t> where = ctx->alloc<std::uint64_t>(pages);
    usm::ptr<std::uint32_t> out = ctx->alloc<std::uint32_t>(pages);
    for (std::size_t p = 0; p < pages; ++p) {
        data[p * 1024] = static_cast<std::uint32_t>(p + 10);
        where[p] = (data + p * 1024).address();
    }
    ctx->reset_stats();
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_gather));
    dev->launch(k, usm::grid{1}, usm::group{64}, usm::replayable, usm::any, usm::read(where, pages),
                usm::write(out, pages), static_cast<std::uint32_t>(pages))
        .wait();
    for (std::size_t p = 0; p < pages; ++p) EXPECT_EQ(out[p], p + 10);
    EXPECT_EQ(ctx->stats(data).device_faults, pages);
    EXPECT_EQ(ctx->stats(other).device_faults, 0u);
    EXPECT_EQ(dev->stats().device_faults, pages);
    EXPECT_EQ(dev->stats().replays, 1u);
    EXPECT_EQ(dev->stats().launches, 2u);
}

USM_INSTANTIATE_PER_BACKEND(stats_breakdown);

}  // namespace
