// tests/support.hpp - what the device suites share: one context per backend,
// kernels loaded from either SPIR-V or OpenCL C, and stats deltas.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "usm/usm.hpp"

namespace usm_test {

/// A test kernel in both forms. The OpenCL entry is the .cl file's kernel.
struct kernel_source {
    std::span<const std::uint32_t> spirv;
    std::string_view opencl;
    const char* opencl_entry;
};

// USM_TEST_KERNEL(test_fill) pairs shaders/test_fill.comp with test_fill.cl.
#define USM_TEST_KERNEL(name) \
    ::usm_test::kernel_source { ::usm::kernels::name##_comp, ::usm::kernels::name##_cl, #name }

inline usm::kernel load(usm::device& d, const kernel_source& k) {
    return d.backend() == usm::backend::vulkan ? d.load_kernel(usm::spirv(k.spirv), "main")
                                               : d.load_kernel(usm::opencl_c(k.opencl), k.opencl_entry);
}

/// What shaders/test_fill writes at word i, and shaders/test_slow_fill
/// after `rounds` steps of its generator.
inline std::uint32_t fill_value(std::size_t i, std::uint32_t seed) {
    return (static_cast<std::uint32_t>(i) * 2654435761u) ^ seed;
}
inline std::uint32_t slow_value(std::uint32_t i, std::uint32_t rounds) {
    std::uint32_t v = i;
    for (std::uint32_t r = 0; r < rounds; ++r) v = v * 1664525u + 1013904223u;
    return v;
}

/// The counters that grew from `before` to `now`, each as the difference
/// (the live gauges, allocations and bytes_allocated, as they are in `now`).
inline usm::stats stats_delta(const usm::stats& now, const usm::stats& before) {
    usm::stats d = now;
    auto minus = [&](std::uint64_t usm::stats::*counter) { d.*counter -= before.*counter; };
    for (auto counter :
         {&usm::stats::host_read_faults, &usm::stats::host_write_faults, &usm::stats::pages_to_device,
          &usm::stats::bytes_to_device, &usm::stats::pages_to_host, &usm::stats::bytes_to_host,
          &usm::stats::pages_read_ahead, &usm::stats::pages_zero_filled, &usm::stats::transfer_batches,
          &usm::stats::launches, &usm::stats::kernel_waits, &usm::stats::blocks_evicted, &usm::stats::pages_evicted,
          &usm::stats::pages_written_back, &usm::stats::blocks_pinned, &usm::stats::pages_in_place,
          &usm::stats::blocks_in_place, &usm::stats::device_faults, &usm::stats::replays}) {
        minus(counter);
    }
    return d;
}

/// True in CI, where a missing backend is a failure rather than a skip.
inline bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string_view(ci) != "" && std::string_view(ci) != "false" &&
           std::string_view(ci) != "0";
}

/// Sets an environment variable for a scope, restoring what was there.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : m_name(name) {
        if (const char* before = std::getenv(name)) m_before = before;
        ::setenv(name, value, 1);
    }
    ~scoped_env() {
        if (m_before)
            ::setenv(m_name, m_before->c_str(), 1);
        else
            ::unsetenv(m_name);
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* m_name;
    std::optional<std::string> m_before;
};

/// Opens a context with only `backend`'s first device.
inline std::unique_ptr<usm::context> open_backend(const std::string& backend, usm::context_options o = {}) {
    o.backend = backend;
    if (o.device.empty()) o.device = backend + ":0";
    return std::make_unique<usm::context>(o);
}

/// Base of the suites run once per backend: `ctx` and `dev` are ready in
/// every test; a backend without a device skips, or fails in CI.
class device_test : public testing::TestWithParam<const char*> {
protected:
    /// What the suite's context is made with (the backend is set apart).
    virtual usm::context_options options() const { return {}; }

    void SetUp() override {
        try {
            ctx = open_backend(GetParam(), options());
        } catch (const usm::error& e) {
            if (e.kind() == usm::errc::no_device && !in_ci()) GTEST_SKIP() << e.what();
            FAIL() << "cannot open backend " << GetParam() << ": " << e.what();
        }
        dev = &ctx->devices().front();
        // The userfaultfd pass of `make test` must really run on it.
        const char* fault = std::getenv("USM_FAULT");
        if (in_ci() && fault != nullptr && std::string_view(fault) == "uffd") {
            ASSERT_EQ(ctx->fault_handling(), usm::fault_path::userfaultfd) << "USM_FAULT=uffd fell back to SIGSEGV";
        }
    }

    /// Counter deltas since `before`.
    usm::stats since(const usm::stats& before) const { return stats_delta(ctx->stats(), before); }

    std::unique_ptr<usm::context> ctx;
    usm::device* dev = nullptr;
};

inline std::string backend_name(const testing::TestParamInfo<const char*>& info) { return info.param; }

/* --- suites that pin the fault path ------------------------------------- */

/// One parameter per (fault path, backend); test names end in the backend,
/// so the ctest label follows (tests/CMakeLists.txt).
struct path_param {
    usm::fault_path path;
    const char* backend;
};
inline std::string path_param_name(const testing::TestParamInfo<path_param>& info) {
    return std::string(info.param.path == usm::fault_path::signal ? "signal_" : "uffd_") + info.param.backend;
}
/// How GoogleTest (and so ctest's test names) shows a parameter.
inline void PrintTo(const path_param& p, std::ostream* os) {
    *os << (p.path == usm::fault_path::signal ? "signal" : "uffd") << " on " << p.backend;
}

/// Base of suites run on each fault path and backend: the parameter decides
/// the path, whatever USM_FAULT says (it is unset while the test runs and
/// restored after), and a context that falls back fails the test.
class path_test : public testing::TestWithParam<path_param> {
protected:
    void SetUp() override {
        if (const char* f = std::getenv("USM_FAULT")) m_saved_fault = f;
        ::unsetenv("USM_FAULT");
        usm::context_options o;
        o.fault = GetParam().path;
        try {
            ctx = open_backend(GetParam().backend, o);
        } catch (const usm::error& e) {
            if (e.kind() == usm::errc::no_device && !in_ci()) GTEST_SKIP() << e.what();
            FAIL() << e.what();
        }
        ASSERT_EQ(ctx->fault_handling(), GetParam().path) << "this machine must allow userfaultfd (root here)";
        dev = &ctx->devices().front();
    }
    void TearDown() override {
        if (!m_saved_fault.empty()) ::setenv("USM_FAULT", m_saved_fault.c_str(), 1);
    }

    std::unique_ptr<usm::context> ctx;
    usm::device* dev = nullptr;

private:
    std::string m_saved_fault;
};

#define USM_INSTANTIATE_PER_PATH(suite)                                                                       \
    INSTANTIATE_TEST_SUITE_P(paths, suite,                                                                    \
                             testing::Values(::usm_test::path_param{usm::fault_path::signal, "vulkan"},       \
                                             ::usm_test::path_param{usm::fault_path::userfaultfd, "vulkan"},  \
                                             ::usm_test::path_param{usm::fault_path::signal, "opencl"},       \
                                             ::usm_test::path_param{usm::fault_path::userfaultfd, "opencl"}), \
                             ::usm_test::path_param_name)

#define USM_INSTANTIATE_PER_BACKEND(suite) \
    INSTANTIATE_TEST_SUITE_P(backends, suite, testing::Values("vulkan", "opencl"), ::usm_test::backend_name)

}  // namespace usm_test
