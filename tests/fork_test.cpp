// tests/fork_test.cpp - fork() and usm, once per backend.
//
// usm memory belongs to the process that made the context (DESIGN.md,
// "fork()"): the range is MADV_DONTFORK, so in a child every usm address is
// unmapped and touching it kills the child with SIGSEGV, and every usm call
// made in the child throws errc::wrong_process before it reaches a driver.
// The parent's host data and device copies stay as they were, while the
// child lives and after it exits.
//
// A child never returns into GoogleTest: it reports through its exit status
// or a pipe and ends with _exit. The child of a process with driver threads
// has only the forking thread, so it must not call into a driver; an alarm
// turns a child that hangs in one into a failure instead of a stuck test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <kernels/test_copy_cl.hpp>
#include <kernels/test_copy_comp.hpp>
#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>
#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>

#include "core/context_impl.hpp"
#include "support.hpp"

namespace {

using usm_test::device_test;
using usm_test::fill_value;
constexpr std::size_t words_per_page = 4096 / sizeof(std::uint32_t);
constexpr unsigned child_alarm_seconds = 20;

std::uint32_t host_value(std::size_t i) { return static_cast<std::uint32_t>(i * 7 + 3); }
usm::grid groups_for(std::size_t n) { return usm::grid{(n + 63) / 64}; }

/* --- child processes ---------------------------------------------------- */

/// How a child ended, in words, for assertion messages.
std::string describe(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return "ended with raw status " + std::to_string(status);
}

/// Waits for `child`, killing it after `limit` so a hung child cannot hang
/// the test. Returns the wait status.
int wait_for_child(pid_t child, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(child, &status, WNOHANG);
        if (r == child) return status;
        if (r < 0) {
            ADD_FAILURE() << "waitpid: " << std::strerror(errno);
            return -1;
        }
        if (std::chrono::steady_clock::now() > give_up) {
            ADD_FAILURE() << "child " << child << " still running after " << limit.count() << " s; killing it";
            ::kill(child, SIGKILL);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

/// Forks; the child runs `body` (which never returns into the caller: the
/// child _exits with what body returns). Returns the child's wait status.
int run_in_child(const std::function<int()>& body) {
    std::fflush(nullptr);  // no buffered output written twice
    const pid_t child = ::fork();
    if (child < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return -1;
    }
    if (child == 0) {
        ::alarm(child_alarm_seconds);
        int code = 100;
        try {
            code = body();
        } catch (...) {
            code = 101;
        }
        ::_exit(code);
    }
    return wait_for_child(child);
}

/// A usm call made in a child and what it threw, as one byte: 'W' for
/// errc::wrong_process, 'E' for another usm::error, 'X' for another exception,
/// 'N' for no exception.
char outcome_of(const std::function<void()>& call) {
    try {
        call();
        return 'N';
    } catch (const usm::error& e) {
        return e.kind() == usm::errc::wrong_process ? 'W' : 'E';
    } catch (...) {
        return 'X';
    }
}

void write_all(int fd, const void* data, std::size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
        const ssize_t w = ::write(fd, p, bytes);
        if (w <= 0) ::_exit(102);
        p += w;
        bytes -= static_cast<std::size_t>(w);
    }
}

std::string read_all(int fd) {
    std::string text;
    char buffer[256];
    for (;;) {
        const ssize_t r = ::read(fd, buffer, sizeof buffer);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return text;
        text.append(buffer, static_cast<std::size_t>(r));
    }
}

/* --- the fixture -------------------------------------------------------- */

/// Three allocations in three states before every fork:
///   on_host   - written by the host only (host exclusive);
///   on_device - written by a kernel only (device exclusive, host invalid);
///   both      - written by the host, then incremented by a kernel and read
///               back by the host (valid on both, host read-only).
class fork_child : public device_test {
protected:
    static constexpr std::size_t n = 5 * words_per_page + 77;
    static constexpr std::uint32_t seed = 0x5eed;

    void SetUp() override {
        device_test::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        copy = usm_test::load(*dev, USM_TEST_KERNEL(test_copy));
        fill = usm_test::load(*dev, USM_TEST_KERNEL(test_fill));
        increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));

        on_host = ctx->alloc<std::uint32_t>(n);
        on_device = ctx->alloc<std::uint32_t>(n);
        both = ctx->alloc<std::uint32_t>(n);
        for (std::size_t i = 0; i < n; ++i) on_host[i] = host_value(i);
        for (std::size_t i = 0; i < n; ++i) both[i] = host_value(i);
        dev->launch(fill, groups_for(n), usm::group{64}, usm::write(on_device, n), std::uint32_t(n), seed).wait();
        dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(both, n), std::uint32_t(n)).wait();
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < n; ++i) sum += both[i];  // brings `both` back as a shared copy
        EXPECT_GT(sum, 0u);
        ctx->impl().check_invariants();
    }

    /// The parent's data, checked on the device first (a kernel copies each
    /// allocation from the device's copy without moving it there) and then
    /// on the host.
    void expect_parent_data_intact(const char* when) {
        SCOPED_TRACE(when);
        auto seen = ctx->alloc<std::uint32_t>(n);
        auto seen_both = ctx->alloc<std::uint32_t>(n);
        const usm::stats before = ctx->stats();
        dev->launch(copy, groups_for(n), usm::group{64}, usm::read(on_device, n), usm::write(seen, n), std::uint32_t(n))
            .wait();
        dev->launch(copy, groups_for(n), usm::group{64}, usm::read(both, n), usm::write(seen_both, n), std::uint32_t(n))
            .wait();
        // The device copies of on_device and both were used as they were.
        EXPECT_EQ(since(before).pages_to_device, 0u) << "the device copies were not valid any more";
        for (std::size_t i = 0; i < n; ++i)
            ASSERT_EQ(seen[i], fill_value(i, seed)) << "device copy of on_device, word " << i;
        for (std::size_t i = 0; i < n; ++i)
            ASSERT_EQ(seen_both[i], host_value(i) + 1) << "device copy of both, word " << i;
        ctx->free(seen_both);
        dev->launch(copy, groups_for(n), usm::group{64}, usm::read(on_host, n), usm::write(seen, n), std::uint32_t(n))
            .wait();
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], host_value(i)) << "on_host via the device, word " << i;
        ctx->free(seen);

        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(on_host[i], host_value(i)) << "on_host, word " << i;
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(both[i], host_value(i) + 1) << "both, word " << i;
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(on_device[i], fill_value(i, seed)) << "on_device, word " << i;
        ctx->impl().check_invariants();
    }

    /// Forks a child that touches `address` (a read, or a write) and expects
    /// it to die of SIGSEGV.
    void expect_child_killed_touching(volatile std::uint32_t* address, bool write) {
        const int status = run_in_child([&] {
            if (write) {
                *address = 0xbad;
            } else {
                [[maybe_unused]] const std::uint32_t v = *address;
            }
            return 0;  // survived: the address was mapped in the child
        });
        EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)
            << "a child " << (write ? "writing" : "reading") << " usm memory at " << const_cast<std::uint32_t*>(address)
            << " " << describe(status) << "; expected SIGSEGV";
    }

    usm::kernel copy, fill, increment;
    usm::ptr<std::uint32_t> on_host, on_device, both;
};

