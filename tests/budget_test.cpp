// tests/budget_test.cpp - device budgets and advice, once per backend: LRU
// eviction of 2 MiB blocks with write-back of what only the device holds,
// advice that changes what goes first, blocks caught bouncing and pinned,
// busy blocks left alone, budgets a launch cannot fit, accessed_by pages used
// in place, and allocations larger than one device buffer (segmented device
// copies).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_slow_add_cl.hpp>
#include <kernels/test_slow_add_comp.hpp>
#include <kernels/test_slow_fill_cl.hpp>
#include <kernels/test_slow_fill_comp.hpp>

#include "core/context_impl.hpp"
#include "support.hpp"

namespace {

using usm_test::device_test;
using usm_test::slow_value;
constexpr std::size_t block_bytes = std::size_t{2} << 20;
constexpr std::size_t block_words = block_bytes / sizeof(std::uint32_t);
constexpr std::size_t block_pages = block_bytes / 4096;
constexpr std::size_t budget_blocks = 4;

std::uint32_t host_value(std::size_t block, std::size_t i) { return static_cast<std::uint32_t>(block * 1000003 + i); }
usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

/// A context whose device holds at most four blocks.
class budget : public device_test {
protected:
    usm::context_options options() const override {
        usm::context_options o;
        o.device_budget = budget_blocks * block_bytes;
        return o;
    }
    void SetUp() override {
        device_test::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    }
    void TearDown() override {
        for (auto& b : blocks) ctx->free(b);
    }

    /// `count` one-block allocations, each written by the host.
    void make_blocks(std::size_t count) {
        for (std::size_t b = 0; b < count; ++b) {
            blocks.push_back(ctx->alloc<std::uint32_t>(block_words));
            for (std::size_t i = 0; i < block_words; ++i) blocks.back()[i] = host_value(b, i);
        }
    }
    void increment_block(std::size_t b) {
        dev->launch(increment, groups_for(block_words), usm::group{64}, usm::read_write(blocks[b], block_words),
                    static_cast<std::uint32_t>(block_words))
            .wait();
    }
    std::size_t device_pages(std::size_t b) const { return ctx->query(blocks[b], block_words).device_pages[0]; }
    /// Every word of block b holds its host value plus `added`.
    void expect_block(std::size_t b, std::uint32_t added) {
        for (std::size_t i = 0; i < block_words; ++i)
            if (blocks[b][i] != host_value(b, i) + added) {
                ADD_FAILURE() << "block " << b << " word " << i << " is " << blocks[b][i] << ", expected "
                              << host_value(b, i) + added;
                return;
            }
    }

