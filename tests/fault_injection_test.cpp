// tests/fault_injection_test.cpp - injected driver failures, once per backend.
//
// core/fault_injection.hpp makes the next upload (host -> device before a
// launch), download (device -> host on a host fault or host_access) or
// mirror allocation (a device allocation at an allocation's first use on a
// device) fail as if the driver had failed. Whatever fails, the operation
// reports usm::error naming the call and the device, and no byte of any
// allocation is lost or changed (DESIGN.md, invariant 4): every test builds
// allocations in each page state, makes one call fail, then checks every
// byte on the host and on the device, the page-state and MMU invariants, and
// that the same operation succeeds once nothing is armed.
//
// A host read or write that faults on device-resident memory has no caller to
// throw to: a failed download there raises SIGBUS in the faulting thread, on
// the signal and the userfaultfd path alike (death tests below).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <ostream>
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

#include "core/context_impl.hpp"
#include "core/fault_injection.hpp"
#include "support.hpp"

namespace {

using usm_test::fill_value;
namespace injection = usm::detail::testing;
using injection::injected_call;

constexpr std::size_t words_per_page = 4096 / sizeof(std::uint32_t);
constexpr std::size_t small_words = 3 * words_per_page + 100;  // 4 pages, the last one partly used
constexpr std::size_t small_pages = 4;
constexpr std::size_t mixed_words = 8 * words_per_page;

std::uint32_t host_value(std::size_t i, std::uint32_t tag) { return static_cast<std::uint32_t>(i) * 7u + tag; }
std::uint32_t u32(std::size_t n) { return static_cast<std::uint32_t>(n); }
usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

/* --- checks ------------------------------------------------------------- */

/// Compares `n` words at `data` (usm memory read by the host, or a copy) with
/// `expected`; reports only the first difference.
void expect_words(const std::uint32_t* data, const std::vector<std::uint32_t>& expected, const std::string& what) {
    for (std::size_t i = 0; i < expected.size(); ++i)
        if (data[i] != expected[i]) {
            ADD_FAILURE() << what << ": word " << i << " (page " << i / words_per_page << ") is " << data[i]
                          << ", expected " << expected[i];
            return;
        }
}

/// Runs `call`, which must throw usm::error of `kind` whose message mentions
/// every string of `mentions`.
template <class Call>
void expect_usm_error(usm::errc kind, std::initializer_list<std::string_view> mentions, Call&& call) {
    try {
        call();
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), kind) << e.what();
        for (std::string_view m : mentions)
            EXPECT_NE(std::string_view(e.what()).find(m), std::string_view::npos)
                << "'" << e.what() << "' does not mention '" << m << "'";
        return;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw something other than usm::error: " << e.what();
        return;
    }
    ADD_FAILURE() << "did not throw";
}

void expect_invariants(usm::context& ctx, const char* when) {
    try {
        ctx.impl().check_invariants();
    } catch (const std::exception& e) {
        ADD_FAILURE() << when << ": " << e.what();
    }
}

/* --- allocations in every page state ------------------------------------ */

/// An allocation and the words it must hold.
struct tracked {
    std::string name;
    usm::ptr<std::uint32_t> p;
    std::vector<std::uint32_t> expected;
    std::size_t words() const { return expected.size(); }
};

/// One allocation per page state on the test's device, and one that mixes them.
struct world {
    tracked host_only;    ///< written by the host: host-exclusive, no device mirror yet
    tracked device_only;  ///< written by a kernel: device-exclusive
    tracked shared;       ///< written by the host, then read by a kernel: valid on both
    tracked fresh;        ///< never touched: zero pages, no device mirror yet
    tracked mixed;        ///< pages 0-1 host-exclusive, 2-3 device-exclusive, 4-5 shared, 6-7 fresh
    std::vector<tracked*> all() { return {&host_only, &device_only, &shared, &fresh, &mixed}; }
};

