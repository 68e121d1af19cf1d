// Device page tables: kernels that follow usm addresses through the table
// (usm::any, usm::declared), device faults, replay, and checked mode. Run
// on both backends; test kernels are shaders/test_gather and test_scatter.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <kernels/list_append_cl.hpp>
#include <kernels/list_append_comp.hpp>
#include <kernels/list_sum_cl.hpp>
#include <kernels/list_sum_comp.hpp>
#include <kernels/test_gather_cl.hpp>
#include <kernels/test_gather_comp.hpp>
#include <kernels/test_scatter_cl.hpp>
#include <kernels/test_scatter_comp.hpp>
#include <kernels/tree_find_cl.hpp>
#include <kernels/tree_find_comp.hpp>

#include "core/context_impl.hpp"
#include "core/fault_injection.hpp"
#include "support.hpp"

namespace {

using usm_test::device_test;

constexpr std::size_t words_per_page = 1024;

std::string hex(std::uint64_t address) {
    std::ostringstream out;
    out << reinterpret_cast<const void*>(static_cast<std::uintptr_t>(address));
    return out.str();
}

/// Blocks of one page: each device fault brings exactly its page, so the
/// counts below are exact.
class device_faults : public device_test {
protected:
    usm::context_options options() const override {
        usm::context_options o;
        o.block_size = 4096;
        return o;
    }

    /// `pages` pages of words, word i holding i * 3 + 1, and one address
    /// per page (word 5 of it) in `where`.
    void make_pages(std::size_t pages) {
        data = ctx->alloc<std::uint32_t>(pages * words_per_page);
        for (std::size_t i = 0; i < pages * words_per_page; ++i) data[i] = static_cast<std::uint32_t>(i * 3 + 1);
        where = ctx->alloc<std::uint64_t>(pages);
        for (std::size_t p = 0; p < pages; ++p) where[p] = (data + p * words_per_page + 5).address();
        out = ctx->alloc<std::uint32_t>(pages);
        count = pages;
    }
    void expect_gathered() {
        for (std::size_t p = 0; p < count; ++p) EXPECT_EQ(out[p], (p * words_per_page + 5) * 3 + 1) << "page " << p;
    }
    usm::event gather(bool replayable) {
        usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_gather));
        const auto n = static_cast<std::uint32_t>(count);
        if (replayable)
            return dev->launch(k, usm::grid{1}, usm::group{64}, usm::replayable, usm::any, usm::read(where, count),
                               usm::write(out, count), n);
        return dev->launch(k, usm::grid{1}, usm::group{64}, usm::any, usm::read(where, count), usm::write(out, count),
                           n);
    }

    usm::ptr<std::uint32_t> data;
    usm::ptr<std::uint64_t> where;
    usm::ptr<std::uint32_t> out;
    std::size_t count = 0;
};

TEST_P(device_faults, replayable_kernel_reaching_undeclared_pages_is_served_and_replayed) {
    make_pages(8);
    const usm::stats before = ctx->stats();
    gather(true).wait();
    const usm::stats d = since(before);
    expect_gathered();
    EXPECT_EQ(d.device_faults, 8u) << "one read fault per page the device lacked";
    EXPECT_EQ(d.replays, 1u);
    EXPECT_EQ(d.launches, 2u) << "the first run, then its replay";
    EXPECT_EQ(d.pages_to_device, 8u + 1u) << "the faulted pages and the declared `where`";
    ctx->impl().check_invariants();

    // The device holds them now: no fault, no replay.
    const usm::stats again = ctx->stats();
    for (std::size_t p = 0; p < count; ++p) out[p] = 0;
    gather(true).wait();
    EXPECT_EQ(since(again).device_faults, 0u);
    EXPECT_EQ(since(again).replays, 0u);
    expect_gathered();
}

