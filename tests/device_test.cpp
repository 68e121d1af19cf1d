// tests/device_test.cpp - the migration path end to end, once per backend:
// host loops and kernels touching the same usm memory, with page movements
// checked through usm::stats.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include <kernels/saxpy_cl.hpp>
#include <kernels/saxpy_comp.hpp>
#include <kernels/test_copy_cl.hpp>
#include <kernels/test_copy_comp.hpp>
#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>
#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_slow_fill_cl.hpp>
#include <kernels/test_slow_fill_comp.hpp>

#include "core/context_impl.hpp"
#include "support.hpp"

namespace {

using usm_test::device_test;
using usm_test::fill_value;
using usm_test::slow_value;
constexpr std::size_t words_per_page = 4096 / sizeof(std::uint32_t);

usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

/* --- fresh memory ------------------------------------------------------- */

class fresh_memory : public device_test {};

TEST_P(fresh_memory, reads_zero_on_host_and_device) {
    const std::size_t n = 50'000;
    auto fresh = ctx->alloc<std::uint32_t>(n);
    auto seen = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) seen[i] = 0xdeadbeef;
    usm::kernel copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    dev->launch(copy, groups_for(n), usm::group{64}, usm::read(fresh, n), usm::write(seen, n), std::uint32_t(n)).wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 0u) << "device saw a non-zero fresh word at " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(fresh[i], 0u) << i;
    // Fresh pages reach the device by a fill, not a copy.
    EXPECT_GE(ctx->stats().pages_zero_filled, (n * 4 + 4095) / 4096);
}

TEST_P(fresh_memory, a_freed_and_reused_range_reads_zero_on_host_and_device) {
    const std::size_t n = 20'000;
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    usm::kernel copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    auto seen = ctx->alloc<std::uint32_t>(n);
    auto old = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) old[i] = 7;
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(old, n), std::uint32_t(n)).wait();
    ctx->free(old);  // its device mirror holds 8s, its host pages 7s

    auto reused = ctx->alloc<std::uint32_t>(n);
    ASSERT_EQ(reused.get(), old.get());
    dev->launch(copy, groups_for(n), usm::group{64}, usm::read(reused, n), usm::write(seen, n), std::uint32_t(n))
        .wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 0u) << "old device bytes showed through at " << i;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(reused[i], 0u) << "old host bytes showed through at " << i;
}

/* --- round trips -------------------------------------------------------- */

class round_trip : public device_test {};

TEST_P(round_trip, host_write_kernel_update_host_read_is_bit_exact) {
    const std::size_t n = 300'000;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = fill_value(static_cast<std::uint32_t>(i), 99);
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    for (int round = 1; round <= 3; ++round) {
        dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n)).wait();
        for (std::size_t i = 0; i < n; ++i)
            ASSERT_EQ(x[i], fill_value(static_cast<std::uint32_t>(i), 99) + static_cast<std::uint32_t>(round)) << i;
    }
    ctx->impl().check_invariants();
}

TEST_P(round_trip, saxpy_matches_the_cpu_bit_for_bit) {
    const std::size_t n = 100'000;
    auto x = ctx->alloc<float>(n);
    auto y = ctx->alloc<float>(n);
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(i % 777);
        y[i] = static_cast<float>(i % 13) - 6.0f;
    }
    usm::kernel saxpy = dev->backend() == usm::backend::vulkan
                            ? dev->load_kernel(usm::spirv(usm::kernels::saxpy_comp))
                            : dev->load_kernel(usm::opencl_c(usm::kernels::saxpy_cl), "saxpy");
    dev->launch(saxpy, groups_for(n), usm::group{64}, usm::read(x, n), usm::read_write(y, n), 3.0f, std::uint32_t(n))
        .wait();
    for (std::size_t i = 0; i < n; ++i)  // small integers: exact in float however it is rounded
        ASSERT_EQ(y[i], 3.0f * static_cast<float>(i % 777) + static_cast<float>(i % 13) - 6.0f) << i;
}