/// A launch that an injected failure interrupts, and what it does when it runs.
struct launch_case {
    const char* name;
    std::function<usm::event(world&)> launch;
    std::function<void(world&)> apply;  ///< its effect on the expected words
    std::uint64_t pages_copied;         ///< pages it uploads from the states build_world leaves
    std::uint64_t pages_filled;         ///< fresh pages it zero-fills on the device
};

/// A host_access that needs downloads, and how many pages it brings back.
struct access_case {
    const char* name;
    std::function<void(world&)> access;
    std::uint64_t pages_to_host;
};

class fault_injection : public usm_test::device_test {
protected:
    void SetUp() override {
        injection::clear_injected_failures();
        device_test::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        fill = usm_test::load(*dev, USM_TEST_KERNEL(test_fill));
        copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
        increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    }
    void TearDown() override { injection::clear_injected_failures(); }

    usm::event launch_copy(usm::device& d, usm::ptr<std::uint32_t> in, usm::ptr<std::uint32_t> out, std::size_t n) {
        const usm::kernel& k = &d == dev ? copy : copy_on_other;
        return d.launch(k, groups_for(n), usm::group{64}, usm::read(in, n), usm::write(out, n), u32(n));
    }
    usm::event launch_fill(usm::ptr<std::uint32_t> out, std::size_t n, std::uint32_t seed) {
        return dev->launch(fill, groups_for(n), usm::group{64}, usm::write(out, n), u32(n), seed);
    }

    /// What device `d` sees in [p, p + n), through a copy kernel.
    std::vector<std::uint32_t> device_view(usm::device& d, usm::ptr<std::uint32_t> p, std::size_t n) {
        auto out = ctx->alloc<std::uint32_t>(n);
        launch_copy(d, p, out, n).wait();
        std::vector<std::uint32_t> seen(out.get(), out.get() + n);
        ctx->free(out);
        return seen;
    }

    world build_world() {
        world w;
        auto make = [&](const char* name, std::size_t n) {
            return tracked{name, ctx->alloc<std::uint32_t>(n), std::vector<std::uint32_t>(n, 0)};
        };
        w.host_only = make("host_only", small_words);
        w.device_only = make("device_only", small_words);
        w.shared = make("shared", small_words);
        w.fresh = make("fresh", small_words);
        w.mixed = make("mixed", mixed_words);
        for (std::size_t i = 0; i < small_words; ++i) {
            w.host_only.p[i] = w.host_only.expected[i] = host_value(i, 11);
            w.shared.p[i] = w.shared.expected[i] = host_value(i, 33);
        }
        // `mixed`: a kernel writes pages 0-5 first, so that the host writes to
        // pages 0-1 and 4-5 below are not first writes to fresh memory (those
        // open a whole block of fresh pages at once, and pages 6-7 would no
        // longer be fresh). Then a kernel reads pages 4-5 and rewrites 2-3.
        launch_fill(w.mixed.p, 6 * words_per_page, 88).wait();
        for (std::size_t i = 0; i < 2 * words_per_page; ++i) {
            w.mixed.p[i] = w.mixed.expected[i] = host_value(i, 55);
            const std::size_t j = i + 4 * words_per_page;
            w.mixed.p[j] = w.mixed.expected[j] = host_value(j, 55);
        }
        // Kernels read `shared` and pages 4-5 of `mixed` (both stay valid on
        // the host too), write pages 2-3 of `mixed`, and write `device_only`.
        launch_copy(*dev, w.shared.p, w.device_only.p, small_words).wait();
        launch_copy(*dev, w.mixed.p + 4 * words_per_page, w.device_only.p, 2 * words_per_page).wait();
        launch_fill(w.mixed.p + 2 * words_per_page, 2 * words_per_page, 66).wait();
        for (std::size_t j = 0; j < 2 * words_per_page; ++j)
            w.mixed.expected[2 * words_per_page + j] = fill_value(j, 66);
        launch_fill(w.device_only.p, small_words, 44).wait();
        for (std::size_t i = 0; i < small_words; ++i) w.device_only.expected[i] = fill_value(i, 44);
        expect_invariants(*ctx, "after building the allocations");
        return w;
    }