/* --- usm calls in the child --------------------------------------------- */

TEST_P(fork_child, usm_calls_throw_wrong_process_and_the_parent_is_unaffected) {
    // The child makes every call, reports one byte per call, then waits until
    // the parent has checked its data (so the check runs while the child lives).
    int report[2], hold[2];
    ASSERT_EQ(::pipe(report), 0);
    ASSERT_EQ(::pipe(hold), 0);
    const char* calls[] = {"alloc", "alloc_bytes", "free", "launch", "host_access", "load_kernel"};
    std::fflush(nullptr);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0) << std::strerror(errno);
    if (child == 0) {
        ::alarm(child_alarm_seconds);
        ::close(report[0]);
        ::close(hold[1]);
        std::string got;
        got += outcome_of([&] { ctx->alloc<std::uint32_t>(100); });
        got += outcome_of([&] { ctx->alloc_bytes(4096, usm::placement::device(*dev)); });
        got += outcome_of([&] { ctx->free(on_host); });
        got += outcome_of([&] {
            dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(on_host, n), std::uint32_t(n));
        });
        got += outcome_of([&] { ctx->host_access(on_device, n, usm::access::read); });
        got += outcome_of([&] { usm_test::load(*dev, USM_TEST_KERNEL(test_copy)); });
        write_all(report[1], got.data(), got.size());
        ::close(report[1]);
        char c;
        [[maybe_unused]] auto r = ::read(hold[0], &c, 1);  // EOF once the parent is done
        ::_exit(0);
    }
    ::close(report[1]);
    ::close(hold[0]);
    const std::string got = read_all(report[0]);
    ::close(report[0]);
    ASSERT_EQ(got.size(), std::size(calls))
        << "the child reported " << got.size() << " of " << std::size(calls) << " calls ('" << got << "')";
    for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i], 'W') << calls[i] << " in the child: " << got[i]
                               << " (W: wrong_process, E: another usm::error, X: another exception, N: none)";

    expect_parent_data_intact("while the child lives");
    ::close(hold[1]);
    const int status = wait_for_child(child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << describe(status);
    expect_parent_data_intact("after the child exited");

    // The parent keeps working as before.
    dev->launch(increment, groups_for(n), usm::group{64}, usm::read_write(on_host, n), std::uint32_t(n)).wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(on_host[i], host_value(i) + 1) << i;
    auto fresh = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(fresh[i], 0u) << i;
    ctx->impl().check_invariants();
}