    usm::kernel increment;
    std::vector<usm::ptr<std::uint32_t>> blocks;
};

TEST_P(budget, launches_past_the_budget_evict_the_least_recently_used_blocks_and_write_them_back) {
    make_blocks(6);
    EXPECT_EQ(dev->budget(), budget_blocks * block_bytes);
    const usm::stats before = ctx->stats();
    for (std::size_t b = 0; b < 6; ++b) {
        increment_block(b);
        EXPECT_LE(dev->resident_bytes(), dev->budget()) << "after block " << b;
    }
    const usm::stats d = since(before);
    // Blocks 0 and 1 made room for 4 and 5; the kernels wrote them, so the
    // device held them alone: both written back whole.
    EXPECT_EQ(d.blocks_evicted, 2u);
    EXPECT_EQ(d.pages_evicted, 2 * block_pages);
    EXPECT_EQ(d.pages_written_back, 2 * block_pages);
    EXPECT_EQ(d.pages_to_host, 2 * block_pages);
    EXPECT_EQ(device_pages(0), 0u);
    EXPECT_EQ(device_pages(1), 0u);
    for (std::size_t b = 2; b < 6; ++b) EXPECT_EQ(device_pages(b), block_pages) << b;
    EXPECT_EQ(dev->resident_bytes(), budget_blocks * block_bytes);
    ctx->impl().check_invariants();

    // The evicted blocks are home already: reading them moves nothing.
    const usm::stats home = ctx->stats();
    expect_block(0, 1);
    expect_block(1, 1);
    EXPECT_EQ(since(home).pages_to_host, 0u);
    for (std::size_t b = 2; b < 6; ++b) expect_block(b, 1);
}

TEST_P(budget, clean_blocks_are_dropped_without_a_write_back) {
    make_blocks(6);
    const usm::stats before = ctx->stats();
    for (std::size_t b = 0; b < 6; ++b) ctx->prefetch(blocks[b], block_words, *dev).wait();
    const usm::stats d = since(before);
    EXPECT_EQ(d.blocks_evicted, 2u);
    EXPECT_EQ(d.pages_evicted, 2 * block_pages);
    EXPECT_EQ(d.pages_written_back, 0u);  // the host kept its copy of what the device only read
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(dev->resident_bytes(), budget_blocks * block_bytes);
    for (std::size_t b = 0; b < 6; ++b) expect_block(b, 0);
    ctx->impl().check_invariants();
}

TEST_P(budget, read_mostly_blocks_stay_while_older_plain_ones_go) {
    // Block 0 is read once, then four others stream through: LRU alone
    // would evict block 0 first.
    make_blocks(6);
    ctx->advise(blocks[0], block_words, usm::advice::read_mostly);
    EXPECT_TRUE(ctx->query(blocks[0], block_words).read_mostly);
    EXPECT_FALSE(ctx->query(blocks[1], block_words).read_mostly);
    for (std::size_t b = 0; b < 5; ++b) ctx->prefetch(blocks[b], block_words, *dev).wait();
    EXPECT_EQ(device_pages(0), block_pages);
    EXPECT_EQ(device_pages(1), 0u);  // the oldest plain block went instead

    // Reading it again on the device moves nothing.
    const usm::stats before = ctx->stats();
    ctx->prefetch(blocks[0], block_words, *dev).wait();
    EXPECT_EQ(since(before).pages_to_device, 0u);

    // Without the advice it is the first to go.
    ctx->advise(blocks[0], block_words, usm::advice::unset_read_mostly);
    ctx->prefetch(blocks[5], block_words, *dev).wait();
    EXPECT_EQ(device_pages(0), block_pages);  // used more recently than block 2 by the prefetch above
    EXPECT_EQ(device_pages(2), 0u);
    ctx->impl().check_invariants();
}

TEST_P(budget, blocks_preferring_another_place_go_first_and_blocks_preferring_the_device_last) {
    make_blocks(6);
    for (std::size_t b = 0; b < 4; ++b) ctx->prefetch(blocks[b], block_words, *dev).wait();
    // Block 3 is the most recently used, yet it prefers the host; block 0,
    // the least recently used, prefers the device.
    ctx->advise(blocks[3], block_words, usm::advice::preferred_location, usm::host);
    ctx->advise(blocks[0], block_words, usm::advice::preferred_location, *dev);
    const usm::range_info three = ctx->query(blocks[3], block_words);
    EXPECT_TRUE(three.preferred_host);
    EXPECT_FALSE(three.preferred_device.has_value());
    EXPECT_EQ(ctx->query(blocks[0], block_words).preferred_device, std::optional<std::size_t>(0));

    ctx->prefetch(blocks[4], block_words, *dev).wait();
    EXPECT_EQ(device_pages(3), 0u);
    ctx->prefetch(blocks[5], block_words, *dev).wait();
    EXPECT_EQ(device_pages(0), block_pages);
    EXPECT_EQ(device_pages(1), 0u);
    EXPECT_EQ(device_pages(2), block_pages);
    ctx->impl().check_invariants();
}

TEST_P(budget, pages_preferring_the_host_move_home_on_a_host_read) {
    make_blocks(2);
    ctx->advise(blocks[0], block_words, usm::advice::preferred_location, usm::host);
    increment_block(0);
    increment_block(1);
    ctx->host_access(blocks[0], block_words, usm::access::read);
    ctx->host_access(blocks[1], block_words, usm::access::read);
    const usm::range_info moved = ctx->query(blocks[0], block_words), shared = ctx->query(blocks[1], block_words);
    EXPECT_EQ(moved.host_pages, block_pages);
    EXPECT_EQ(moved.device_pages[0], 0u);  // moved, not shared
    EXPECT_EQ(shared.host_pages, block_pages);
    EXPECT_EQ(shared.device_pages[0], block_pages);
    expect_block(0, 1);
    expect_block(1, 1);
    ctx->impl().check_invariants();
}

TEST_P(budget, placement_sets_the_preferred_location) {
    auto on_host = ctx->alloc<std::uint32_t>(1024, usm::placement::host());
    auto on_device = ctx->alloc<std::uint32_t>(1024, usm::placement::device(*dev));
    auto plain = ctx->alloc<std::uint32_t>(1024);
    EXPECT_TRUE(ctx->query(on_host, 1024).preferred_host);
    EXPECT_EQ(ctx->query(on_device, 1024).preferred_device, std::optional<std::size_t>(0));
    EXPECT_EQ(ctx->query(on_device, 1024).device_pages[0], 1u);
    const usm::range_info none = ctx->query(plain, 1024);
    EXPECT_FALSE(none.preferred_host);
    EXPECT_FALSE(none.preferred_device.has_value());
    EXPECT_EQ(none.zero_pages, 1u);
    // Advice on part of a range: the range reports no common preference.
    ctx->advise(plain, 1, usm::advice::preferred_location, usm::host);
    auto two = ctx->alloc<std::uint32_t>(2048);
    ctx->advise(two, 1, usm::advice::preferred_location, usm::host);
    EXPECT_TRUE(ctx->query(two, 1).preferred_host);
    EXPECT_FALSE(ctx->query(two, 2048).preferred_host);
    for (auto p : {on_host, on_device, plain, two}) ctx->free(p);
}

TEST_P(budget, a_cycle_past_the_budget_turns_bouncing_blocks_to_in_place_access) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    // Six blocks used in turn through four blocks of budget: LRU evicts each
    // block just before its next use, so every launch would move a block.
    make_blocks(6);
    const std::size_t passes = 5;
    std::vector<std::uint64_t> moved(passes);
    for (std::size_t pass = 0; pass < passes; ++pass) {
        const std::uint64_t at = ctx->stats().pages_to_device;
        for (std::size_t b = 0; b < 6; ++b) increment_block(b);
        moved[pass] = ctx->stats().pages_to_device - at;
        EXPECT_LE(dev->resident_bytes(), dev->budget());
    }
    // Every block bounces twice by the third pass and is used in place from
    // then on: nothing moves, and nothing is resident.
    EXPECT_EQ(moved[0], 6 * block_pages);
    EXPECT_EQ(ctx->stats().blocks_in_place, 6u);
    EXPECT_EQ(ctx->stats().blocks_pinned, 0u);
    EXPECT_EQ(moved[passes - 1], 0u);
    EXPECT_EQ(dev->resident_bytes(), 0u);
    for (std::size_t b = 0; b < 6; ++b) expect_block(b, static_cast<std::uint32_t>(passes));
    ctx->impl().check_invariants();
}