TEST_P(device_faults, faults_beyond_the_log_are_counted_and_served_in_more_rounds) {
    make_pages(300);  // more than the 229 records one round keeps
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_gather));
    const usm::stats before = ctx->stats();
    dev->launch(k, usm::grid{5}, usm::group{64}, usm::replayable, usm::any, usm::read(where, count),
                usm::write(out, count), static_cast<std::uint32_t>(count))
        .wait();
    const usm::stats d = since(before);
    expect_gathered();
    EXPECT_EQ(d.device_faults, 300u + 71u) << "300 in the first round, the 71 not recorded again in the second";
    EXPECT_EQ(d.replays, 2u);
}

TEST_P(device_faults, write_faults_take_the_page_and_the_host_reads_the_stores) {
    make_pages(4);
    // Make the pages shared with the device first (a read), so the stores
    // fault for write permission, not for the page.
    gather(true).wait();
    usm::ptr<std::uint32_t> values = ctx->alloc<std::uint32_t>(count);
    usm::ptr<std::uint32_t> done = ctx->alloc<std::uint32_t>(count);
    for (std::size_t p = 0; p < count; ++p) values[p] = static_cast<std::uint32_t>(900 + p);
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_scatter));
    const usm::stats before = ctx->stats();
    dev->launch(k, usm::grid{1}, usm::group{64}, usm::replayable, usm::any, usm::read(where, count),
                usm::read(values, count), usm::write(done, count), usm::read_write(out, count),
                static_cast<std::uint32_t>(count))
        .wait();
    const usm::stats d = since(before);
    EXPECT_EQ(d.device_faults, 4u) << "one write fault per page the device held read-only";
    EXPECT_EQ(d.replays, 1u);
    for (std::size_t p = 0; p < count; ++p) {
        EXPECT_EQ(done[p], 1u);
        EXPECT_EQ(data[p * words_per_page + 5], 900 + p) << "page " << p;
        EXPECT_EQ(data[p * words_per_page + 6], (p * words_per_page + 6) * 3 + 1) << "its neighbour is untouched";
    }
    ctx->impl().check_invariants();
}

TEST_P(device_faults, a_write_fault_takes_its_page_alone) {
    make_pages(4);  // host-only, written by the host
    usm::ptr<std::uint64_t> at = ctx->alloc<std::uint64_t>(1);
    usm::ptr<std::uint32_t> values = ctx->alloc<std::uint32_t>(1);
    usm::ptr<std::uint32_t> done = ctx->alloc<std::uint32_t>(1);
    at[0] = (data + 2 * words_per_page + 9).address();
    values[0] = 4242;
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_scatter));
    dev->launch(k, usm::grid{1}, usm::group{1}, usm::replayable, usm::any, usm::read(at, 1), usm::read(values, 1),
                usm::write(done, 1), usm::read_write(out, 1), std::uint32_t{1})
        .wait();
    const usm::range_info info = ctx->query(data, 4 * words_per_page);
    EXPECT_EQ(info.device_pages.at(0), 1u) << "only the written page went to the device";
    EXPECT_EQ(info.host_pages, 3u);
    EXPECT_EQ(done[0], 1u);
    EXPECT_EQ(data[2 * words_per_page + 9], 4242u);
    EXPECT_EQ(ctx->stats(data).device_faults, 1u);
}

TEST_P(device_faults, non_replayable_kernel_raises_device_fault_naming_the_address) {
    make_pages(3);
    try {
        gather(false).wait();
        FAIL() << "expected errc::device_fault";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::device_fault) << e.what();
        const std::string what = e.what();
        EXPECT_NE(what.find(hex(where[0])), std::string::npos) << what;
        const std::string kernel_name = dev->backend() == usm::backend::vulkan ? "'main'" : "'test_gather'";
        EXPECT_NE(what.find(kernel_name), std::string::npos) << what;
        EXPECT_NE(what.find(dev->name()), std::string::npos) << what;
        EXPECT_NE(what.find("read at"), std::string::npos) << what;
        EXPECT_NE(what.find("not usm::replayable"), std::string::npos) << what;
    }
    EXPECT_EQ(ctx->stats().device_faults, 3u);
    EXPECT_EQ(ctx->stats().replays, 0u);
    // Nothing was lost, and a replayable launch then completes.
    for (std::size_t p = 0; p < count * words_per_page; ++p) ASSERT_EQ(data[p], p * 3 + 1);
    gather(true).wait();
    expect_gathered();
    ctx->impl().check_invariants();
}

