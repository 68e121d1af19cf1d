// tests/core_test.cpp - the core without a driver: the address space, page
// states, request merging, options, and a host-only context (no device
// selected) for allocation, host faults and errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "core/address_space.hpp"
#include "core/coherence.hpp"
#include "core/context_impl.hpp"
#include "core/fault_injection.hpp"
#include "core/lock_order.hpp"
#include "core/page_state.hpp"
#include "support.hpp"
#include "usm/usm.hpp"

namespace {

using namespace usm::detail;

/* --- address space ------------------------------------------------------ */

TEST(address_space, carves_first_fit_and_coalesces_on_release) {
    address_space space(64 * page_size);
    auto a = space.carve(4 * page_size);
    auto b = space.carve(8 * page_size);
    auto c = space.carve(4 * page_size);
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(*a, space.view_begin());
    EXPECT_EQ(*b, *a + 4 * page_size);
    EXPECT_EQ(*c, *b + 8 * page_size);
    space.release(*b, 8 * page_size);
    EXPECT_EQ(space.carve(8 * page_size), b);  // first fit reuses the hole
    space.release(*a, 4 * page_size);
    space.release(*b, 8 * page_size);
    space.release(*c, 4 * page_size);
    EXPECT_EQ(space.carve(64 * page_size), space.view_begin());  // all coalesced back
    EXPECT_FALSE(space.carve(page_size));
}

TEST(address_space, released_pages_read_zero_through_both_mappings) {
    address_space space(16 * page_size);
    auto a = space.carve(2 * page_size);
    ASSERT_TRUE(a);
    std::memset(space.alias_of(*a), 0xab, 2 * page_size);
    space.protect(*a, 2 * page_size, protection::read);
    EXPECT_EQ(std::to_integer<int>((*a)[page_size + 7]), 0xab);  // the view shows alias writes
    space.release(*a, 2 * page_size);
    auto again = space.carve(2 * page_size);
    ASSERT_EQ(again, a);
    space.protect(*again, 2 * page_size, protection::read);
    for (std::size_t i = 0; i < 2 * page_size; ++i) ASSERT_EQ(std::to_integer<int>((*again)[i]), 0) << i;
}

/* --- page states -------------------------------------------------------- */

TEST(page_state, exclusive_means_the_only_valid_copy) {
    page_state st;  // fresh: host only, zero
    EXPECT_EQ(st.state_at(host_location), copy_state::exclusive);
    EXPECT_EQ(st.host_protection(), protection::read);  // zero pages catch the first write
    st.zero = false;
    EXPECT_EQ(st.host_protection(), protection::read_write);
    st.valid |= bit(2);
    EXPECT_EQ(st.state_at(host_location), copy_state::shared);
    EXPECT_EQ(st.state_at(2), copy_state::shared);
    EXPECT_EQ(st.state_at(1), copy_state::invalid);
    EXPECT_EQ(st.host_protection(), protection::read);
    EXPECT_EQ(st.any_valid_except(host_location), 2);
    st.valid = bit(2);
    EXPECT_EQ(st.state_at(2), copy_state::exclusive);
    EXPECT_EQ(st.host_protection(), protection::none);
}

TEST(merge_requests, overlapping_ranges_split_with_combined_access) {
    allocation a, b;
    std::vector<range_request> in{
        {&a, 0, 10, true, false}, {&a, 5, 15, false, true}, {&b, 3, 4, true, false}, {&a, 20, 20, true, true}};
    auto out = merge_requests(in);
    // b's range and a's three pieces; the empty one is gone.
    ASSERT_EQ(out.size(), 4u);
    std::vector<range_request> for_a;
    for (auto& r : out)
        if (r.alloc == &a) for_a.push_back(r);
    ASSERT_EQ(for_a.size(), 3u);
    EXPECT_EQ(for_a[0].first_page, 0u);
    EXPECT_EQ(for_a[0].end_page, 5u);
    EXPECT_TRUE(for_a[0].reads && !for_a[0].writes);
    EXPECT_EQ(for_a[1].first_page, 5u);
    EXPECT_EQ(for_a[1].end_page, 10u);
    EXPECT_TRUE(for_a[1].reads && for_a[1].writes);
    EXPECT_EQ(for_a[2].first_page, 10u);
    EXPECT_EQ(for_a[2].end_page, 15u);
    EXPECT_TRUE(!for_a[2].reads && for_a[2].writes);
}

/* --- options ------------------------------------------------------------ */

using usm_test::scoped_env;

TEST(options, environment_overrides_and_parses_sizes) {
    scoped_env va("USM_VA_SIZE", "3G");
    scoped_env block("USM_BLOCK", "64K");
    auto o = resolve_options({});
    EXPECT_EQ(o.va_size, std::size_t{3} << 30);
    EXPECT_EQ(o.block_size, std::size_t{64} << 10);
}

TEST(options, device_budget_and_segment_size_come_from_the_environment_and_are_checked) {
    {
        scoped_env budget("USM_DEVICE_BUDGET", "96M");
        scoped_env segment("USM_SEGMENT", "4M");
        auto o = resolve_options({});
        EXPECT_EQ(o.device_budget, std::size_t{96} << 20);
        EXPECT_EQ(o.segment_size, std::size_t{4} << 20);
        EXPECT_EQ(o.thrashing, "in_place");
    }
    {
        scoped_env trace("USM_TRACE", "/tmp/run.json");
        EXPECT_EQ(resolve_options({}).trace, "/tmp/run.json");
    }
    {
        scoped_env thrash("USM_THRASH", "pin");
        EXPECT_EQ(resolve_options({}).thrashing, "pin");
    }
    {
        scoped_env thrash("USM_THRASH", "sometimes");
        EXPECT_THROW(resolve_options({}), usm::error);
    }
    auto rejected = [](std::size_t budget, std::size_t segment, const char* names) {
        usm::context_options o;
        o.device_budget = budget;
        o.segment_size = segment;
        try {
            resolve_options(o);
            ADD_FAILURE() << "accepted a bad " << names;
        } catch (const usm::error& e) {
            EXPECT_EQ(e.kind(), usm::errc::invalid_argument);
            EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
        }
    };
    rejected(std::size_t{1} << 20, 0, "USM_DEVICE_BUDGET");  // less than one block
    rejected(0, std::size_t{3} << 20, "USM_SEGMENT");        // not whole blocks
}

TEST(options, bad_values_name_the_variable) {
    {
        scoped_env va("USM_VA_SIZE", "lots");
        try {
            resolve_options({});
            FAIL() << "accepted USM_VA_SIZE=lots";
        } catch (const usm::error& e) {
            EXPECT_EQ(e.kind(), usm::errc::invalid_argument);
            EXPECT_NE(std::string(e.what()).find("USM_VA_SIZE"), std::string::npos) << e.what();
        }
    }
    scoped_env backend("USM_BACKEND", "cuda");
    EXPECT_THROW(resolve_options({}), usm::error);
}

TEST(options, device_filter_matches_index_name_backend_and_repeats) {
    EXPECT_EQ(device_selections("", "vulkan", 3, "anything"), 1u);
    EXPECT_EQ(device_selections("1", "opencl", 1, "pthread-haswell"), 1u);
    EXPECT_EQ(device_selections("1", "opencl", 0, "pthread-haswell"), 0u);
    EXPECT_EQ(device_selections("LLVMPIPE", "vulkan", 0, "llvmpipe (LLVM 15.0.6, 256 bits)"), 1u);
    EXPECT_EQ(device_selections("vulkan:0,opencl:pthread", "opencl", 4, "pthread-haswell"), 1u);
    EXPECT_EQ(device_selections("vulkan:0", "opencl", 0, "pthread-haswell"), 0u);
    // Repeating an item opens the device again, as a second logical device.
    EXPECT_EQ(device_selections("opencl:0,opencl:0", "opencl", 0, "pthread-haswell"), 2u);
}

/* --- a context with no device ------------------------------------------- */

usm::context_options host_only(std::size_t va = std::size_t{1} << 30) {
    usm::context_options o;
    o.device = "no-such-device";
    o.require_device = false;
    o.va_size = va;
    return o;
}

TEST(host_context, without_devices_reports_why_each_was_refused) {
    usm::context_options o = host_only();
    o.require_device = true;
    try {
        usm::context ctx(o);
        FAIL() << "made a context with no device";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::no_device);
        EXPECT_NE(std::string(e.what()).find("not selected"), std::string::npos) << e.what();
    }
}