    void free_world(world& w) {
        for (tracked* t : w.all()) ctx->free(t->p);
    }

    /// Every byte of every allocation, first as the device sees it, then as
    /// the host does; and the invariants before and after.
    void expect_world_intact(world& w, const std::string& when) {
        expect_invariants(*ctx, when.c_str());
        for (tracked* t : w.all())
            expect_words(device_view(*dev, t->p, t->words()).data(), t->expected,
                         when + ": " + t->name + " on the device");
        for (tracked* t : w.all()) expect_words(t->p.get(), t->expected, when + ": " + t->name + " on the host");
        expect_invariants(*ctx, (when + ", after reading everything").c_str());
    }

    /// Nothing moved and nothing ran since `before`.
    void expect_nothing_moved(const usm::stats& before) {
        const usm::stats d = since(before);
        EXPECT_EQ(d.launches, 0u);
        EXPECT_EQ(d.pages_to_device, 0u);
        EXPECT_EQ(d.pages_zero_filled, 0u);
        EXPECT_EQ(d.pages_to_host, 0u);
        EXPECT_EQ(d.transfer_batches, 0u);
    }

    std::vector<launch_case> launch_cases() {
        return {
            {"increment of mixed (every page state in one range)",
             [this](world& w) {
                 return dev->launch(increment, groups_for(mixed_words), usm::group{64},
                                    usm::read_write(w.mixed.p, mixed_words), u32(mixed_words));
             },
             [](world& w) {
                 for (std::uint32_t& v : w.mixed.expected) ++v;
             },
             2, 2},
            {"copy of host_only into fresh (two allocations new to the device)",
             [this](world& w) { return launch_copy(*dev, w.host_only.p, w.fresh.p, small_words); },
             [](world& w) { w.fresh.expected = w.host_only.expected; }, small_pages, small_pages},
        };
    }

    /// After a failed launch of `c` (nothing armed any more): the state is
    /// consistent, and the same launch succeeds with exactly its effect.
    /// `verify_first` checks every byte before the retry (which moves pages,
    /// so the retry's transfers are only counted without it).
    void expect_launch_recovers(world& w, const launch_case& c, bool verify_first) {
        expect_invariants(*ctx, "after the failed launch");
        if (verify_first) expect_world_intact(w, "after the failed launch");
        const usm::stats before = ctx->stats();
        c.launch(w).wait();
        c.apply(w);
        const usm::stats d = since(before);
        EXPECT_EQ(d.launches, 1u);
        if (!verify_first) {
            // Exactly what the first attempt would have moved: the failure
            // changed no page's state.
            EXPECT_EQ(d.pages_to_device, c.pages_copied);
            EXPECT_EQ(d.pages_zero_filled, c.pages_filled);
            EXPECT_EQ(d.transfer_batches, 1u);
        }
        expect_world_intact(w, "after the retried launch");
    }

    usm::kernel fill, copy, increment;
    usm::kernel copy_on_other;  ///< the copy kernel on a second device, where a test opens one
};

std::string trace(const char* what, bool verify_first) {
    return std::string(what) + (verify_first ? ", every byte checked before the retry" : ", retried at once");
}

/* --- uploads ------------------------------------------------------------ */

TEST_P(fault_injection, an_upload_failure_fails_the_launch_before_the_kernel_runs_and_keeps_every_byte) {
    for (const launch_case& c : launch_cases())
        for (bool verify_first : {false, true}) {
            SCOPED_TRACE(trace(c.name, verify_first));
            world w = build_world();
            const usm::stats before = ctx->stats();
            injection::inject_failure(injected_call::upload);
            expect_usm_error(usm::errc::transfer_failed, {"upload", dev->name(), "injected"}, [&] { c.launch(w); });
            EXPECT_EQ(injection::injected_failures_fired(), 1u);
            injection::clear_injected_failures();
            expect_nothing_moved(before);
            expect_launch_recovers(w, c, verify_first);
            free_world(w);
        }
}