TEST_P(budget, blocks_in_use_by_a_running_kernel_are_not_evicted) {
    make_blocks(5);
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_fill));
    const std::uint32_t rounds = 4000;
    // Blocks 1-3 are read-mostly, so block 0 would go first were it idle.
    for (std::size_t b = 1; b < 4; ++b) {
        ctx->advise(blocks[b], block_words, usm::advice::read_mostly);
        ctx->prefetch(blocks[b], block_words, *dev).wait();
    }
    usm::event running = dev->launch(slow, groups_for(block_words), usm::group{64}, usm::write(blocks[0], block_words),
                                     static_cast<std::uint32_t>(block_words), rounds);
    usm::event moved = ctx->prefetch(blocks[4], block_words, *dev);  // needs one block evicted
    ASSERT_FALSE(running.ready()) << "the kernel ended before the prefetch: nothing was shown";
    EXPECT_EQ(device_pages(0), block_pages);
    EXPECT_EQ(device_pages(1), 0u);  // the least recently used idle block went instead
    moved.wait();
    running.wait();
    for (std::size_t i = 0; i < block_words; i += 997)
        ASSERT_EQ(blocks[0][i], slow_value(static_cast<std::uint32_t>(i), rounds)) << i;
    ctx->impl().check_invariants();
}