/* --- what moves --------------------------------------------------------- */

class migration : public device_test {};

TEST_P(migration, reading_k_scattered_elements_moves_exactly_their_pages) {
    const std::size_t n = 4 << 20;  // 16 MiB, 4096 pages
    auto out = ctx->alloc<std::uint32_t>(n);
    usm::kernel fill = usm_test::load(*dev, USM_TEST_KERNEL(test_fill));
    dev->launch(fill, usm::grid{n / 256}, usm::group{256}, usm::write(out, n), std::uint32_t(n), 1234u).wait();

    const std::size_t picks[] = {0,
                                 1,
                                 777 * words_per_page + 5,
                                 1000 * words_per_page + 1023,
                                 2049 * words_per_page,
                                 3000 * words_per_page + 17,
                                 n - 1};
    const std::size_t distinct_pages = 6;  // 0 and 1 share a page
    const usm::stats before = ctx->stats();
    for (std::size_t i : picks) ASSERT_EQ(out[i], fill_value(static_cast<std::uint32_t>(i), 1234)) << i;
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_host, distinct_pages);
    EXPECT_EQ(d.bytes_to_host, distinct_pages * 4096);
    EXPECT_EQ(d.host_read_faults, distinct_pages);
    EXPECT_EQ(d.host_write_faults, 0u);
    EXPECT_EQ(d.pages_to_device, 0u);
}

TEST_P(migration, host_reads_of_kernel_inputs_are_free_and_writes_move_only_what_changed) {
    const std::size_t n = 64 * words_per_page;  // 64 pages
    auto in = ctx->alloc<std::uint32_t>(n);
    auto out = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<std::uint32_t>(i);
    usm::kernel copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    dev->launch(copy, groups_for(n), usm::group{64}, usm::read(in, n), usm::write(out, n), std::uint32_t(n)).wait();

    // The kernel only read `in`: the host keeps a valid shared copy.
    usm::stats before = ctx->stats();
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += in[i];
    EXPECT_EQ(sum, std::uint64_t{n} * (n - 1) / 2);
    usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_host, 0u);
    EXPECT_EQ(d.host_read_faults, 0u);

    // Writing three pages takes them from the device; the next launch moves
    // exactly those three back.
    before = ctx->stats();
    in[5 * words_per_page] = 1'000'000;
    in[6 * words_per_page + 9] = 2'000'000;
    in[63 * words_per_page + 1023] = 3'000'000;
    d = since(before);
    EXPECT_EQ(d.host_write_faults, 3u);
    EXPECT_EQ(d.pages_to_host, 0u);  // the host copy was valid: nothing to fetch

    before = ctx->stats();
    dev->launch(copy, groups_for(n), usm::group{64}, usm::read(in, n), usm::write(out, n), std::uint32_t(n)).wait();
    d = since(before);
    EXPECT_EQ(d.pages_to_device, 3u);
    EXPECT_EQ(d.bytes_to_device, 3u * 4096);
    EXPECT_EQ(d.transfer_batches, 1u);
    EXPECT_EQ(out[6 * words_per_page + 9], 2'000'000u);
    EXPECT_EQ(out[63 * words_per_page + 1023], 3'000'000u);
    EXPECT_EQ(out[7 * words_per_page], 7 * words_per_page);
}

TEST_P(migration, ranges_inside_pages_and_interior_pointers_touch_only_what_they_declare) {
    const std::size_t n = 10 * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(3 * i);
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    // [1000, 4001): starts inside page 0, ends inside page 3.
    const std::size_t first = 1000, count = 3001;
    dev->launch(increment, groups_for(count), usm::group{64}, usm::read_write(x + first, count), std::uint32_t(count))
        .wait();
    // A second range through another interior pointer, odd offset and length.
    const std::size_t first2 = 7 * words_per_page + 333, count2 = 77;
    dev->launch(increment, groups_for(count2), usm::group{64}, usm::read_write(x.get() + first2, count2),
                std::uint32_t(count2))
        .wait();
    for (std::size_t i = 0; i < n; ++i) {
        const bool inside = (i >= first && i < first + count) || (i >= first2 && i < first2 + count2);
        ASSERT_EQ(x[i], static_cast<std::uint32_t>(3 * i) + (inside ? 1u : 0u)) << i;
    }
    EXPECT_EQ(ctx->stats().pages_to_device, 5u);  // pages 0-3 and 7
}