TEST_P(fault_injection, an_upload_failure_in_a_later_launch_keeps_the_earlier_launchs_results) {
    const std::vector<launch_case> cases = launch_cases();
    world w = build_world();
    injection::inject_failure(injected_call::upload, /*skip=*/1);
    cases[0].launch(w).wait();  // its upload is let through
    cases[0].apply(w);
    const usm::stats before = ctx->stats();
    expect_usm_error(usm::errc::transfer_failed, {"upload", dev->name()}, [&] { cases[1].launch(w); });
    EXPECT_EQ(injection::injected_failures_fired(), 1u);
    injection::clear_injected_failures();
    expect_nothing_moved(before);
    expect_launch_recovers(w, cases[1], /*verify_first=*/true);
}

/* --- device mirrors ----------------------------------------------------- */

TEST_P(fault_injection, a_mirror_allocation_failure_on_never_used_allocations_fails_the_launch_and_keeps_every_byte) {
    // host_only and fresh have no mirror on the device yet. With skip 1 the
    // first of the two mirrors is made and the second fails: the launch is
    // abandoned halfway through staging, and the mirror left behind holds no
    // valid page (the retry still copies and fills every page).
    const launch_case c = launch_cases()[1];
    for (unsigned skip : {0u, 1u})
        for (bool verify_first : {false, true}) {
            SCOPED_TRACE(trace(c.name, verify_first) + ", mirror " + std::to_string(skip + 1) + " of 2 fails");
            world w = build_world();
            const usm::stats before = ctx->stats();
            injection::inject_failure(injected_call::create_mirror, skip);
            expect_usm_error(usm::errc::out_of_memory, {"create_mirror", dev->name(), "injected"},
                             [&] { c.launch(w); });
            EXPECT_EQ(injection::injected_failures_fired(), 1u);
            injection::clear_injected_failures();
            expect_nothing_moved(before);
            expect_launch_recovers(w, c, verify_first);
            free_world(w);
        }
}

TEST_P(fault_injection, a_kernel_write_to_a_brand_new_allocation_whose_mirror_fails_leaves_it_zero) {
    world w = build_world();
    const std::size_t n = 5 * words_per_page;
    auto p = ctx->alloc<std::uint32_t>(n);
    const usm::stats before = ctx->stats();
    injection::inject_failure(injected_call::create_mirror);
    expect_usm_error(usm::errc::out_of_memory, {"create_mirror", dev->name()}, [&] { launch_fill(p, n, 9); });
    injection::clear_injected_failures();
    expect_nothing_moved(before);
    expect_invariants(*ctx, "after the failed launch");
    const std::vector<std::uint32_t> zeros(n, 0);
    expect_words(p.get(), zeros, "the new allocation on the host");
    expect_words(device_view(*dev, p, n).data(), zeros, "the new allocation on the device");

    launch_fill(p, n, 9).wait();
    std::vector<std::uint32_t> filled(n);
    for (std::size_t i = 0; i < n; ++i) filled[i] = fill_value(i, 9);
    expect_words(device_view(*dev, p, n).data(), filled, "the new allocation on the device after the retry");
    expect_words(p.get(), filled, "the new allocation on the host after the retry");
    expect_world_intact(w, "at the end");
}