TEST_P(budget, when_only_blocks_in_use_could_go_the_prefetch_waits_for_their_kernel) {
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_fill));
    const std::size_t n = budget_blocks * block_words;
    const std::uint32_t rounds = 300;
    auto big = ctx->alloc<std::uint32_t>(n);
    make_blocks(1);
    dev->launch(slow, groups_for(n), usm::group{64}, usm::write(big, n), static_cast<std::uint32_t>(n), rounds);
    const usm::stats before = ctx->stats();
    ctx->prefetch(blocks[0], block_words, *dev).wait();  // the budget is full of the running kernel's blocks
    const usm::stats d = since(before);
    EXPECT_GE(d.kernel_waits, 1u);
    EXPECT_EQ(d.blocks_evicted, 1u);
    EXPECT_EQ(d.pages_written_back, block_pages);  // the kernel's output, saved before the block went
    EXPECT_EQ(ctx->query(big, n).device_pages[0], (budget_blocks - 1) * block_pages);
    for (std::size_t i = 0; i < n; i += 997) ASSERT_EQ(big[i], slow_value(static_cast<std::uint32_t>(i), rounds)) << i;
    ctx->impl().check_invariants();
    ctx->free(big);
}

TEST_P(budget, a_launch_larger_than_the_budget_fails_naming_it_and_loses_nothing) {
    auto big = ctx->alloc<std::uint32_t>((budget_blocks + 1) * block_words);
    for (std::size_t i = 0; i < (budget_blocks + 1) * block_words; i += 1024) big[i] = static_cast<std::uint32_t>(i);
    try {
        dev->launch(increment, groups_for((budget_blocks + 1) * block_words), usm::group{64},
                    usm::read_write(big, (budget_blocks + 1) * block_words),
                    static_cast<std::uint32_t>((budget_blocks + 1) * block_words));
        FAIL() << "expected errc::out_of_memory";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::out_of_memory);
        EXPECT_NE(std::string(e.what()).find("budget of 8 MiB"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(dev->name()), std::string::npos) << e.what();
    }
    for (std::size_t i = 0; i < (budget_blocks + 1) * block_words; i += 1024)
        ASSERT_EQ(big[i], static_cast<std::uint32_t>(i));
    EXPECT_THROW(ctx->prefetch(big, (budget_blocks + 1) * block_words, *dev), usm::error);
    ctx->free(big);
}

TEST_P(budget, advice_with_a_wrong_location_or_range_is_rejected) {
    auto x = ctx->alloc<std::uint32_t>(1024);
    auto code = [&](auto&& f) {
        try {
            f();
        } catch (const usm::error& e) {
            return e.kind();
        }
        return usm::errc{};
    };
    EXPECT_EQ(code([&] { ctx->advise(x, 1024, usm::advice::preferred_location); }), usm::errc::invalid_argument);
    EXPECT_EQ(code([&] { ctx->advise(x, 1024, usm::advice::read_mostly, *dev); }), usm::errc::invalid_argument);
    EXPECT_EQ(code([&] { ctx->advise(x, 1025, usm::advice::read_mostly); }), usm::errc::out_of_range);
    EXPECT_EQ(code([&] { ctx->advise(x, 1024, usm::advice::accessed_by); }), usm::errc::invalid_argument);
    EXPECT_EQ(code([&] { ctx->advise(x, 1024, usm::advice::accessed_by, usm::host); }), usm::errc::invalid_argument);
    int local = 0;
    EXPECT_EQ(code([&] { ctx->advise(usm::ptr<int>(&local), 1, usm::advice::read_mostly); }),
              usm::errc::not_a_usm_pointer);
    EXPECT_EQ(code([&] { ctx->query(x, 1025); }), usm::errc::out_of_range);
    EXPECT_FALSE(ctx->query(x, 1024).read_mostly);
    ctx->free(x);
}

TEST_P(budget, accessed_by_pages_are_used_in_place_taking_no_device_memory) {
    if (!dev->properties().host_memory_in_place) {
        // lavapipe and PoCL both can: in CI this must run.
        if (usm_test::in_ci()) FAIL() << dev->name() << " cannot access host memory in place";
        GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    }
    // Six blocks through a four-block budget: in place, nothing is evicted.
    make_blocks(6);
    for (auto& b : blocks) ctx->advise(b, block_words, usm::advice::accessed_by, *dev);
    EXPECT_EQ(ctx->query(blocks[0], block_words).accessed_by, std::vector<std::size_t>{0});
    const usm::stats before = ctx->stats();
    for (std::size_t b = 0; b < 6; ++b) increment_block(b);
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_in_place, 6 * block_pages);
    EXPECT_EQ(d.pages_to_device, 0u);
    EXPECT_EQ(d.pages_zero_filled, 0u);
    EXPECT_EQ(d.blocks_evicted, 0u);
    EXPECT_EQ(dev->resident_bytes(), 0u);
    EXPECT_EQ(device_pages(0), 0u);
    ctx->impl().check_invariants();
    // The kernels wrote host memory: reading it faults (the device was the
    // writer) but copies nothing.
    const usm::stats read = ctx->stats();
    for (std::size_t b = 0; b < 6; ++b) expect_block(b, 1);
    d = since(read);
    EXPECT_GT(d.host_read_faults, 0u);
    EXPECT_EQ(d.pages_to_host, 0u);
    ctx->impl().check_invariants();
}