/* --- read-ahead on host faults ------------------------------------------ */

class read_ahead : public device_test {
protected:
    /// n words a kernel wrote, so only the device holds them.
    usm::ptr<std::uint32_t> device_written(usm::context& c, usm::device& d, std::size_t n, std::uint32_t seed) {
        auto x = c.alloc<std::uint32_t>(n);
        usm::kernel fill = usm_test::load(d, USM_TEST_KERNEL(test_fill));
        d.launch(fill, groups_for(n), usm::group{64}, usm::write(x, n), std::uint32_t(n), seed).wait();
        return x;
    }
};

TEST_P(read_ahead, a_sequential_sweep_ramps_up_to_one_fault_per_block) {
    const std::size_t pages = 2048;  // four 2 MiB blocks
    const std::size_t n = pages * words_per_page;
    auto x = device_written(*ctx, *dev, n, 11);
    const usm::stats before = ctx->stats();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], fill_value(static_cast<std::uint32_t>(i), 11)) << i;
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    // A fault after a run of r host-valid pages brings 2r ahead, at most a
    // block (512 pages): faults at pages 0, 1, 3, 9, 27, 81, 243, 729, 1241
    // and 1753.
    EXPECT_EQ(d.host_read_faults, 10u);
    EXPECT_EQ(d.pages_read_ahead, pages - d.host_read_faults);
    EXPECT_EQ(d.transfer_batches, 10u);
    ctx->impl().check_invariants();
}

TEST_P(read_ahead, a_descending_sweep_is_caught_by_density) {
    const std::size_t pages = 512;  // one block
    const std::size_t n = pages * words_per_page;
    auto x = device_written(*ctx, *dev, n, 14);
    const usm::stats before = ctx->stats();
    for (std::size_t i = n; i-- > 0;) ASSERT_EQ(x[i], fill_value(static_cast<std::uint32_t>(i), 14)) << i;
    const usm::stats d = since(before);
    EXPECT_EQ(d.pages_to_host, pages);
    // No run of host-valid pages lies below a fault, but each aligned region
    // above it fills in: a doubling region every fault, about log2(512) faults.
    EXPECT_LE(d.host_read_faults, 16u);
    EXPECT_EQ(d.pages_read_ahead, pages - d.host_read_faults);
    ctx->impl().check_invariants();
}

TEST_P(read_ahead, a_4k_block_size_turns_it_off) {
    usm::context_options o;
    o.block_size = 4096;
    auto small = usm_test::open_backend(GetParam(), o);
    usm::device& d = small->devices().front();
    const std::size_t pages = 64;
    const std::size_t n = pages * words_per_page;
    auto x = device_written(*small, d, n, 12);
    const usm::stats before = small->stats();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], fill_value(static_cast<std::uint32_t>(i), 12)) << i;
    const usm::stats after = small->stats();
    EXPECT_EQ(after.host_read_faults - before.host_read_faults, pages);
    EXPECT_EQ(after.pages_to_host - before.pages_to_host, pages);
    EXPECT_EQ(after.pages_read_ahead - before.pages_read_ahead, 0u);
}