TEST_P(fault_injection, a_device_placed_allocation_whose_mirror_or_fill_fails_throws_and_leaves_nothing_behind) {
    world w = build_world();
    const std::size_t n = 6 * words_per_page;
    const struct {
        injected_call call;
        usm::errc kind;
        const char* word;
    } failures[] = {{injected_call::create_mirror, usm::errc::out_of_memory, "create_mirror"},
                    {injected_call::upload, usm::errc::transfer_failed, "upload"}};
    for (const auto& f : failures) {
        SCOPED_TRACE(f.word);
        const usm::stats before = ctx->stats();
        injection::inject_failure(f.call);
        expect_usm_error(f.kind, {f.word, dev->name()},
                         [&] { (void)ctx->alloc<std::uint32_t>(n, usm::placement::device(*dev)); });
        EXPECT_EQ(injection::injected_failures_fired(), 1u);
        injection::clear_injected_failures();
        EXPECT_EQ(ctx->stats().allocations, before.allocations);
        EXPECT_EQ(ctx->stats().bytes_allocated, before.bytes_allocated);
        expect_invariants(*ctx, "after the failed allocation");

        // The same request succeeds now and reads zero on both sides.
        auto p = ctx->alloc<std::uint32_t>(n, usm::placement::device(*dev));
        const std::vector<std::uint32_t> zeros(n, 0);
        expect_words(device_view(*dev, p, n).data(), zeros, "the retried allocation on the device");
        expect_words(p.get(), zeros, "the retried allocation on the host");
        ctx->free(p);
    }
    expect_world_intact(w, "at the end");
}

/* --- downloads ---------------------------------------------------------- */

TEST_P(fault_injection, a_download_failure_fails_host_access_and_keeps_every_byte) {
    const access_case cases[] = {
        {"read of device_only", [this](world& w) { ctx->host_access(w.device_only.p, small_words, usm::access::read); },
         small_pages},
        {"read of mixed (only pages 2-3 are on the device alone)",
         [this](world& w) { ctx->host_access(w.mixed.p, mixed_words, usm::access::read); }, 2},
        {"write of device_only",
         [this](world& w) { ctx->host_access(w.device_only.p, small_words, usm::access::write); }, small_pages},
    };
    for (const access_case& c : cases)
        for (bool verify_first : {false, true}) {
            SCOPED_TRACE(trace(c.name, verify_first));
            world w = build_world();
            const usm::stats before = ctx->stats();
            injection::inject_failure(injected_call::download);
            expect_usm_error(usm::errc::transfer_failed, {"download", dev->name(), "injected"}, [&] { c.access(w); });
            EXPECT_EQ(injection::injected_failures_fired(), 1u);
            injection::clear_injected_failures();
            expect_nothing_moved(before);
            expect_invariants(*ctx, "after the failed host_access");
            if (verify_first) expect_world_intact(w, "after the failed host_access");

            const usm::stats retry = ctx->stats();
            c.access(w);
            if (!verify_first) {
                EXPECT_EQ(since(retry).pages_to_host, c.pages_to_host);
            }
            expect_world_intact(w, "after the retried host_access");
            free_world(w);
        }
}

/* --- downloads from two devices ------------------------------------------ */

/// Two logical devices of the test's backend ("vulkan:0,vulkan:0"). Pages
/// only the first holds reach the second through the host, so a launch on
/// the second downloads before it uploads; and bringing back pages that the
/// two devices hold takes one download from each.
class fault_injection_two_devices : public fault_injection {
protected:
    void SetUp() override {
        injection::clear_injected_failures();
        usm::context_options o;
        o.device = std::string(GetParam()) + ":0," + GetParam() + ":0";
        try {
            ctx = usm_test::open_backend(GetParam(), o);
        } catch (const usm::error& e) {
            if (e.kind() == usm::errc::no_device && !usm_test::in_ci()) GTEST_SKIP() << e.what();
            FAIL() << "cannot open two devices of " << GetParam() << ": " << e.what();
        }
        if (ctx->devices().size() != 2) {
            if (!usm_test::in_ci()) GTEST_SKIP() << "USM_DEVICE overrides the test's two devices";
            FAIL() << "expected two devices, got " << ctx->devices().size();
        }
        dev = &ctx->devices()[0];
        other = &ctx->devices()[1];
        fill = usm_test::load(*dev, USM_TEST_KERNEL(test_fill));
        copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
        increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
        copy_on_other = usm_test::load(*other, USM_TEST_KERNEL(test_copy));
        fill_on_other = usm_test::load(*other, USM_TEST_KERNEL(test_fill));
    }

    usm::device* other = nullptr;
    usm::kernel fill_on_other;
};

