// tests/fault_path_test.cpp - the two host fault paths and system calls:
// userfaultfd serves read(2)/write(2) on device-resident usm memory; the
// signal path answers EFAULT without losing data, and host_access makes the
// call work.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <kernels/test_copy_cl.hpp>
#include <kernels/test_copy_comp.hpp>
#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>

#include "core/context_impl.hpp"
#include "core/fault_injection.hpp"
#include "support.hpp"

namespace {

using usm_test::fill_value;
class fault_path_test : public usm_test::path_test {
protected:
    void SetUp() override {
        path_test::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        fill = usm_test::load(*dev, USM_TEST_KERNEL(test_fill));
        copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
    }

    /// A buffer of n words that only the device holds (a kernel wrote it).
    usm::ptr<std::uint32_t> device_resident(std::size_t n, std::uint32_t seed) {
        auto p = ctx->alloc<std::uint32_t>(n);
        dev->launch(fill, usm::grid{(n + 63) / 64}, usm::group{64}, usm::write(p, n), std::uint32_t(n), seed).wait();
        return p;
    }

    /// What the device sees in [p, p + n), through a copy kernel.
    std::vector<std::uint32_t> device_view(usm::ptr<std::uint32_t> p, std::size_t n) {
        auto out = ctx->alloc<std::uint32_t>(n);
        dev->launch(copy, usm::grid{(n + 63) / 64}, usm::group{64}, usm::read(p, n), usm::write(out, n),
                    std::uint32_t(n))
            .wait();
        std::vector<std::uint32_t> v(out.get(), out.get() + n);
        ctx->free(out);
        return v;
    }

    usm::kernel fill, copy;
};

struct pipe_pair {
    int fds[2] = {-1, -1};
    pipe_pair() { EXPECT_EQ(::pipe(fds), 0); }
    ~pipe_pair() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
};

TEST_P(fault_path_test, read_syscall_into_device_resident_memory) {
    const std::size_t n = 8192;  // 32 KiB: 8 pages, under the pipe's 64 KiB buffer
    auto buf = device_resident(n, 5);
    std::vector<std::uint32_t> incoming(n);
    for (std::size_t i = 0; i < n; ++i) incoming[i] = static_cast<std::uint32_t>(i * 7 + 1);
    pipe_pair p;
    ASSERT_EQ(::write(p.fds[1], incoming.data(), n * 4), static_cast<ssize_t>(n * 4));

    if (GetParam().path == usm::fault_path::userfaultfd) {
        // The kernel's copy faults into usm's handler thread like any access.
        ASSERT_EQ(::read(p.fds[0], buf.get(), n * 4), static_cast<ssize_t>(n * 4)) << std::strerror(errno);
    } else {
        // The kernel does not raise SIGSEGV for its own accesses: EFAULT, and
        // the device's data is intact.
        errno = 0;
        EXPECT_EQ(::read(p.fds[0], buf.get(), n * 4), -1);
        EXPECT_EQ(errno, EFAULT);
        const auto seen = device_view(buf, n);
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], fill_value(static_cast<std::uint32_t>(i), 5)) << i;
        // host_access makes the range host-writable first; then read(2) works.
        buf = device_resident(n, 5);
        ctx->host_access(buf, n, usm::access::write);
        ASSERT_EQ(::read(p.fds[0], buf.get(), n * 4), static_cast<ssize_t>(n * 4)) << std::strerror(errno);
    }
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(buf[i], incoming[i]) << i;
    const auto seen = device_view(buf, n);  // and the device sees what read(2) wrote
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], incoming[i]) << i;
    ctx->impl().check_invariants();
}

TEST_P(fault_path_test, write_syscall_from_device_resident_memory) {
    const std::size_t n = 4096;
    auto buf = device_resident(n, 9);
    pipe_pair p;
    if (GetParam().path == usm::fault_path::signal) ctx->host_access(buf, n, usm::access::read);
    ASSERT_EQ(::write(p.fds[1], buf.get(), n * 4), static_cast<ssize_t>(n * 4)) << std::strerror(errno);
    std::vector<std::uint32_t> got(n);
    ASSERT_EQ(::read(p.fds[0], got.data(), n * 4), static_cast<ssize_t>(n * 4));
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], fill_value(static_cast<std::uint32_t>(i), 9)) << i;
    ctx->impl().check_invariants();
}

TEST_P(fault_path_test, host_access_moves_exactly_the_range_and_checks_it) {
    const std::size_t n = 16 * 1024;  // 16 pages
    auto buf = device_resident(n, 3);
    const usm::stats before = ctx->stats();
    ctx->host_access(buf + 1024 + 5, 2048, usm::access::read);  // pages 1-3
    EXPECT_EQ(ctx->stats().pages_to_host - before.pages_to_host, 3u);
    EXPECT_EQ(ctx->stats().host_read_faults, before.host_read_faults);  // not a fault
    try {
        ctx->host_access(buf + 10, n, usm::access::read);
        FAIL() << "host_access past the end was accepted";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::out_of_range) << e.what();
    }
    int local = 0;
    try {
        ctx->host_access(usm::ptr<int>(&local), 1, usm::access::read);
        FAIL() << "host_access of a stack address was accepted";
    } catch (const usm::error& e) {
        EXPECT_EQ(e.kind(), usm::errc::not_a_usm_pointer) << e.what();
    }
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(buf[i], fill_value(static_cast<std::uint32_t>(i), 3)) << i;
}

TEST_P(fault_path_test, fresh_memory_and_invariants_on_each_path) {
    const std::size_t n = 300'000;
    auto x = ctx->alloc<std::uint32_t>(n);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += x[i];
    EXPECT_EQ(sum, 0u);
    ctx->impl().check_invariants();
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
    ctx->impl().check_invariants();
    const auto seen = device_view(x, n);
    ctx->impl().check_invariants();  // x is shared now: read-only on the host
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], i);
    x[77] = 1;
    EXPECT_EQ(x[77], 1u);
    EXPECT_EQ(x[78], 78u);
    ctx->impl().check_invariants();
}

TEST_P(fault_path_test, a_stray_access_past_an_allocation_still_kills_with_sigsegv) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto p = ctx->alloc<char>(4096);
    p[0] = 1;
    EXPECT_EXIT(
        {
            volatile char* past = p.get() + 4096;  // the guard page
            *past = 1;
        },
        testing::KilledBySignal(SIGSEGV), "");
}

USM_INSTANTIATE_PER_PATH(fault_path_test);

}  // namespace