TEST_P(device_faults, an_address_outside_every_allocation_is_fatal_even_when_replayable) {
    make_pages(2);
    where[1] = 0x10;
    try {
        gather(true).wait();
        FAIL() << "expected errc::device_fault";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::device_fault) << e.what();
        EXPECT_NE(std::string(e.what()).find("not in a live allocation"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(hex(0x10)), std::string::npos) << e.what();
    }
}

TEST_P(device_faults, declared_kernel_may_not_reach_undeclared_pages) {
    make_pages(2);
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_gather));
    try {
        dev->launch(k, usm::grid{1}, usm::group{64}, usm::replayable, usm::declared, usm::read(where, count),
                    usm::write(out, count), static_cast<std::uint32_t>(count))
            .wait();
        FAIL() << "expected errc::device_fault";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::device_fault) << e.what();
        EXPECT_NE(std::string(e.what()).find("outside the launch's declared ranges"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ctx->stats().replays, 0u) << "faults outside the declared ranges are never served";

    // Even pages the device holds (brought by a usm::any launch) are out of
    // a usm::declared kernel's reach.
    gather(true).wait();
    expect_gathered();
    EXPECT_THROW(dev->launch(k, usm::grid{1}, usm::group{64}, usm::declared, usm::read(where, count),
                             usm::write(out, count), static_cast<std::uint32_t>(count)),
                 usm::error);
}

TEST_P(device_faults, replayable_without_the_page_table_is_invalid) {
    make_pages(1);
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_gather));
    try {
        dev->launch(k, usm::grid{1}, usm::group{64}, usm::replayable, usm::read(where, count), usm::write(out, count),
                    static_cast<std::uint32_t>(count));
        FAIL() << "expected errc::invalid_argument";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::invalid_argument) << e.what();
        EXPECT_NE(std::string(e.what()).find("usm::replayable"), std::string::npos) << e.what();
    }
}

TEST_P(device_faults, linked_list_built_on_the_host_is_summed_and_extended_by_the_device) {
    struct node {
        usm::ptr<node> next;
        std::uint32_t value = 0;
        std::uint32_t list = 0;
    };
    const std::uint32_t lists = 4;
    const std::size_t per_list = 300;  // 16-byte nodes: 4 lists span 5 pages
    usm::ptr<node> pool = ctx->alloc<node>(lists * per_list);
    usm::ptr<usm::ptr<node>> heads = ctx->alloc<usm::ptr<node>>(lists);
    std::vector<std::uint32_t> expected(lists, 0);
    for (std::uint32_t l = 0; l < lists; ++l)
        for (std::size_t k = 0; k < per_list; ++k) {
            // Interleaved: node k of list l at slot k * lists + l, linked
            // backwards, so every list crosses every page.
            usm::ptr<node> n = pool + (k * lists + l);
            n->value = static_cast<std::uint32_t>(l * 1000 + k);
            n->next = heads[l];
            heads[l] = n;
            expected[l] += n->value;
        }
    usm::ptr<std::uint32_t> sums = ctx->alloc<std::uint32_t>(lists);
    usm::kernel sum = usm_test::load(*dev, {usm::kernels::list_sum_comp, usm::kernels::list_sum_cl, "list_sum"});
    usm::kernel append =
        usm_test::load(*dev, {usm::kernels::list_append_comp, usm::kernels::list_append_cl, "list_append"});

    const usm::stats before = ctx->stats();
    dev->launch(sum, usm::grid{1}, usm::group{lists}, usm::replayable, usm::any, usm::read(heads, lists),
                usm::write(sums, lists), lists)
        .wait();
    for (std::uint32_t l = 0; l < lists; ++l) EXPECT_EQ(sums[l], expected[l]) << "list " << l;
    EXPECT_GT(since(before).device_faults, 0u);
    EXPECT_GE(since(before).replays, 1u);

    usm::ptr<node> fresh = ctx->alloc<node>(lists);
    dev->launch(append, usm::grid{1}, usm::group{lists}, usm::replayable, usm::any, usm::read(heads, lists),
                fresh.address(), lists)
        .wait();
    for (std::uint32_t l = 0; l < lists; ++l) {
        std::size_t length = 0;
        usm::ptr<node> last;
        for (usm::ptr<node> n = heads[l]; n; n = n->next, ++length) last = n;
        EXPECT_EQ(length, per_list + 1) << "list " << l;
        EXPECT_EQ(last, fresh + l);
        EXPECT_EQ(last->value, 1000 + l);
        EXPECT_EQ(last->list, l);
    }
    ctx->impl().check_invariants();
}