TEST(host_context, fresh_memory_reads_zero_without_faults) {
    usm::context ctx(host_only());
    auto p = ctx.alloc<std::uint64_t>(100'000);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < 100'000; ++i) sum += p[i];
    EXPECT_EQ(sum, 0u);
    EXPECT_EQ(ctx.stats().host_read_faults, 0u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.get()) % 4096, 0u);
}

TEST(host_context, first_writes_open_fresh_memory_a_block_at_a_time) {
    usm::context_options o = host_only();
    o.block_size = 64 << 10;  // 16 pages
    usm::context ctx(o);
    const std::size_t n = (1 << 20) / sizeof(int);  // 1 MiB = 16 blocks
    auto p = ctx.alloc<int>(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<int>(i);
    EXPECT_EQ(ctx.stats().host_write_faults, 16u);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], static_cast<int>(i));
    EXPECT_EQ(ctx.stats().host_write_faults, 16u);  // written pages stay open
    ctx.impl().check_invariants();
}

TEST(host_context, the_invariant_check_catches_a_view_more_open_than_its_state) {
    usm::context ctx(host_only());
    auto p = ctx.alloc<char>(5 * 4096);
    auto q = ctx.alloc<char>(3 * 4096);
    ctx.impl().check_invariants();
    // Page 2 of q is fresh: read-only to the host until its first write.
    // Opening it behind usm's back breaks invariant 3, and the check says so.
    ASSERT_EQ(::mprotect(q.get() + 2 * 4096, 4096, PROT_READ | PROT_WRITE), 0);
    try {
        ctx.impl().check_invariants();
        ADD_FAILURE() << "a writable fresh page passed the check";
    } catch (const std::logic_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("invariant 3"), std::string::npos) << what;
        EXPECT_NE(what.find("page 2 of allocation"), std::string::npos) << what;
        EXPECT_NE(what.find("writable"), std::string::npos) << what;
    }
    ASSERT_EQ(::mprotect(q.get() + 2 * 4096, 4096, PROT_READ), 0);
    ctx.impl().check_invariants();
    p[0] = 1;
}