TEST_P(read_ahead, a_region_a_kernel_is_writing_shrinks_to_the_page_and_nothing_waits) {
    const std::size_t pages = 272;
    const std::size_t n = pages * words_per_page;
    auto x = device_written(*ctx, *dev, n, 13);
    // Pages 0-6 and 8-14 on the host (host_access moves exactly its range).
    ctx->host_access(x, 7 * words_per_page, usm::access::read);
    ctx->host_access(x + 8 * words_per_page, 7 * words_per_page, usm::access::read);
    // A slow kernel rewrites pages 15-271; page 15 is inside the region
    // [0, 16) that a fault on page 7 would bring back.
    const std::size_t first = 15 * words_per_page, count = n - first;
    const std::uint32_t rounds = 200;
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_fill));
    usm::event done = dev->launch(slow, groups_for(count), usm::group{64}, usm::write(x + first, count),
                                  std::uint32_t(count), rounds);
    const usm::stats before = ctx->stats();
    EXPECT_EQ(x[7 * words_per_page + 3], fill_value(7 * words_per_page + 3, 13));
    const bool was_running = !done.ready();  // then it ran during the fault too
    const usm::stats d = since(before);
    EXPECT_EQ(d.kernel_waits, 0u) << "read-ahead waited for a kernel the fault did not need";
    if (was_running) {
        EXPECT_EQ(d.pages_to_host, 1u);
        EXPECT_EQ(d.pages_read_ahead, 0u);
    } else {
        EXPECT_LE(d.pages_to_host, 2u);  // the kernel finished first: page 15 may come along
    }
    done.wait();
    for (std::size_t i = 0; i < count; ++i)
        ASSERT_EQ(x[first + i], slow_value(static_cast<std::uint32_t>(i), rounds)) << i;
    for (std::size_t i = 0; i < first; ++i) ASSERT_EQ(x[i], fill_value(static_cast<std::uint32_t>(i), 13)) << i;
    ctx->impl().check_invariants();
}

/* --- in-flight kernels -------------------------------------------------- */

class inflight : public device_test {};

TEST_P(inflight, a_host_read_of_a_page_being_written_waits_for_the_kernel) {
    const std::size_t n = 1 << 20;
    const std::uint32_t rounds = 200;
    auto out = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = 0xffffffffu;  // stale values the host must never see again
    usm::kernel slow = usm_test::load(*dev, USM_TEST_KERNEL(test_slow_fill));
    const usm::stats before = ctx->stats();
    usm::event done = dev->launch(slow, groups_for(n), usm::group{64}, usm::write(out, n), std::uint32_t(n), rounds);

    // Several threads read while the kernel may still run: each sees the
    // kernel's result, whole.
    std::vector<std::thread> readers;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&, t] {
            for (std::size_t i = static_cast<std::size_t>(t) * 997; i < n; i += 4099)
                if (out[i] != slow_value(static_cast<std::uint32_t>(i), rounds)) ++wrong;
        });
    }
    for (auto& r : readers) r.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_TRUE(done.ready());
    EXPECT_GE(since(before).kernel_waits, 1u);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], slow_value(static_cast<std::uint32_t>(i), rounds)) << i;
}

TEST_P(inflight, a_host_write_to_a_kernel_input_waits_and_the_kernel_sees_the_old_value) {
    const std::size_t n = 1 << 18;
    auto in = ctx->alloc<std::uint32_t>(n);
    auto out = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<std::uint32_t>(i);
    usm::kernel copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    usm::event e =
        dev->launch(copy, groups_for(n), usm::group{64}, usm::read(in, n), usm::write(out, n), std::uint32_t(n));
    in[n - 1] = 42;  // ordered after the launch in host code
    e.wait();
    EXPECT_EQ(out[n - 1], n - 1);
    EXPECT_EQ(in[n - 1], 42u);
}

/* --- bad input ---------------------------------------------------------- */

class bad_input : public device_test {
protected:
    void expect_error(usm::errc code, const std::string& fragment, const std::function<void()>& f) {
        try {
            f();
            ADD_FAILURE() << "no error; expected errc " << static_cast<int>(code);
        } catch (const usm::error& e) {
            EXPECT_EQ(e.kind(), code) << e.what();
            EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
                << "'" << fragment << "' not in: " << e.what();
        }
    }
    /// After an error, data is intact and a valid launch still works.
    void expect_intact(usm::ptr<std::uint32_t> x, std::size_t n, std::uint32_t expected_offset) {
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], static_cast<std::uint32_t>(i) + expected_offset) << i;
    }
};

TEST_P(bad_input, every_error_names_the_problem_and_leaves_data_intact) {
    const std::size_t n = 5000;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    std::uint32_t offset = 0;
    auto valid_launch = [&] {
        dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n)).wait();
        ++offset;
        expect_intact(x, n, offset);
    };
    valid_launch();

    int on_stack[4] = {};
    expect_error(usm::errc::not_a_usm_pointer, "not an allocation", [&] { ctx->free_bytes(on_stack); });
    valid_launch();

    auto gone = ctx->alloc<int>(3);
    ctx->free(gone);
    expect_error(usm::errc::double_free, "already freed", [&] { ctx->free(gone); });
    valid_launch();

    expect_error(usm::errc::address_space_exhausted, "address space", [&] { ctx->alloc<char>(std::size_t{1} << 40); });
    valid_launch();

    // A pointer from another context on the same backend.
    auto other = usm_test::open_backend(GetParam());
    auto foreign = other->alloc<std::uint32_t>(n);
    expect_error(usm::errc::not_a_usm_pointer, "another usm context", [&] {
        dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(foreign, n), std::uint32_t(n));
    });
    expect_error(usm::errc::not_a_usm_pointer, "not in a live allocation", [&] {
        dev->launch(increment, groups_for(4), usm::group{64}, usm::read_write(on_stack, 4), std::uint32_t(4));
    });
    valid_launch();

    // A declared range that runs past its allocation, from the start and from inside.
    expect_error(usm::errc::out_of_range, "runs past allocation", [&] {
        dev->launch(increment, groups_for(n + 1), usm::group{64}, usm::read_write(x, n + 1), std::uint32_t(n + 1));
    });
    expect_error(usm::errc::out_of_range, "runs past allocation", [&] {
        dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(x + 10, n - 9), std::uint32_t(n - 9));
    });
    valid_launch();

    // Kernels that do not build, with the compiler's or validator's words.
    if (dev->backend() == usm::backend::opencl) {
        expect_error(usm::errc::kernel_build_failed, "undeclared_thing", [&] {
            dev->load_kernel(usm::opencl_c("__kernel void k(__global int* p) { p[0] = undeclared_thing; }"), "k");
        });
        expect_error(usm::errc::kernel_build_failed, "nope", [&] {
            dev->load_kernel(usm::opencl_c("__kernel void k(__global int* p) { p[0] = 1; }"), "nope");
        });
    } else {
        std::vector<std::uint32_t> broken(usm::kernels::test_increment_comp.begin(),
                                          usm::kernels::test_increment_comp.end());
        broken.resize(broken.size() / 2);  // a truncated module
        expect_error(usm::errc::kernel_build_failed, "", [&] { dev->load_kernel(usm::spirv(broken)); });
        expect_error(usm::errc::kernel_build_failed, "nope",
                     [&] { dev->load_kernel(usm::spirv(usm::kernels::test_increment_comp), "nope"); });
    }
    valid_launch();

    // A kernel loaded on one device and launched on another context's device.
    usm::kernel elsewhere = usm_test::load(other->devices().front(), USM_TEST_KERNEL(test_increment));
    expect_error(usm::errc::invalid_argument, "not loaded on this device", [&] {
        dev->launch(elsewhere, groups_for(n), usm::group{64}, usm::read_write(x, n), std::uint32_t(n));
    });
    expect_error(usm::errc::invalid_argument, "grid", [&] {
        dev->launch(increment, usm::grid{0}, usm::group{64}, usm::read_write(x, n), std::uint32_t(n));
    });
    valid_launch();
    ctx->impl().check_invariants();
}

USM_INSTANTIATE_PER_BACKEND(fresh_memory);
USM_INSTANTIATE_PER_BACKEND(round_trip);
USM_INSTANTIATE_PER_BACKEND(migration);
USM_INSTANTIATE_PER_BACKEND(read_ahead);
USM_INSTANTIATE_PER_BACKEND(inflight);
USM_INSTANTIATE_PER_BACKEND(bad_input);

}  // namespace