TEST_P(device_faults, tree_built_on_the_host_is_queried_by_the_device) {
    struct tree_node {
        usm::ptr<tree_node> left, right;
        std::uint32_t key = 0, value = 0;
    };
    const std::uint32_t keys = 2000;
    usm::ptr<tree_node> nodes = ctx->alloc<tree_node>(keys);
    usm::ptr<tree_node> root;
    for (std::uint32_t i = 0; i < keys; ++i) {
        const std::uint32_t key = (i * 7919u) % 4001u * 2u;  // distinct, even, scrambled
        usm::ptr<tree_node> n = nodes + i;
        n->key = key;
        n->value = i;
        usm::ptr<tree_node>* link = &root;
        while (*link) link = key < (*link)->key ? &(*link)->left : &(*link)->right;
        *link = n;
    }
    const std::uint32_t q = 256;
    usm::ptr<std::uint32_t> queries = ctx->alloc<std::uint32_t>(q);
    usm::ptr<std::uint32_t> results = ctx->alloc<std::uint32_t>(q);
    for (std::uint32_t i = 0; i < q; ++i) queries[i] = i % 2 == 0 ? ((i * 31u) % keys * 7919u) % 4001u * 2u : 2 * i + 1;
    usm::kernel find = usm_test::load(*dev, {usm::kernels::tree_find_comp, usm::kernels::tree_find_cl, "tree_find"});
    dev->launch(find, usm::grid{q / 64}, usm::group{64}, usm::replayable, usm::any, usm::read(queries, q),
                usm::write(results, q), root.address(), q)
        .wait();
    for (std::uint32_t i = 0; i < q; ++i) {
        const std::uint32_t expected = i % 2 == 0 ? (i * 31u) % keys : 0xffffffffu;
        EXPECT_EQ(results[i], expected) << "query " << i << " (key " << queries[i] << ")";
    }
}

TEST_P(device_faults, a_page_read_in_place_is_read_only_even_if_the_device_held_it_alone) {
    if (!dev->properties().host_memory_in_place) GTEST_SKIP() << "the device cannot use host memory in place";
    // The device takes the page for writing, then the allocation is advised
    // accessed_by it, and a launch declares it read: staging brings the page
    // home for in-place use, so the kernel and the host share it, and a store
    // through the table must fault, not write host memory under the host.
    usm::ptr<std::uint32_t> page = ctx->alloc<std::uint32_t>(words_per_page);
    usm::ptr<std::uint64_t> at = ctx->alloc<std::uint64_t>(1);
    usm::ptr<std::uint32_t> values = ctx->alloc<std::uint32_t>(1);
    usm::ptr<std::uint32_t> done = ctx->alloc<std::uint32_t>(1);
    page[0] = 5;
    at[0] = (page + 1).address();
    values[0] = 1;
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_scatter));
    dev->launch(k, usm::grid{1}, usm::group{1}, usm::any, usm::read(at, 1), usm::read(values, 1), usm::write(done, 1),
                usm::read_write(page, words_per_page), std::uint32_t{1})
        .wait();
    ASSERT_EQ(ctx->query(page, words_per_page).device_pages.at(0), 1u);
    ctx->advise(page, words_per_page, usm::advice::accessed_by, *dev);
    at[0] = page.address();
    values[0] = 999;
    EXPECT_THROW(dev->launch(k, usm::grid{1}, usm::group{1}, usm::any, usm::read(at, 1), usm::read(values, 1),
                             usm::write(done, 1), usm::read(page, words_per_page), std::uint32_t{1}),
                 usm::error);
    EXPECT_EQ(done[0], 0u);
    EXPECT_EQ(page[0], 5u);
    EXPECT_EQ(page[1], 1u);
    ctx->impl().check_invariants();
}