TEST_P(fault_injection_two_devices, a_download_failure_staging_a_launch_elsewhere_fails_it_and_keeps_every_byte) {
    for (bool verify_first : {false, true}) {
        SCOPED_TRACE(verify_first ? "every byte checked before the retry" : "retried at once");
        world w = build_world();
        tracked out{"out", ctx->alloc<std::uint32_t>(small_words), std::vector<std::uint32_t>(small_words, 0)};
        for (std::size_t i = 0; i < small_words; ++i) out.p[i] = out.expected[i] = host_value(i, 77);
        const usm::stats before = ctx->stats();
        injection::inject_failure(injected_call::download);
        expect_usm_error(usm::errc::transfer_failed, {"download", dev->name(), "injected"},
                         [&] { launch_copy(*other, w.device_only.p, out.p, small_words); });
        EXPECT_EQ(injection::injected_failures_fired(), 1u);
        injection::clear_injected_failures();
        expect_nothing_moved(before);
        expect_invariants(*ctx, "after the failed launch");
        if (verify_first) {
            expect_words(device_view(*other, out.p, small_words).data(), out.expected, "out on the second device");
            expect_words(device_view(*other, w.device_only.p, small_words).data(), w.device_only.expected,
                         "device_only on the second device");
            expect_world_intact(w, "after the failed launch");
            expect_words(out.p.get(), out.expected, "out on the host");
        }

        const usm::stats retry = ctx->stats();
        launch_copy(*other, w.device_only.p, out.p, small_words).wait();
        out.expected = w.device_only.expected;
        if (!verify_first) {
            EXPECT_EQ(since(retry).pages_to_host, small_pages);
        }
        expect_words(device_view(*other, out.p, small_words).data(), out.expected, "out on the second device");
        expect_words(out.p.get(), out.expected, "out on the host after the retry");
        expect_world_intact(w, "after the retried launch");
        free_world(w);
        ctx->free(out.p);
    }
}

TEST_P(fault_injection_two_devices, a_download_failure_midway_through_a_host_access_keeps_the_pages_already_fetched) {
    // Pages 0-1 only the first device holds, pages 2-3 only the second. The
    // first download succeeds and the second fails: what arrived is shared
    // now, the rest is still only on its device, and nothing is lost.
    world w = build_world();
    const std::size_t half = 2 * words_per_page;
    tracked split{"split", ctx->alloc<std::uint32_t>(2 * half), std::vector<std::uint32_t>(2 * half)};
    launch_fill(split.p, half, 31).wait();
    other->launch(fill_on_other, groups_for(half), usm::group{64}, usm::write(split.p + half, half), u32(half), 32u)
        .wait();
    for (std::size_t i = 0; i < half; ++i) {
        split.expected[i] = fill_value(i, 31);
        split.expected[half + i] = fill_value(i, 32);
    }
    const usm::stats before = ctx->stats();
    injection::inject_failure(injected_call::download, /*skip=*/1);
    expect_usm_error(usm::errc::transfer_failed, {"download", other->name(), "injected"},
                     [&] { ctx->host_access(split.p, 2 * half, usm::access::read); });
    EXPECT_EQ(injection::injected_failures_fired(), 1u);
    injection::clear_injected_failures();
    // One batch per device brings pages 0-1 (a host_access served page by
    // page would stop after page 0): some pages came, not all.
    const std::uint64_t fetched = since(before).pages_to_host;
    EXPECT_GE(fetched, 1u);
    EXPECT_LT(fetched, 4u);
    EXPECT_EQ(since(before).launches, 0u);
    expect_invariants(*ctx, "after the failed host_access");

    const usm::stats retry = ctx->stats();
    ctx->host_access(split.p, 2 * half, usm::access::read);
    EXPECT_EQ(since(retry).pages_to_host, 4u - fetched);
    // Everything is on the host now: reading it moves nothing.
    expect_words(split.p.get(), split.expected, "split on the host after the retry");
    EXPECT_EQ(since(retry).pages_to_host, 4u - fetched);
    EXPECT_EQ(since(retry).host_read_faults, 0u);
    expect_words(device_view(*dev, split.p, 2 * half).data(), split.expected, "split on the first device");
    expect_words(device_view(*other, split.p, 2 * half).data(), split.expected, "split on the second device");
    expect_world_intact(w, "after the retried host_access");
}

USM_INSTANTIATE_PER_BACKEND(fault_injection);
USM_INSTANTIATE_PER_BACKEND(fault_injection_two_devices);

/* --- a plain host access whose download fails --------------------------- */

/// What the dying process writes: the access, its address, the injected
/// error, and the signal. Empty (anything) when USM_LOG silences errors.
std::string sigbus_message(const char* access) {
    const char* level = std::getenv("USM_LOG");
    if (level != nullptr && (std::string_view(level) == "off" || std::string_view(level) == "0")) return "";
    // The userfaultfd path adds "(thread N)" after the address.
    return std::string("host ") + access +
           " of 0x[0-9a-f]+.* cannot be served: download on .* failed \\(injected by a test\\).*; raising SIGBUS";
}

/// The fault path is the parameter's, whatever USM_FAULT says.
class fault_injection_host_fault : public usm_test::path_test {
protected:
    void SetUp() override {
        injection::clear_injected_failures();
        path_test::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        fill = usm_test::load(*dev, USM_TEST_KERNEL(test_fill));
        copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    }
    void TearDown() override {
        injection::clear_injected_failures();
        path_test::TearDown();
    }

    /// n words that only the device holds (a kernel wrote them).
    usm::ptr<std::uint32_t> device_resident(std::size_t n, std::uint32_t seed) {
        auto p = ctx->alloc<std::uint32_t>(n);
        dev->launch(fill, groups_for(n), usm::group{64}, usm::write(p, n), u32(n), seed).wait();
        return p;
    }

    /// In this process nothing was armed: the data is whole on both sides,
    /// and the access that killed the child works.
    void expect_intact(usm::ptr<std::uint32_t> p, std::size_t n, std::uint32_t seed) {
        expect_invariants(*ctx, "in the parent");
        std::vector<std::uint32_t> expected(n);
        for (std::size_t i = 0; i < n; ++i) expected[i] = fill_value(i, seed);
        auto seen = ctx->alloc<std::uint32_t>(n);
        dev->launch(copy, groups_for(n), usm::group{64}, usm::read(p, n), usm::write(seen, n), u32(n)).wait();
        expect_words(seen.get(), expected, "on the device");
        expect_words(p.get(), expected, "on the host");
        expect_invariants(*ctx, "in the parent, after reading");
    }

    usm::kernel fill, copy;
};

TEST_P(fault_injection_host_fault, a_host_read_of_device_resident_memory_raises_sigbus) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    const std::size_t n = 4 * words_per_page;
    auto p = device_resident(n, 21);
    EXPECT_EXIT(
        {
            injection::inject_failure(injected_call::download);
            const volatile std::uint32_t* q = p.get();
            const std::uint32_t v = q[words_per_page + 5];
            std::fprintf(stderr, "the read returned %u\n", v);
            std::_Exit(0);
        },
        testing::KilledBySignal(SIGBUS), sigbus_message("read"));
    expect_intact(p, n, 21);
}

TEST_P(fault_injection_host_fault, a_host_write_from_another_thread_raises_sigbus) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    const std::size_t n = 4 * words_per_page;
    auto p = device_resident(n, 22);
    EXPECT_EXIT(
        {
            injection::inject_failure(injected_call::download);
            std::thread writer([&] {
                volatile std::uint32_t* q = p.get();
                q[2 * words_per_page + 3] = 1;  // a partial write keeps the rest: the page must come first
            });
            writer.join();
            std::fprintf(stderr, "the write returned\n");
            std::_Exit(0);
        },
        testing::KilledBySignal(SIGBUS), sigbus_message("write"));
    expect_intact(p, n, 22);
}

USM_INSTANTIATE_PER_PATH(fault_injection_host_fault);

}  // namespace