TEST(host_context, freed_and_reused_range_reads_zero) {
    usm::context ctx(host_only());
    auto p = ctx.alloc<char>(3 * 4096 + 5);
    std::memset(p.get(), 0x5a, 3 * 4096 + 5);
    ctx.free(p);
    auto q = ctx.alloc<char>(3 * 4096 + 5);
    ASSERT_EQ(q.get(), p.get());                                         // first fit hands back the same range
    for (std::size_t i = 0; i < 4 * 4096; ++i) ASSERT_EQ(q[i], 0) << i;  // to the end of the last page
}

TEST(host_context, unique_ptr_frees_on_scope_exit) {
    usm::context ctx(host_only());
    {
        usm::unique_ptr<float[]> a = ctx.alloc_unique<float>(1000);
        a[999] = 1.5f;
        EXPECT_EQ(a[999], 1.5f);
        EXPECT_EQ(ctx.stats().allocations, 1u);
        EXPECT_EQ(ctx.stats().bytes_allocated, 4000u);
    }
    EXPECT_EQ(ctx.stats().allocations, 0u);
    EXPECT_EQ(ctx.stats().bytes_allocated, 0u);
}

TEST(host_context, zero_sized_alloc_is_null_and_free_of_null_is_a_no_op) {
    usm::context ctx(host_only());
    auto p = ctx.alloc<int>(0);
    EXPECT_FALSE(p);
    EXPECT_NO_THROW(ctx.free(p));
}