TEST_P(device_faults, a_failed_upload_leaves_no_stale_grant_in_the_table) {
    make_pages(4);
    gather(true).wait();  // the device holds the pages; the table says so
    // The host writes every page back (the device's copies are dropped),
    // then the next launch's batch (table changes included) fails.
    for (std::size_t p = 0; p < count; ++p) data[p * words_per_page + 5] = static_cast<std::uint32_t>(77 + p);
    usm::detail::testing::inject_failure(usm::detail::testing::injected_call::upload);
    EXPECT_THROW(gather(true).wait(), usm::error);
    usm::detail::testing::clear_injected_failures();
    // The next launch sees the host's values: the device's stale copies are
    // not granted by a table the failed batch left half written.
    const usm::stats before = ctx->stats();
    gather(true).wait();
    for (std::size_t p = 0; p < count; ++p) EXPECT_EQ(out[p], 77 + p) << "page " << p;
    EXPECT_EQ(since(before).device_faults, count) << "each page faulted in again";
    ctx->impl().check_invariants();
}

TEST_P(device_faults, table_launches_from_several_threads_with_host_traffic_beside_them) {
    // Each thread owns its data and pointers; all launch through the one
    // table of the device (one at a time), while the host rewrites its data
    // between launches, so every launch faults its pages back in.
    constexpr int threads = 3, rounds = 6;
    constexpr std::size_t pages = 4;
    std::vector<std::thread> workers;
    std::atomic<int> wrong{0};
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            try {
                usm::ptr<std::uint32_t> mine = ctx->alloc<std::uint32_t>(pages * words_per_page);
                usm::ptr<std::uint64_t> at = ctx->alloc<std::uint64_t>(pages);
                usm::ptr<std::uint32_t> got = ctx->alloc<std::uint32_t>(pages);
                for (std::size_t p = 0; p < pages; ++p) at[p] = (mine + p * words_per_page + 7).address();
                usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_gather));
                for (int r = 0; r < rounds; ++r) {
                    for (std::size_t p = 0; p < pages; ++p)
                        mine[p * words_per_page + 7] = static_cast<std::uint32_t>(t * 100 + r * 10 + p);
                    dev->launch(k, usm::grid{1}, usm::group{64}, usm::replayable, usm::any, usm::read(at, pages),
                                usm::write(got, pages), static_cast<std::uint32_t>(pages))
                        .wait();
                    for (std::size_t p = 0; p < pages; ++p)
                        if (got[p] != static_cast<std::uint32_t>(t * 100 + r * 10 + p)) ++wrong;
                }
            } catch (const std::exception& e) {
                ADD_FAILURE() << "thread " << t << ": " << e.what();
            }
        });
    for (std::thread& w : workers) w.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_GE(ctx->stats().device_faults, std::uint64_t{threads * rounds * pages});
    ctx->impl().check_invariants();
}

USM_INSTANTIATE_PER_BACKEND(device_faults);

/// Checked mode (context_options::check, USM_CHECK=1).
class checked_mode : public device_test {
protected:
    usm::context_options options() const override {
        usm::context_options o;
        o.check = true;
        return o;
    }
};