TEST_P(fork_child, the_error_names_the_process_that_owns_the_context) {
    int report[2];
    ASSERT_EQ(::pipe(report), 0);
    std::fflush(nullptr);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::alarm(child_alarm_seconds);
        ::close(report[0]);
        std::string text = "no error";
        try {
            ctx->alloc<int>(1);
        } catch (const usm::error& e) {
            text = e.what();
        }
        write_all(report[1], text.data(), text.size());
        ::_exit(0);
    }
    ::close(report[1]);
    const std::string text = read_all(report[0]);
    ::close(report[0]);
    const int status = wait_for_child(child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe(status);
    EXPECT_NE(text.find("alloc"), std::string::npos) << text;
    EXPECT_NE(text.find(std::to_string(::getpid())), std::string::npos) << text;
    EXPECT_NE(text.find("fork"), std::string::npos) << text;
}

/* --- usm memory in the child -------------------------------------------- */

TEST_P(fork_child, touching_usm_memory_kills_the_child_with_sigsegv) {
    // Every kind of page: host exclusive, device exclusive, shared, and fresh.
    auto fresh = ctx->alloc<std::uint32_t>(n);
    expect_child_killed_touching(on_host.get() + 10, false);
    expect_child_killed_touching(on_host.get() + 10, true);
    expect_child_killed_touching(on_device.get() + words_per_page, false);
    expect_child_killed_touching(on_device.get() + words_per_page, true);
    expect_child_killed_touching(both.get() + n - 1, false);
    expect_child_killed_touching(both.get() + n - 1, true);
    expect_child_killed_touching(fresh.get(), false);
    expect_child_killed_touching(fresh.get(), true);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(fresh[i], 0u) << i;
    expect_parent_data_intact("after the children died");
}

TEST_P(fork_child, a_child_sees_the_range_unmapped) {
    // Not even the mapping is inherited: mincore() fails with ENOMEM on it.
    int report[2];
    ASSERT_EQ(::pipe(report), 0);
    const int status = run_in_child([&] {
        ::close(report[0]);
        unsigned char resident = 0;
        const int r = ::mincore(on_host.get(), 4096, &resident);
        const int what = r == 0 ? 0 : errno;
        write_all(report[1], &what, sizeof what);
        return 0;
    });
    ::close(report[1]);
    const std::string got = read_all(report[0]);
    ::close(report[0]);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe(status);
    ASSERT_EQ(got.size(), sizeof(int));
    int what = 0;
    std::memcpy(&what, got.data(), sizeof what);
    EXPECT_EQ(what, ENOMEM) << "mincore on a usm page in the child: " << (what == 0 ? "mapped" : std::strerror(what));
    expect_parent_data_intact("after the child exited");
}

TEST_P(fork_child, a_kernel_in_flight_across_fork_completes_for_the_parent) {
    // The fork happens while a launch may still run; the child exits at once.
    auto out = ctx->alloc<std::uint32_t>(n);
    usm::event e =
        dev->launch(copy, groups_for(n), usm::group{64}, usm::read(on_host, n), usm::write(out, n), std::uint32_t(n));
    const int status = run_in_child([] { return 0; });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe(status);
    e.wait();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], host_value(i)) << i;
    expect_parent_data_intact("after the child exited");
}

USM_INSTANTIATE_PER_BACKEND(fork_child);

}  // namespace
