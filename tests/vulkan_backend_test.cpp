// tests/vulkan_backend_test.cpp - what only the Vulkan backend has, driven
// through the backend contract (core/device_interface.hpp): the validation
// layer, push constants as the argument block, SPIR-V work-group sizes, the
// device limits named in errors, import alignment, and how empty batches join
// the two timelines. Behaviour every backend shares is in
// tests/backend_contract_test.cpp.
//
// The whole run has the Khronos validation layer on (USM_VK_VALIDATION=1 is
// set before the driver loads, unless the environment already sets it), and
// the global tear-down asserts that it reported no error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <kernels/heat2d_comp.hpp>
#include <kernels/saxpy_comp.hpp>
#include <kernels/test_vk_literal_comp.hpp>
#include <kernels/test_vk_pack_comp.hpp>
#include <kernels/test_vk_tail_comp.hpp>
#include <sstream>

#include "backend_support.hpp"
#include "backends/vulkan/vulkan_debug.hpp"

namespace usm_test::backend {
namespace {

class vulkan_environment : public testing::Environment {
public:
    void SetUp() override {
        // Before the instance exists: the layer is chosen at vkCreateInstance.
        ::setenv("USM_VK_VALIDATION", "1", 0);
    }
    void TearDown() override {
        // Destroy everything first, so the layer also checks destruction.
        close_backends();
        EXPECT_EQ(vulkan_validation_errors(), 0u) << "the Vulkan validation layer reported errors (see the log)";
    }
};

[[maybe_unused]] testing::Environment* const registered_environment =
    testing::AddGlobalTestEnvironment(new vulkan_environment);

class vulkan_backend : public testing::Test {
protected:
    void SetUp() override {
        m_opened = &open_backend_once("vulkan");
        USM_REQUIRE_BACKEND(*m_opened, "vulkan");
    }
    device_backend& dev() const { return *m_opened->device; }
    std::unique_ptr<compiled_kernel> build(std::span<const std::uint32_t> words) const {
        return dev().build_spirv(words, "main");
    }

private:
    opened_backend* m_opened = nullptr;
};

/* --- the device and the layer ------------------------------------------------------------ */

TEST_F(vulkan_backend, lavapipe_is_a_mesa_cpu_device_with_one_queue) {
    const device_properties& p = dev().properties();
    const bool lavapipe = p.name.find("llvmpipe") != std::string::npos;
    if (in_ci()) {
        ASSERT_TRUE(lavapipe) << "CI runs on lavapipe, not " << p.name;
    }
    if (!lavapipe) return;  // another device: nothing known about it here
    EXPECT_NE(p.driver.find("Mesa"), std::string::npos) << p.driver;
    // CPU memory, one queue family with one queue: transfers share it.
    EXPECT_TRUE(p.host_addressable);
    EXPECT_TRUE(p.cpu_copies);
    EXPECT_FALSE(p.dedicated_transfer_queue);
    // VK_EXT_external_memory_host, with a 4 KiB alignment.
    EXPECT_TRUE(p.host_memory_in_place);
}

TEST_F(vulkan_backend, the_validation_layer_is_active) {
    const char* setting = std::getenv("USM_VK_VALIDATION");
    if (setting != nullptr && std::string_view(setting) == "0") {
        // Turned off on purpose: then it must really be off.
        EXPECT_FALSE(vulkan_validation_active());
        return;
    }
    const bool installed =
        std::filesystem::exists("/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json");
    if (!installed && !in_ci()) GTEST_SKIP() << "VK_LAYER_KHRONOS_validation is not installed";
    EXPECT_TRUE(vulkan_validation_active()) << "CI installs vulkan-validationlayers (.ci/install-deps)";
}

/* --- transfers ---------------------------------------------------------------------------- */

TEST_F(vulkan_backend, copies_of_one_batch_that_overlap_are_refused) {
    // Regions of one vkCmdCopyBuffer must not overlap, nor may two writes of
    // one batch, whose order would be undefined.
    auto m = dev().create_mirror(2 * page);
    std::vector<std::byte> bytes(page);
    const upload_op overlapping[] = {{m.get(), 0, bytes.data(), 100}, {m.get(), 99, bytes.data(), 10}};
    const usm::error e = expect_error([&] { dev().upload(overlapping, {}, {}, transfer_path::queue); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "overlap"));
    // Adjacent is fine.
    const upload_op adjacent[] = {{m.get(), 0, bytes.data(), 100}, {m.get(), 100, bytes.data(), 10}};
    dev().wait(dev().upload(adjacent, {}, {}, transfer_path::queue));
}

TEST_F(vulkan_backend, an_empty_upload_returns_the_one_pending_point_or_joins_both_queues) {
    // Both lanes are one VkQueue on lavapipe; their timelines stay apart.
    auto m = dev().create_mirror(page);
    auto k = build(usm::kernels::saxpy_comp);
    const float a = 1.0f;
    const std::uint32_t n = 1024;
    const bound_arg args[] = {memory(*m, 0, page, access::read), memory(*m, 0, page, access::read_write), value(a),
                              value(n)};
    const sync_point launched = dev().launch(*k, {16, 1, 1}, {64, 1, 1}, args, {});
    const sync_point copied = upload_values(dev(), *m, 0, std::vector<std::uint32_t>(16, 0));
    EXPECT_EQ(launched.queue, 0u);
    EXPECT_EQ(copied.queue, 1u);
    const sync_point only_launch[] = {launched, {}};
    const sync_point same = dev().upload({}, {}, only_launch, transfer_path::queue);
    // Reached already (the empty point), or that very point.
    EXPECT_TRUE(same.empty() || (same.queue == launched.queue && same.value == launched.value));
    const sync_point both[] = {launched, copied};
    const sync_point joined = dev().upload({}, {}, both, transfer_path::queue);
    EXPECT_TRUE(joined.empty() || joined.queue == 1u);
    dev().wait(joined);
    EXPECT_TRUE(dev().reached(launched));
    EXPECT_TRUE(dev().reached(copied));
}

/* --- kernels and arguments ----------------------------------------------------------------- */

TEST_F(vulkan_backend, push_constants_follow_the_argument_convention) {
    auto out = dev().create_mirror(page);
    auto second = dev().create_mirror(page);
    auto k = build(usm::kernels::test_vk_pack_comp);
    const std::uint32_t a = 0xA1A2A3A4u;
    const std::uint64_t b = 0x0102030405060708ull;  // 8-byte aligned: 4 bytes of padding before it
    const float c = -1.5f;
    const bound_arg args[] = {memory(*out, 16, 16, access::write), value(a), value(b), value(c),
                              memory(*second, 8, 4, access::write)};
    const sync_point done[] = {dev().launch(*k, {1, 1, 1}, {1, 1, 1}, args, {})};
    std::uint32_t c_bits = 0;
    std::memcpy(&c_bits, &c, 4);
    EXPECT_EQ(download_values<std::uint32_t>(dev(), *out, 16, 4, done),
              (std::vector<std::uint32_t>{a, 0x05060708u, 0x01020304u, c_bits}));
    EXPECT_EQ(download_values<std::uint32_t>(dev(), *second, 8, 1)[0], 0xC0FFEEu);
}

TEST_F(vulkan_backend, a_literal_local_size_must_match_the_launch_group) {
    auto k = build(usm::kernels::test_vk_literal_comp);
    const std::uint32_t n = 1000;
    auto m = dev().create_mirror(page);
    const bound_arg args[] = {memory(*m, 0, n * word, access::write), value(n)};
    const sync_point done[] = {dev().launch(*k, {groups_for(n, 64), 1, 1}, {64, 1, 1}, args, {})};
    const auto values = download_values<std::uint32_t>(dev(), *m, 0, n, done);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(values[i], 7 * i + 1) << i;
    const usm::error e = expect_error([&] { dev().launch(*k, {32, 1, 1}, {32, 1, 1}, args, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "64 x 1 x 1"));
    EXPECT_EQ(expect_error([&] { dev().launch(*k, {16, 1, 1}, {64, 2, 1}, args, {}); }).kind(), errc::invalid_argument);
}

TEST_F(vulkan_backend, an_argument_larger_than_max_storage_buffer_range_works) {
    // 160 MiB: above lavapipe's 128 MiB maxStorageBufferRange. A device
    // address needs no descriptor range, so the kernel reaches the end.
    const std::size_t bytes = 160 * MiB;
    const std::uint32_t count = 4096;
    const auto elements = static_cast<std::uint32_t>(bytes / word);
    const std::uint32_t first = elements - count;
    auto m = dev().create_mirror(bytes);
    std::vector<std::uint32_t> data(elements);
    for (std::uint32_t i = 0; i < elements; ++i) data[i] = i ^ 0x5a5a5a5au;
    const sync_point uploaded[] = {upload_values(dev(), *m, 0, data)};  // several submissions' worth
    auto k = build(usm::kernels::test_vk_tail_comp);
    const bound_arg args[] = {memory(*m, 0, bytes, access::read_write), value(first), value(count)};
    const sync_point done[] = {dev().launch(*k, {groups_for(count, 128), 1, 1}, {128, 1, 1}, args, uploaded)};
    const auto tail = download_values<std::uint32_t>(dev(), *m, (first - 16) * word, count + 16, done);
    for (std::uint32_t i = 0; i < 16; ++i) ASSERT_EQ(tail[i], data[first - 16 + i]) << "untouched element " << i;
    for (std::uint32_t i = 0; i < count; ++i)
        ASSERT_EQ(tail[16 + i], data[first + i] * 3u + (first + i)) << "element " << first + i;
    EXPECT_EQ(download_values<std::uint32_t>(dev(), *m, 0, 4),
              std::vector<std::uint32_t>(data.begin(), data.begin() + 4));
}

TEST_F(vulkan_backend, geometry_beyond_the_compute_limits_is_refused_naming_them) {
    auto k = build(usm::kernels::saxpy_comp);
    auto m = dev().create_mirror(page);
    const float a = 1.0f;
    const std::uint32_t n = 1024;
    const bound_arg args[] = {memory(*m, 0, page, access::read), memory(*m, 0, page, access::read_write), value(a),
                              value(n)};
    usm::error e = expect_error([&] { dev().launch(*k, {0xffffffffu, 1, 1}, {64, 1, 1}, args, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "maxComputeWorkGroupCount"));
    e = expect_error([&] { dev().launch(*k, {1, 1, 1}, {1u << 20, 1, 1}, args, {}); });
    EXPECT_TRUE(contains(e.what(), "maxComputeWorkGroupSize"));
    // Each dimension within maxComputeWorkGroupSize, but 2048 invocations.
    auto heat = build(usm::kernels::heat2d_comp);
    e = expect_error([&] { dev().launch(*heat, {1, 1, 1}, {32, 64, 1}, args, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "maxComputeWorkGroupInvocations"));
}

TEST_F(vulkan_backend, arguments_past_max_push_constants_size_are_refused) {
    auto k = build(usm::kernels::saxpy_comp);
    auto m = dev().create_mirror(page);
    struct big {
        std::uint32_t words[1100];
    };
    const big huge{};
    const bound_arg one_huge_value[] = {value(huge)};
    const usm::error e = expect_error([&] { dev().launch(*k, {1, 1, 1}, {64, 1, 1}, one_huge_value, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "maxPushConstantsSize"));
    // 600 pointers: 4800 bytes, more than any device's block.
    const std::vector<bound_arg> pointers(600, memory(*m, 0, page, access::read));
    EXPECT_EQ(expect_error([&] {
                  dev().launch(*k, {1, 1, 1}, {64, 1, 1}, pointers, {});
              }).kind(),
              errc::invalid_argument);
}

/* --- SPIR-V ------------------------------------------------------------------------------------ */

TEST_F(vulkan_backend, spirv_that_is_not_a_module_fails_the_build) {
    const std::vector<std::uint32_t> garbage(64, 0xdeadbeefu);
    EXPECT_EQ(expect_error([&] { build(garbage); }).kind(), errc::kernel_build_failed);
    const std::vector<std::uint32_t> short_header(usm::kernels::saxpy_comp.begin(),
                                                  usm::kernels::saxpy_comp.begin() + 3);
    EXPECT_EQ(expect_error([&] { build(short_header); }).kind(), errc::kernel_build_failed);
}

TEST_F(vulkan_backend, an_unknown_entry_point_lists_the_modules_with_their_models) {
    const usm::error e = expect_error([&] { dev().build_spirv(usm::kernels::saxpy_comp, "saxpy_main"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_TRUE(contains(e.what(), "'main' (GLCompute)"));
}

/* --- imports ----------------------------------------------------------------------------------- */

TEST_F(vulkan_backend, imports_must_be_multiples_of_min_imported_host_pointer_alignment) {
    if (!dev().properties().host_memory_in_place) {
        // No VK_EXT_external_memory_host: every import is refused.
        aligned_memory mapping(64 * KiB);
        EXPECT_EQ(expect_error([&] { dev().import_host(mapping.data(), 64 * KiB); }).kind(), errc::unsupported);
        EXPECT_FALSE(in_ci()) << "lavapipe offers VK_EXT_external_memory_host";
        return;
    }
    aligned_memory mapping(128 * KiB);
    std::byte* const misaligned = mapping.data() + 256;
    usm::error e = expect_error([&] { dev().import_host(misaligned, 64 * KiB); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), "minImportedHostPointerAlignment"));
    EXPECT_TRUE(contains(e.what(), "65536 bytes"));
    // The size too: a page-aligned address with a size that is not a multiple.
    e = expect_error([&] { dev().import_host(mapping.data(), 64 * KiB + 256); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), "65792 bytes"));
    e = expect_error([&] { dev().import_host(mapping.data(), dev().properties().max_allocation + page); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), "largest buffer"));
}

}  // namespace
}  // namespace usm_test::backend