void expect_error(usm::errc code, const std::string& fragment, const std::function<void()>& f) {
    try {
        f();
        ADD_FAILURE() << "no error; expected errc " << static_cast<int>(code);
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

TEST(host_context, bad_frees_and_allocs_are_errors_that_change_nothing) {
    usm::context ctx(host_only(std::size_t{64} << 20));
    auto keep = ctx.alloc<int>(1000);
    for (int i = 0; i < 1000; ++i) keep[i] = i * 3;
    int on_stack = 0;
    expect_error(usm::errc::not_a_usm_pointer, "not an allocation", [&] { ctx.free_bytes(&on_stack); });
    expect_error(usm::errc::not_a_usm_pointer, "not at its start", [&] { ctx.free(keep + 10); });
    auto gone = ctx.alloc<int>(10);
    ctx.free(gone);
    expect_error(usm::errc::double_free, "already freed", [&] { ctx.free(gone); });
    expect_error(usm::errc::address_space_exhausted, "address space", [&] { ctx.alloc<char>(std::size_t{1} << 30); });
    expect_error(usm::errc::address_space_exhausted, "overflows", [&] { ctx.alloc<double>(~std::size_t{0} / 4); });
    // Nothing was disturbed, and a valid operation still works.
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(keep[i], i * 3);
    auto more = ctx.alloc<int>(10);
    more[9] = 7;
    EXPECT_EQ(more[9], 7);
    EXPECT_EQ(ctx.stats().allocations, 2u);
}

TEST(host_context, address_space_fills_up_and_recovers) {
    usm::context ctx(host_only(std::size_t{1} << 20));  // 256 pages
    std::vector<usm::ptr<char>> blocks;
    for (int i = 0; i < 8; ++i) blocks.push_back(ctx.alloc<char>(31 * 4096));  // 31 + 1 guard = 32 pages
    expect_error(usm::errc::address_space_exhausted, "no free run", [&] { ctx.alloc<char>(1); });
    ctx.free(blocks[3]);
    EXPECT_EQ(ctx.alloc<char>(31 * 4096), blocks[3]);
}

TEST(fault_path_fallback, a_denied_userfaultfd_falls_back_to_signal_with_one_log_line) {
    usm::context_options o;
    o.fault = usm::fault_path::userfaultfd;
    o.device = "no-such-device";
    o.require_device = false;
    std::string saved = std::getenv("USM_FAULT") ? std::getenv("USM_FAULT") : "";
    ::unsetenv("USM_FAULT");
    usm::detail::testing::deny_userfaultfd(true);
    ::testing::internal::CaptureStderr();
    {
        usm::context ctx(o);
        EXPECT_EQ(ctx.fault_handling(), usm::fault_path::signal);
        auto p = ctx.alloc<int>(1000);
        p[999] = 3;  // served by the signal path
        EXPECT_EQ(p[999], 3);
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    usm::detail::testing::deny_userfaultfd(false);
    if (!saved.empty()) ::setenv("USM_FAULT", saved.c_str(), 1);
    EXPECT_NE(err.find("userfaultfd fault path unavailable"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(lock_order, taking_a_lower_level_lock_while_holding_a_higher_one_aborts_with_a_message) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            context_mutex m;
            std::lock_guard hold(m);                   // level "context"
            lock_ranks::acquire(lock_level::install);  // the registry's level comes first
        },
        "lock order violated");
}

/* --- signal handling ---------------------------------------------------- */

/// Saves and restores the process's SIGSEGV disposition around a test, and
/// pins the signal fault path (these tests are about SIGSEGV handling, also
/// when the suite runs with USM_FAULT=uffd).
class signal_test : public ::testing::Test {
protected:
    void SetUp() override {
        ::sigaction(SIGSEGV, nullptr, &m_saved);
        if (const char* f = std::getenv("USM_FAULT")) m_fault = f;
        ::unsetenv("USM_FAULT");
    }
    void TearDown() override {
        ::sigaction(SIGSEGV, &m_saved, nullptr);
        if (!m_fault.empty()) ::setenv("USM_FAULT", m_fault.c_str(), 1);
    }

private:
    struct sigaction m_saved {};
    std::string m_fault;
};

using host_context_death = signal_test;

/// A store to memory outside every usm range that no one may touch: a
/// PROT_NONE page of its own (not a null pointer, which UndefinedBehavior-
/// Sanitizer rightly reports before the fault happens).
void store_to_a_foreign_page() {
    void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) std::abort();
    static_cast<volatile int*>(page)[1] = 1;
}

TEST_F(host_context_death, a_fault_outside_usm_still_kills_with_sigsegv) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            usm::context ctx(host_only());
            auto p = ctx.alloc<int>(10);
            p[0] = 1;
            store_to_a_foreign_page();
        },
        ::testing::KilledBySignal(SIGSEGV), "");
}