TEST_P(checked_mode, reports_an_out_of_range_write_and_leaves_memory_unchanged) {
    const std::size_t n = 16;
    usm::ptr<std::uint32_t> target = ctx->alloc<std::uint32_t>(n + 16);
    for (std::size_t i = 0; i < n + 16; ++i) target[i] = static_cast<std::uint32_t>(500 + i);
    usm::ptr<std::uint64_t> where = ctx->alloc<std::uint64_t>(1);
    usm::ptr<std::uint32_t> values = ctx->alloc<std::uint32_t>(1);
    usm::ptr<std::uint32_t> done = ctx->alloc<std::uint32_t>(1);
    where[0] = (target + n).address();  // one past the declared n words, in the same page
    values[0] = 7;
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_scatter));
    try {
        dev->launch(k, usm::grid{1}, usm::group{1}, usm::declared, usm::read(where, 1), usm::read(values, 1),
                    usm::write(done, 1), usm::read_write(target, n), std::uint32_t{1})
            .wait();
        FAIL() << "expected errc::device_fault";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::device_fault) << e.what();
        const std::string what = e.what();
        EXPECT_NE(what.find("write at " + hex(where[0])), std::string::npos) << what;
        EXPECT_NE(what.find("checked mode"), std::string::npos) << what;
    }
    EXPECT_EQ(done[0], 0u) << "the helper refused the store";
    for (std::size_t i = 0; i < n + 16; ++i) EXPECT_EQ(target[i], 500 + i) << "word " << i;
    EXPECT_EQ(ctx->stats().device_faults, 1u);

    // Inside the declared range, the same store goes through.
    where[0] = (target + (n - 1)).address();
    dev->launch(k, usm::grid{1}, usm::group{1}, usm::declared, usm::read(where, 1), usm::read(values, 1),
                usm::write(done, 1), usm::read_write(target, n), std::uint32_t{1})
        .wait();
    EXPECT_EQ(done[0], 1u);
    EXPECT_EQ(target[n - 1], 7u);
    EXPECT_EQ(ctx->stats().device_faults, 1u);
}

TEST_P(checked_mode, reports_a_write_to_a_range_declared_read) {
    usm::ptr<std::uint32_t> target = ctx->alloc<std::uint32_t>(8);
    usm::ptr<std::uint64_t> where = ctx->alloc<std::uint64_t>(1);
    usm::ptr<std::uint32_t> values = ctx->alloc<std::uint32_t>(1);
    usm::ptr<std::uint32_t> done = ctx->alloc<std::uint32_t>(1);
    where[0] = (target + 3).address();
    values[0] = 9;
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_scatter));
    try {
        dev->launch(k, usm::grid{1}, usm::group{1}, usm::declared, usm::read(where, 1), usm::read(values, 1),
                    usm::write(done, 1), usm::read(target, 8), std::uint32_t{1})
            .wait();
        FAIL() << "expected errc::device_fault";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::device_fault) << e.what();
    }
    EXPECT_EQ(target[3], 0u);
}

USM_INSTANTIATE_PER_BACKEND(checked_mode);

/// The same out-of-range store without checked mode: the page is the
/// device's to write, so nothing reports it (what checked mode is for).
TEST_P(device_faults, unchecked_out_of_range_store_within_a_declared_page_goes_unreported) {
    usm::ptr<std::uint32_t> target = ctx->alloc<std::uint32_t>(32);
    usm::ptr<std::uint64_t> address = ctx->alloc<std::uint64_t>(1);
    usm::ptr<std::uint32_t> values = ctx->alloc<std::uint32_t>(1);
    usm::ptr<std::uint32_t> done = ctx->alloc<std::uint32_t>(1);
    address[0] = (target + 16).address();
    values[0] = 7;
    usm::kernel k = usm_test::load(*dev, USM_TEST_KERNEL(test_scatter));
    dev->launch(k, usm::grid{1}, usm::group{1}, usm::declared, usm::read(address, 1), usm::read(values, 1),
                usm::write(done, 1), usm::read_write(target, 16), std::uint32_t{1})
        .wait();
    EXPECT_EQ(done[0], 1u);
    EXPECT_EQ(target[16], 7u);
    EXPECT_EQ(ctx->stats().device_faults, 0u);
}

}  // namespace