TEST_P(budget, in_place_and_migrating_launches_hand_pages_over_correctly) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    make_blocks(1);
    ctx->advise(blocks[0], block_words, usm::advice::accessed_by, *dev);
    increment_block(0);  // in place: the device's copy is the host memory
    ctx->advise(blocks[0], block_words, usm::advice::unset_accessed_by, *dev);
    EXPECT_TRUE(ctx->query(blocks[0], block_words).accessed_by.empty());
    usm::stats before = ctx->stats();
    increment_block(0);  // migrates: the mirror needs the bytes, straight from host memory
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_in_place, 0u);
    EXPECT_EQ(d.pages_to_device, block_pages);
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(device_pages(0), block_pages);
    ctx->advise(blocks[0], block_words, usm::advice::accessed_by, *dev);
    before = ctx->stats();
    increment_block(0);  // in place again: the mirror's newer bytes come home first
    d = since(before);
    EXPECT_EQ(d.pages_in_place, block_pages);
    EXPECT_EQ(d.pages_to_host, block_pages);
    EXPECT_EQ(device_pages(0), 0u);
    expect_block(0, 3);
    ctx->impl().check_invariants();
}

TEST_P(budget, a_migrating_launch_after_an_in_place_kernel_reads_what_that_kernel_wrote) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    // Small enough for a CPU copy where the device has them: the upload must
    // still come after the in-place kernel still writing host memory.
    const std::size_t n = 64 * 1024;
    auto x = ctx->alloc<std::uint32_t>(n);
    ctx->advise(x, n, usm::advice::accessed_by, *dev);
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_fill));
    const std::uint32_t rounds = 20000;
    dev->launch(slow, groups_for(n), usm::group{64}, usm::write(x, n), static_cast<std::uint32_t>(n), rounds);
    ctx->advise(x, n, usm::advice::unset_accessed_by, *dev);
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), static_cast<std::uint32_t>(n)).wait();
    for (std::size_t i = 0; i < n; i += 61) ASSERT_EQ(x[i], slow_value(static_cast<std::uint32_t>(i), rounds) + 1) << i;
    ctx->free(x);
}

TEST_P(budget, host_access_waits_for_an_in_place_kernel) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    make_blocks(1);
    ctx->advise(blocks[0], block_words, usm::advice::accessed_by, *dev);
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_fill));
    const std::uint32_t rounds = 3000;
    usm::event running = dev->launch(slow, groups_for(block_words), usm::group{64}, usm::write(blocks[0], block_words),
                                     static_cast<std::uint32_t>(block_words), rounds);
    const usm::stats before = ctx->stats();
    blocks[0][5] = 7;  // must wait for the kernel that writes this memory in place
    EXPECT_TRUE(running.ready());
    EXPECT_GE(since(before).kernel_waits, 1u);
    EXPECT_EQ(blocks[0][5], 7u);
    for (std::size_t i = 997; i < block_words; i += 997)
        ASSERT_EQ(blocks[0][i], slow_value(static_cast<std::uint32_t>(i), rounds)) << i;
    ctx->impl().check_invariants();
}

TEST_P(budget, a_block_handed_back_and_forth_with_the_host_is_then_accessed_in_place) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    make_blocks(1);
    // Each round the host writes the block and a kernel updates it: without
    // help the block crosses twice a round.
    std::vector<std::uint64_t> moved;
    for (std::uint32_t round = 1; round <= 8; ++round) {
        const usm::stats before = ctx->stats();
        for (std::size_t i = 0; i < block_words; i += 512) blocks[0][i] = host_value(0, i) + round;
        increment_block(0);
        const usm::stats d = since(before);
        moved.push_back(d.pages_to_device + d.pages_to_host);
        for (std::size_t i = 0; i < block_words; i += 512) ASSERT_EQ(blocks[0][i], host_value(0, i) + round + 1);
    }
    // The fifth launch finds it handed over for the fourth time: from the
    // sixth round on it stays in host memory.
    EXPECT_EQ(ctx->stats().blocks_in_place, 1u);
    EXPECT_EQ(ctx->query(blocks[0], block_words).accessed_by, std::vector<std::size_t>{0});
    EXPECT_GT(moved[2], 0u);
    for (std::size_t round = 5; round < moved.size(); ++round) EXPECT_EQ(moved[round], 0u) << "round " << round + 1;
    EXPECT_EQ(device_pages(0), 0u);
    ctx->impl().check_invariants();
}