TEST_F(host_context_death, an_overrun_into_the_guard_page_kills_with_sigsegv) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            usm::context ctx(host_only());
            auto p = ctx.alloc<char>(4096);
            volatile char* past = p.get() + 4096;
            *past = 1;
        },
        ::testing::KilledBySignal(SIGSEGV), "");
}

// A handler that fixes the fault by opening the page, as a garbage collector's
// write barrier or a JIT's guard page would.
std::atomic<void*> g_seen_address{nullptr};
void opening_handler(int, siginfo_t* info, void*) {
    g_seen_address = info->si_addr;
    auto page = reinterpret_cast<std::uintptr_t>(info->si_addr) & ~std::uintptr_t{4095};
    ::mprotect(reinterpret_cast<void*>(page), 4096, PROT_READ | PROT_WRITE);
}

TEST_F(signal_test, a_handler_installed_before_usm_still_receives_its_faults) {
    struct sigaction sa {};
    sa.sa_sigaction = &opening_handler;
    sa.sa_flags = SA_SIGINFO;
    ::sigaction(SIGSEGV, &sa, nullptr);

    usm::context ctx(host_only());
    EXPECT_TRUE(fault_handler_is_on_top());
    void* foreign = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(foreign, MAP_FAILED);
    g_seen_address = nullptr;
    static_cast<volatile int*>(foreign)[3] = 42;
    EXPECT_EQ(g_seen_address.load(), static_cast<int*>(foreign) + 3);
    EXPECT_EQ(static_cast<int*>(foreign)[3], 42);

    auto p = ctx.alloc<int>(4096);  // usm's faults are still usm's
    p[1000] = 9;
    EXPECT_EQ(ctx.stats().host_write_faults, 1u);
    ::munmap(foreign, 4096);
}

// What LLVM's handler (installed by PoCL's device discovery) does: restore the
// handler it displaced and return, so the access faults again.
struct sigaction g_displaced;
std::atomic<int> g_restorer_calls{0};
void restoring_handler(int, siginfo_t*, void*) {
    ++g_restorer_calls;
    ::sigaction(SIGSEGV, &g_displaced, nullptr);
}

void install_restorer_over_current() {
    struct sigaction sa {};
    sa.sa_sigaction = &restoring_handler;
    sa.sa_flags = SA_SIGINFO;
    ::sigaction(SIGSEGV, &sa, &g_displaced);
}

TEST_F(signal_test, usm_faults_survive_a_driver_handler_installed_after_usm) {
    usm::context ctx(host_only());
    auto p = ctx.alloc<int>(8192);
    install_restorer_over_current();  // a driver loaded after the context
    EXPECT_FALSE(fault_handler_is_on_top());
    g_restorer_calls = 0;
    p[100] = 5;  // faults into the driver's handler first, which hands back
    EXPECT_EQ(p[100], 5);
    EXPECT_EQ(g_restorer_calls.load(), 1);
    EXPECT_TRUE(fault_handler_is_on_top());
    EXPECT_EQ(ctx.stats().host_write_faults, 1u);

    install_restorer_over_current();
    ensure_fault_handler_on_top();  // what usm does after driver calls
    g_restorer_calls = 0;
    p[5000] = 6;
    EXPECT_EQ(p[5000], 6);
    EXPECT_EQ(g_restorer_calls.load(), 0);
}

TEST_F(host_context_death, a_foreign_fault_below_a_restoring_handler_still_kills) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            usm::context ctx(host_only());
            install_restorer_over_current();
            ensure_fault_handler_on_top();  // usm above the driver, driver above default
            store_to_a_foreign_page();
        },
        ::testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace
