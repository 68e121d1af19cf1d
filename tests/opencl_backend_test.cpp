// tests/opencl_backend_test.cpp - what only the OpenCL backend has, driven
// through the backend contract (core/device_interface.hpp): which devices it
// accepts, PoCL's facts, kernel arguments checked against their declarations,
// build options and statuses, and what import alignment means here.
// Behaviour every backend shares is in tests/backend_contract_test.cpp.
#include <gtest/gtest.h>

#include <bit>
#include <kernels/saxpy_cl.hpp>
#include <kernels/test_cl_values_cl.hpp>

#include "backend_support.hpp"
#include "backends/opencl/opencl_requirements.hpp"

namespace usm_test::backend {
namespace {

// Raw OpenCL statuses as driver_result() reports them (this test includes no
// OpenCL header).
constexpr long long cl_build_program_failure = -11;
constexpr long long cl_invalid_kernel_name = -46;

class opencl_environment : public testing::Environment {
public:
    void TearDown() override { close_backends(); }
};

[[maybe_unused]] testing::Environment* const registered_environment =
    testing::AddGlobalTestEnvironment(new opencl_environment);

class opencl_backend : public testing::Test {
protected:
    void SetUp() override {
        m_opened = &open_backend_once("opencl");
        USM_REQUIRE_BACKEND(*m_opened, "opencl");
    }
    device_backend& dev() const { return *m_opened->device; }
    compiled_kernel& saxpy() {
        if (!m_saxpy) m_saxpy = dev().build_opencl_c(usm::kernels::saxpy_cl, "", "saxpy");
        return *m_saxpy;
    }

private:
    opened_backend* m_opened = nullptr;
    std::unique_ptr<compiled_kernel> m_saxpy;
};

/* --- which devices ------------------------------------------------------------------ */

TEST(opencl_requirements, reject_old_versions_missing_svm_and_no_compiler) {
    using usm::detail::opencl::parse_opencl_version;
    using usm::detail::opencl::rejection_reason;
    EXPECT_EQ(parse_opencl_version("OpenCL 3.0 PoCL HSTR: pthread-x86_64"), 300);
    EXPECT_EQ(parse_opencl_version("OpenCL 1.2 CUDA"), 102);
    EXPECT_EQ(parse_opencl_version("OpenCL C 1.2"), 0);
    EXPECT_EQ(parse_opencl_version(""), 0);

    EXPECT_EQ(rejection_reason({"OpenCL 3.0 PoCL", true, true, true}), "");
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 1.2 CUDA", true, true, true}), "OpenCL 2.0"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 1.2 CUDA", true, true, true}), "OpenCL 1.2 CUDA"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 3.0 ", false, true, true}), "CL_DEVICE_SVM_COARSE_GRAIN_BUFFER"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 3.0 ", true, false, true}), "unavailable"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 3.0 ", true, true, false}), "compiler"));
}

TEST_F(opencl_backend, pocl_is_a_cpu_device_sharing_the_hosts_memory) {
    const device_properties& p = dev().properties();
    const bool pocl = p.driver.find("PoCL") != std::string::npos;
    if (in_ci()) {
        ASSERT_TRUE(pocl) << "CI runs on PoCL, not " << p.driver;
    }
    // No OpenCL device says which hardware runs a queue.
    EXPECT_FALSE(p.dedicated_transfer_queue);
    EXPECT_LE(p.max_allocation, p.memory_bytes);
    if (!pocl) return;  // another driver: nothing known about it here
    EXPECT_TRUE(contains_regex(p.driver, "PoCL [0-9]+\\.[0-9]+"));
    // The pthread device is the CPU: its memory is host memory, its SVM
    // fine-grained (CPU copies), and its kernels use CL_MEM_USE_HOST_PTR
    // memory at the host pointer (imports in place).
    EXPECT_TRUE(p.host_addressable);
    EXPECT_TRUE(p.cpu_copies);
    EXPECT_TRUE(p.host_memory_in_place);
    // Its largest buffer is a share of the RAM it reports (8 GiB of 21.5 on
    // a 24 GiB machine): a quarter at least.
    EXPECT_GE(p.max_allocation, p.memory_bytes / 4);
}

/* --- kernel arguments ------------------------------------------------------------------- */

TEST_F(opencl_backend, value_arguments_arrive_with_their_exact_bytes) {
    auto kernel = dev().build_opencl_c(usm::kernels::test_cl_values_cl, "", "test_cl_values");
    auto out = dev().create_mirror(page);
    const std::uint64_t a = 0x0123456789ABCDEFull;
    const std::int32_t b = -123456789;
    const float c = -0.1f;
    const std::uint8_t d = 0xC3;
    const std::int16_t e = -2;
    const bound_arg args[] = {memory(*out, 8, 40, access::write), value(a), value(b), value(c), value(d), value(e)};
    const sync_point done[] = {dev().launch(*kernel, {1, 1, 1}, {1, 1, 1}, args, {})};
    const std::vector<std::uint64_t> got = download_values<std::uint64_t>(dev(), *out, 8, 5, done);
    EXPECT_EQ(got[0], a);
    EXPECT_EQ(got[1], static_cast<std::uint64_t>(std::int64_t{b}));
    EXPECT_EQ(got[2], std::bit_cast<std::uint32_t>(c));
    EXPECT_EQ(got[3], d);
    EXPECT_EQ(got[4], static_cast<std::uint64_t>(std::int64_t{e}));
}

TEST_F(opencl_backend, arguments_are_checked_against_the_kernels_declaration) {
    auto m = dev().create_mirror(page);
    const float a = 2.0f;
    const std::uint32_t n = 16;
    const bound_arg good[] = {memory(*m, 0, 64, access::read), memory(*m, 64, 64, access::read_write), value(a),
                              value(n)};
    const auto refused = [&](std::span<const bound_arg> args) {
        return expect_error([&] { dev().launch(saxpy(), {1, 1, 1}, {16, 1, 1}, args, {}); });
    };
    // The count (CL_KERNEL_NUM_ARGS).
    usm::error e = refused(std::span(good).first(3));
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "'saxpy'"));
    EXPECT_TRUE(contains(e.what(), "takes 4 arguments"));
    EXPECT_TRUE(contains(e.what(), "gave 3"));
    // A value where the kernel declares a __global pointer, and memory where
    // it declares a value (-cl-kernel-arg-info).
    bound_arg swapped[] = {good[0], good[1], good[2], good[3]};
    swapped[0] = value(n);
    e = refused(swapped);
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "argument 0"));
    swapped[0] = good[0];
    swapped[2] = memory(*m, 0, 4, access::read);
    e = refused(swapped);
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "argument 2"));
    // A value of the wrong size: the driver rejects it.
    const double wide = 2.0;
    swapped[2] = value(wide);
    e = refused(swapped);
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "clSetKernelArg"));
    // The good launch still works.
    dev().wait(dev().launch(saxpy(), {1, 1, 1}, {16, 1, 1}, good, {}));
}

/* --- builds --------------------------------------------------------------------------------- */

TEST_F(opencl_backend, build_failures_carry_the_opencl_status) {
    usm::error e = expect_error(
        [&] { dev().build_opencl_c("__kernel void broken(__global int* p) { p[0] = x; }", "", "broken"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_EQ(e.driver_result(), cl_build_program_failure);
    e = expect_error([&] { dev().build_opencl_c(usm::kernels::saxpy_cl, "", "saxpy_typo"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_EQ(e.driver_result(), cl_invalid_kernel_name);
    EXPECT_TRUE(contains(e.what(), "clCreateKernel"));
}

TEST_F(opencl_backend, bad_build_options_fail_the_build) {
    const usm::error e =
        expect_error([&] { dev().build_opencl_c(usm::kernels::saxpy_cl, "-no-such-option", "saxpy"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_TRUE(contains(e.what(), "-no-such-option"));
}

/* --- imports -------------------------------------------------------------------------------- */

TEST_F(opencl_backend, imports_start_at_a_page_and_fit_the_largest_buffer) {
    if (!dev().properties().host_memory_in_place) {
        // A GPU may cache a USE_HOST_PTR buffer: nothing is imported.
        aligned_memory mapping(page);
        const usm::error e = expect_error([&] { dev().import_host(mapping.data(), page); });
        EXPECT_EQ(e.kind(), errc::unsupported);
        EXPECT_TRUE(contains(e.what(), "in place"));
        EXPECT_FALSE(in_ci()) << "PoCL runs kernels on host memory in place";
        return;
    }
    aligned_memory mapping(4 * page);
    // 128 bytes into a page: aligned for PoCL (CL_DEVICE_MEM_BASE_ADDR_ALIGN)
    // but not to a page, which the contract asks for.
    for (const std::size_t offset : {std::size_t{4}, std::size_t{128}, page / 2}) {
        const usm::error e = expect_error([&] { dev().import_host(mapping.data() + offset, 2 * page); });
        EXPECT_EQ(e.kind(), errc::unsupported) << "offset " << offset;
        EXPECT_TRUE(contains(e.what(), "not a multiple of")) << "offset " << offset;
        EXPECT_TRUE(contains(e.what(), "CL_DEVICE_MEM_BASE_ADDR_ALIGN"));
    }
    const usm::error e =
        expect_error([&] { dev().import_host(mapping.data(), dev().properties().max_allocation + page); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
}

}  // namespace
}  // namespace usm_test::backend