TEST_P(budget, device_memory_left_empty_by_host_writes_is_given_back) {
    // Each block's device copy is dropped by a host write, not by eviction:
    // its segment must still go back once the driver holds more than the
    // budget.
    usm::detail::device_slot& slot = *dev->slot();
    for (std::size_t k = 0; k < 16; ++k) {
        auto x = ctx->alloc<std::uint32_t>(block_words);
        dev->launch(increment, groups_for(block_words), usm::group{64}, usm::read_write(x, block_words),
                    static_cast<std::uint32_t>(block_words))
            .wait();
        for (std::size_t i = 0; i < block_words; i += 1024) x[i] = 5;
        EXPECT_LE(slot.segment_pages_live, slot.budget_pages + block_pages) << "after allocation " << k;
        blocks.push_back(x);  // freed by TearDown
    }
    EXPECT_EQ(dev->resident_bytes(), 0u);
    ctx->impl().check_invariants();
}

TEST_P(budget, a_host_read_does_not_move_home_a_page_an_in_place_kernel_is_reading) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << dev->name() << " cannot access host memory in place";
    const std::size_t n = 64 * 1024;
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_add));
    auto x = ctx->alloc<std::uint32_t>(n, usm::placement::host());
    auto y = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 1;
    ctx->advise(x, n, usm::advice::accessed_by, *dev);
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), static_cast<std::uint32_t>(n))
        .wait();  // x is 2, valid in place only
    // Long enough for the host read below to come while the kernel runs:
    // about 0.5 s on llvmpipe and 1 s on PoCL (2 cores), against the
    // microseconds between the launch and the read.
    const std::uint32_t rounds = 10000;
    usm::event running = dev->launch(slow, groups_for(n), usm::group{64}, usm::read(x, n), usm::write(y, n),
                                     static_cast<std::uint32_t>(n), rounds);
    EXPECT_EQ(x[0], 2u);  // shared with the in-place copy, not moved home
    ASSERT_FALSE(running.ready()) << "the kernel ended before the host read: nothing was shown";
    const usm::stats before = ctx->stats();
    x[0] = 1000;  // must wait for the kernel reading it
    EXPECT_GE(since(before).kernel_waits, 1u);
    EXPECT_TRUE(running.ready());
    EXPECT_EQ(y[0], 2 + slow_value(0, rounds));
    EXPECT_EQ(y[n - 1], 2 + slow_value(static_cast<std::uint32_t>(n - 1), rounds));
    ctx->free(x);
    ctx->free(y);
}

USM_INSTANTIATE_PER_BACKEND(budget);

/// A budget where bouncing blocks are pinned on the device instead of used
/// in place (what devices that cannot reach host memory do).
class pinning : public budget {
protected:
    usm::context_options options() const override {
        usm::context_options o = budget::options();
        o.thrashing = "pin";
        return o;
    }
};

TEST_P(pinning, a_cycle_just_past_the_budget_pins_bouncing_blocks_and_evicts_less) {
    // Six blocks used in turn through four blocks of budget: LRU evicts each
    // block just before its next use, so every launch would move a block.
    make_blocks(6);
    const std::size_t passes = 6;
    std::vector<std::uint64_t> moved(passes);
    const usm::stats before = ctx->stats();
    for (std::size_t pass = 0; pass < passes; ++pass) {
        const std::uint64_t at = ctx->stats().pages_to_device;
        for (std::size_t b = 0; b < 6; ++b) increment_block(b);
        moved[pass] = ctx->stats().pages_to_device - at;
        EXPECT_LE(dev->resident_bytes(), dev->budget());
    }
    const usm::stats d = since(before);
    // Blocks bounce twice by the third pass; pinned ones fill half the budget.
    EXPECT_GE(d.blocks_pinned, 2u);
    EXPECT_EQ(moved[0], 6 * block_pages);
    for (std::size_t pass = 3; pass < passes; ++pass)
        EXPECT_LE(moved[pass], 4 * block_pages) << "pass " << pass << " moved as much as plain LRU";
    for (std::size_t b = 0; b < 6; ++b) expect_block(b, static_cast<std::uint32_t>(passes));
    ctx->impl().check_invariants();
}

USM_INSTANTIATE_PER_BACKEND(pinning);

/// A context whose device copies are made of 2 MiB segments.
class segments : public device_test {
protected:
    usm::context_options options() const override {
        usm::context_options o;
        o.segment_size = block_bytes;
        o.device_budget = budget_blocks * block_bytes;
        return o;
    }
};

TEST_P(segments, an_allocation_of_several_segments_migrates_and_evicts_by_segment) {
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    const std::size_t n = 6 * block_words + 1000;  // seven segments, the last one short
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
    // One launch per segment-aligned window, the last one short.
    for (std::size_t at = 0; at < n; at += block_words) {
        const std::size_t count = std::min(block_words, n - at);
        dev->launch(increment, groups_for(count), usm::group{64}, usm::read_write(x + at, count),
                    static_cast<std::uint32_t>(count));
        EXPECT_LE(dev->resident_bytes(), dev->budget());
    }
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], static_cast<std::uint32_t>(i) + 1) << i;
    // A window across two segments cannot be one device pointer.
    try {
        dev->launch(increment, groups_for(2), usm::group{64}, usm::read_write(x + block_words - 1, 2),
                    std::uint32_t{2});
        FAIL() << "expected errc::unsupported";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::unsupported);
        EXPECT_NE(std::string(e.what()).find("spans two device buffers"), std::string::npos) << e.what();
    }
    EXPECT_EQ(x[block_words - 1], static_cast<std::uint32_t>(block_words - 1) + 1);
    ctx->impl().check_invariants();
    ctx->free(x);
}

USM_INSTANTIATE_PER_BACKEND(segments);

TEST_P(device_test, an_allocation_larger_than_the_largest_device_buffer_works) {
    // PoCL's largest buffer is 8 GiB on a 24 GiB machine (CL_DEVICE_MAX_MEM_ALLOC_SIZE, a share of the RAM it
    // reports), lavapipe's far less: the allocation is just past it either way. Only the two windows below are
    // ever touched, on the host and in the device's buffers (an untouched buffer is address space, not memory
    // the driver fills), so it costs a few MiB and fits in the context's 64 GiB of address space.
    const std::size_t largest = dev->properties().max_allocation;
    ASSERT_LT(largest + block_bytes, usm::context_options{}.va_size) << "the allocation would not fit the reservation";
    usm::detail::device_slot& slot = *dev->slot();
    ASSERT_EQ(slot.segment_pages, largest / 4096) << "segments default to the device's largest buffer";
    // Windows at both ends: the first in a segment of the largest buffer's
    // size, the last in a second segment.
    const std::size_t n = largest / sizeof(std::uint32_t) + block_words;
    auto x = ctx->alloc<std::uint32_t>(n);
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    const std::size_t live_before = slot.segment_pages_live;
    const std::size_t segment_pages[] = {largest / 4096, block_pages};
    std::size_t live_expected = live_before;
    std::size_t window = 0;
    for (std::size_t at : {std::size_t{0}, n - block_words}) {
        for (std::size_t i = 0; i < block_words; ++i) x[at + i] = static_cast<std::uint32_t>(i);
        dev->launch(increment, groups_for(block_words), usm::group{64}, usm::read_write(x + at, block_words),
                    static_cast<std::uint32_t>(block_words))
            .wait();
        // One device buffer per segment, made when its first page arrives:
        // the whole largest buffer, then the short tail.
        live_expected += segment_pages[window++];
        EXPECT_EQ(slot.segment_pages_live, live_expected) << "after the window at " << at;
        for (std::size_t i = 0; i < block_words; ++i) ASSERT_EQ(x[at + i], static_cast<std::uint32_t>(i) + 1) << at + i;
    }
    EXPECT_EQ(ctx->query(x, n).device_pages[0], 2 * block_pages);
    ctx->free(x);
    EXPECT_EQ(slot.segment_pages_live, live_before);
}

}  // namespace

USM_INSTANTIATE_PER_BACKEND(device_test);
