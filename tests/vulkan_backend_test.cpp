// tests/vulkan_backend_test.cpp - the Vulkan backend driven directly through
// the device contract (core/device_interface.hpp), as the core drives it:
// load_vulkan_driver -> candidates -> open -> create_mirror / upload /
// download / build_spirv / launch / reached / wait.
//
// The whole run has the Khronos validation layer on (USM_VK_VALIDATION=1 is
// set before the driver loads, unless the environment already sets it), and
// the global tear-down asserts that it reported no error.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <kernels/heat2d_comp.hpp>
#include <kernels/saxpy_comp.hpp>
#include <kernels/test_fill_comp.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_vk_literal_comp.hpp>
#include <kernels/test_vk_pack_comp.hpp>
#include <kernels/test_vk_tail_comp.hpp>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/vulkan/vulkan_backend.hpp"
#include "backends/vulkan/vulkan_debug.hpp"
#include "core/device_interface.hpp"
#include "usm/error.hpp"

namespace {

using namespace usm;
using namespace usm::detail;

constexpr std::size_t KiB = std::size_t(1) << 10;
constexpr std::size_t MiB = std::size_t(1) << 20;

/* --- one driver and device for the whole run ------------------------------------- */

std::shared_ptr<driver>& the_driver() {
    static std::shared_ptr<driver> instance;
    return instance;
}

std::unique_ptr<device_backend>& the_device() {
    static std::unique_ptr<device_backend> instance;
    return instance;
}

std::string& load_failure() {
    static std::string why;
    return why;
}

std::size_t first_usable(const driver& d) {
    const auto& list = d.candidates();
    for (std::size_t i = 0; i < list.size(); ++i)
        if (list[i].rejected_because.empty()) return i;
    return list.size();
}

class vulkan_environment : public ::testing::Environment {
public:
    void SetUp() override {
        // Before the instance exists: the layer is chosen at vkCreateInstance.
        ::setenv("USM_VK_VALIDATION", "1", 0);
        the_driver() = load_vulkan_driver(load_failure());
        if (!the_driver()) return;
        const std::size_t index = first_usable(*the_driver());
        // These tests are about the transfer queue: no CPU copies on this
        // device (CpuCopies below opens one with them).
        const bool preset = std::getenv("USM_CPU_COPY_MAX") != nullptr;
        if (!preset) ::setenv("USM_CPU_COPY_MAX", "0", 1);
        if (index < the_driver()->candidates().size()) the_device() = the_driver()->open(index);
        if (!preset) ::unsetenv("USM_CPU_COPY_MAX");
    }
    void TearDown() override {
        // Destroy everything first, so the layer also checks destruction.
        the_device().reset();
        the_driver().reset();
        EXPECT_EQ(vulkan_validation_errors(), 0u) << "the Vulkan validation layer reported errors (see the log)";
    }
};

[[maybe_unused]] ::testing::Environment* const registered_environment =
    ::testing::AddGlobalTestEnvironment(new vulkan_environment);

/* --- helpers ---------------------------------------------------------------------------- */

class VulkanBackend : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(the_driver()) << "no Vulkan driver: " << load_failure();
        ASSERT_TRUE(the_device()) << "no usable Vulkan device";
    }

    static device_backend& dev() { return *the_device(); }

    static std::unique_ptr<device_mirror> make_mirror(std::size_t bytes) { return dev().create_mirror(bytes); }

    template <class T>
    static sync_point put(device_mirror& m, std::size_t offset, const std::vector<T>& values,
                          std::span<const sync_point> wait_for = {}) {
        const upload_op op{&m, offset, reinterpret_cast<const std::byte*>(values.data()), values.size() * sizeof(T)};
        return dev().upload({&op, 1}, {}, wait_for);
    }

    template <class T>
    static std::vector<T> get(device_mirror& m, std::size_t offset, std::size_t count,
                              std::span<const sync_point> wait_for = {}) {
        std::vector<T> values(count);
        const download_op op{&m, offset, reinterpret_cast<std::byte*>(values.data()), count * sizeof(T)};
        dev().download({&op, 1}, wait_for);
        return values;
    }

    static std::unique_ptr<compiled_kernel> build(std::span<const std::uint32_t> words,
                                                  std::string_view entry = "main") {
        return dev().build_spirv(words, entry);
    }

    static bound_arg memory(device_mirror& m, std::size_t offset, std::size_t bytes, usm::access mode) {
        bound_arg a;
        a.what = launch_arg::kind::memory;
        a.mirror = &m;
        a.offset = offset;
        a.bytes = bytes;
        a.mode = mode;
        return a;
    }

    // `v` must outlive the launch call.
    template <class T>
    static bound_arg value(const T& v) {
        bound_arg a;
        a.what = launch_arg::kind::value;
        a.value = &v;
        a.size = sizeof(T);
        a.align = alignof(T);
        return a;
    }

    static std::uint32_t groups_for(std::size_t items, std::uint32_t group) {
        return static_cast<std::uint32_t>((items + group - 1) / group);
    }
};

template <class F>
errc error_kind(F&& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const usm::error& e) {
        if (message != nullptr) *message = e.what();
        return e.kind();
    }
    ADD_FAILURE() << "expected a usm::error";
    return errc{};
}

std::vector<std::byte> random_bytes(std::mt19937& rng, std::size_t n) {
    std::vector<std::byte> bytes(n);
    for (auto& b : bytes) b = static_cast<std::byte>(rng() & 0xff);
    return bytes;
}

/// [offset, offset + length) segments covering [0, total), of random lengths
/// (1 byte to `max_len`), in order.
std::vector<std::pair<std::size_t, std::size_t>> random_partition(std::mt19937& rng, std::size_t total,
                                                                  std::size_t max_len) {
    std::vector<std::pair<std::size_t, std::size_t>> parts;
    std::uniform_int_distribution<std::size_t> len(1, max_len);
    for (std::size_t at = 0; at < total;) {
        const std::size_t n = std::min(len(rng), total - at);
        parts.emplace_back(at, n);
        at += n;
    }
    return parts;
}

/* --- driver and device ---------------------------------------------------------------------- */

TEST_F(VulkanBackend, DriverListsAUsableDevice) {
    const auto& list = the_driver()->candidates();
    ASSERT_FALSE(list.empty());
    for (const auto& c : list) EXPECT_FALSE(c.name.empty());
    EXPECT_LT(first_usable(*the_driver()), list.size());
    EXPECT_EQ(error_kind([] { the_driver()->open(the_driver()->candidates().size()); }), errc::invalid_argument);
}

TEST_F(VulkanBackend, PropertiesDescribeTheDevice) {
    const device_properties& p = dev().properties();
    EXPECT_FALSE(p.name.empty());
    EXPECT_EQ(p.backend, usm::backend::vulkan);
    EXPECT_FALSE(p.driver.empty());
    EXPECT_GT(p.memory_bytes, 0u);
    EXPECT_GE(p.max_allocation, 160 * MiB);
    if (p.name.find("llvmpipe") != std::string::npos) {
        // lavapipe: CPU memory, one queue.
        EXPECT_TRUE(p.host_addressable);
        EXPECT_FALSE(p.dedicated_transfer_queue);
        EXPECT_NE(p.driver.find("Mesa"), std::string::npos) << p.driver;
    }
}

TEST_F(VulkanBackend, ValidationLayerIsActive) {
    const char* setting = std::getenv("USM_VK_VALIDATION");
    if (setting == nullptr || std::strcmp(setting, "0") == 0) GTEST_SKIP() << "USM_VK_VALIDATION=0";
    if (!std::filesystem::exists("/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json") &&
        !vulkan_validation_active())
        GTEST_SKIP() << "VK_LAYER_KHRONOS_validation is not installed";
    EXPECT_TRUE(vulkan_validation_active());
}

/* --- mirrors and transfers --------------------------------------------------------------------- */

TEST_F(VulkanBackend, UploadThenDownloadRoundTripsBytes) {
    std::mt19937 rng(1234);
    const std::size_t sizes[] = {64 * KiB, 1 * MiB + 12 * KiB, 12 * KiB};
    std::vector<std::unique_ptr<device_mirror>> mirrors;
    std::vector<std::vector<std::byte>> model;
    for (std::size_t s : sizes) {
        mirrors.push_back(make_mirror(s));
        model.emplace_back(s);
    }

    for (int round = 0; round < 6; ++round) {
        // One batch: runs of every mirror (all of them in round 0, a random
        // half later), shuffled, with sources that differ each round.
        std::vector<std::vector<std::byte>> sources;
        std::vector<upload_op> ops;
        sources.reserve(4096);
        for (std::size_t m = 0; m < mirrors.size(); ++m) {
            for (auto [offset, length] : random_partition(rng, sizes[m], 9000)) {
                if (round > 0 && rng() % 2 == 0) continue;
                sources.push_back(random_bytes(rng, length));
                std::memcpy(model[m].data() + offset, sources.back().data(), length);
                ops.push_back({mirrors[m].get(), offset, sources.back().data(), length});
            }
        }
        std::shuffle(ops.begin(), ops.end(), rng);
        const sync_point uploaded = dev().upload(ops, {}, {});
        EXPECT_FALSE(uploaded.empty());

        // Download along a different partition, also in one batch.
        std::vector<std::vector<std::byte>> back(mirrors.size());
        std::vector<download_op> reads;
        for (std::size_t m = 0; m < mirrors.size(); ++m) {
            back[m].assign(sizes[m], std::byte{0x5a});
            for (auto [offset, length] : random_partition(rng, sizes[m], 20000))
                reads.push_back({mirrors[m].get(), offset, back[m].data() + offset, length});
        }
        std::shuffle(reads.begin(), reads.end(), rng);
        const sync_point waits[] = {uploaded};
        dev().download(reads, waits);
        for (std::size_t m = 0; m < mirrors.size(); ++m)
            ASSERT_EQ(std::memcmp(back[m].data(), model[m].data(), sizes[m]), 0)
                << "round " << round << " mirror " << m;
    }
}

TEST_F(VulkanBackend, CpuCopiesOnACpuDeviceSkipTheQueueAndStayOrderedWithIt) {
    // A second device with CPU copies up to 256 KiB, as on lavapipe by default.
    ::setenv("USM_CPU_COPY_MAX", "256K", 1);
    std::unique_ptr<device_backend> cpu = the_driver()->open(first_usable(*the_driver()));
    ::unsetenv("USM_CPU_COPY_MAX");
    if (cpu->properties().cpu_copy_max == 0) GTEST_SKIP() << "not a CPU device: its mirrors are not mapped";
    EXPECT_EQ(cpu->properties().cpu_copy_max, 256 * KiB);

    std::mt19937 rng(77);
    const std::size_t size = 1 * MiB;
    std::unique_ptr<device_mirror> m = cpu->create_mirror(size);
    std::vector<std::byte> model(size, std::byte{0});

    // Small batches (copies and a fill) land at once: no queue point.
    std::vector<std::vector<std::byte>> sources;
    std::vector<upload_op> ops;
    for (auto [offset, length] : random_partition(rng, 128 * KiB, 5000)) {
        sources.push_back(random_bytes(rng, length));
        std::memcpy(model.data() + offset, sources.back().data(), length);
        ops.push_back({m.get(), offset, sources.back().data(), length});
    }
    const fill_op zero{m.get(), 130 * KiB + 3, 10 * KiB};
    std::memset(model.data() + zero.offset, 0, zero.bytes);
    EXPECT_TRUE(cpu->upload(ops, {&zero, 1}, {}).empty()) << "a 138 KiB batch went through the queue";

    // A large batch goes through the queue; a small download right after it
    // must wait for it (it comes after earlier transfers).
    sources.push_back(random_bytes(rng, 512 * KiB));
    std::memcpy(model.data() + 512 * KiB, sources.back().data(), 512 * KiB);
    const upload_op big{m.get(), 512 * KiB, sources.back().data(), 512 * KiB};
    EXPECT_FALSE(cpu->upload({&big, 1}, {}, {}).empty()) << "a 512 KiB batch skipped the queue";
    std::vector<std::byte> back(size, std::byte{0x5a});
    const download_op tail{m.get(), 1 * MiB - 64 * KiB, back.data() + (1 * MiB - 64 * KiB), 64 * KiB};
    cpu->download({&tail, 1}, {});
    EXPECT_EQ(std::memcmp(back.data() + tail.offset, model.data() + tail.offset, tail.bytes), 0);

    // The whole mirror back, through the queue (1 MiB) and in 4 KiB CPU reads.
    const download_op all{m.get(), 0, back.data(), size};
    cpu->download({&all, 1}, {});
    ASSERT_EQ(std::memcmp(back.data(), model.data(), size), 0);
    std::vector<std::byte> pages(size, std::byte{0x5a});
    for (std::size_t offset = 0; offset < size; offset += 4 * KiB) {
        const download_op one{m.get(), offset, pages.data() + offset, 4 * KiB};
        cpu->download({&one, 1}, {});
    }
    ASSERT_EQ(std::memcmp(pages.data(), model.data(), size), 0);

    // Bad ops are refused the same way on this path.
    const upload_op past{m.get(), size - 8, sources.front().data(), 16};
    EXPECT_THROW(cpu->upload({&past, 1}, {}, {}), usm::error);
}

TEST_F(VulkanBackend, AdjacentPagesCoalesceAndLargeBatchesSplit) {
    // 96 MiB in 4 KiB ops listed backwards: sorted and coalesced, and more
    // than one submission's worth of staging.
    const std::size_t bytes = 96 * MiB;
    auto m = make_mirror(bytes);
    std::vector<std::uint32_t> data(bytes / 4);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint32_t>(i * 2654435761u);
    std::vector<upload_op> ops;
    for (std::size_t page = bytes / (4 * KiB); page-- > 0;)
        ops.push_back(
            {m.get(), page * 4 * KiB, reinterpret_cast<const std::byte*>(data.data()) + page * 4 * KiB, 4 * KiB});
    const sync_point p = dev().upload(ops, {}, {});
    dev().wait(p);
    EXPECT_TRUE(dev().reached(p));
    const auto back = get<std::uint32_t>(*m, 0, data.size());
    EXPECT_TRUE(back == data);
}

TEST_F(VulkanBackend, TransfersLargerThanTheStagingCapRecycleStaging) {
    // 272 MiB each way: more than the staging pool may ever hold (256 MiB),
    // so both directions must wait for chunks in flight and reuse them.
    const std::size_t bytes = 272 * MiB;
    auto m = make_mirror(bytes);
    std::vector<std::uint64_t> data(bytes / 8);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = i * 0x9E3779B97F4A7C15ull;
    const sync_point uploaded = put(*m, 0, data);
    const sync_point waits[] = {uploaded};
    const auto back = get<std::uint64_t>(*m, 0, data.size(), waits);
    EXPECT_TRUE(back == data);
}

TEST_F(VulkanBackend, FillZeroClearsExactlyTheFilledBytes) {
    const std::size_t bytes = 64 * KiB;
    auto m = make_mirror(bytes);
    const std::vector<std::uint8_t> pattern(bytes, 0xab);
    const sync_point written = put(*m, 0, pattern);

    // Aligned, ragged on both ends, tiny, and a copy in the same batch.
    const fill_op fills[] = {{m.get(), 4096, 8192}, {m.get(), 20001, 5003}, {m.get(), 30001, 2}, {m.get(), 65535, 1}};
    const std::vector<std::uint8_t> copy(100, 0x11);
    const upload_op copies[] = {{m.get(), 40000, reinterpret_cast<const std::byte*>(copy.data()), copy.size()}};
    const sync_point waits[] = {written};
    const sync_point filled = dev().upload(copies, fills, waits);

    std::vector<std::uint8_t> expected = pattern;
    for (const fill_op& f : fills) std::fill_n(expected.begin() + static_cast<std::ptrdiff_t>(f.offset), f.bytes, 0);
    std::copy(copy.begin(), copy.end(), expected.begin() + 40000);
    const sync_point filled_waits[] = {filled};
    EXPECT_TRUE(get<std::uint8_t>(*m, 0, bytes, filled_waits) == expected);

    // A batch of fills alone.
    const fill_op all[] = {{m.get(), 0, bytes}};
    const sync_point cleared = dev().upload({}, all, {});
    const sync_point cleared_waits[] = {cleared};
    EXPECT_TRUE(get<std::uint8_t>(*m, 0, bytes, cleared_waits) == std::vector<std::uint8_t>(bytes, 0));
}

TEST_F(VulkanBackend, TransfersRejectBadOps) {
    auto m = make_mirror(8 * KiB);
    std::vector<std::byte> bytes(8 * KiB);
    const upload_op past_end[] = {{m.get(), 4 * KiB, bytes.data(), 4 * KiB + 1}};
    EXPECT_EQ(error_kind([&] { dev().upload(past_end, {}, {}); }), errc::out_of_range);
    const upload_op overlapping[] = {{m.get(), 0, bytes.data(), 100}, {m.get(), 99, bytes.data(), 10}};
    EXPECT_EQ(error_kind([&] { dev().upload(overlapping, {}, {}); }), errc::invalid_argument);
    const upload_op no_mirror[] = {{nullptr, 0, bytes.data(), 4}};
    EXPECT_EQ(error_kind([&] { dev().upload(no_mirror, {}, {}); }), errc::invalid_argument);
    const download_op read_past_end[] = {{m.get(), 8 * KiB, bytes.data(), 1}};
    EXPECT_EQ(error_kind([&] { dev().download(read_past_end, {}); }), errc::out_of_range);
}

TEST_F(VulkanBackend, MirrorLargerThanTheDeviceAllowsIsAnErrorNotAnAbort) {
    const std::uint64_t max = dev().properties().max_allocation;
    std::string message;
    EXPECT_EQ(error_kind([&] { make_mirror(static_cast<std::size_t>(max) + 4096); }, &message), errc::unsupported);
    EXPECT_NE(message.find("maxMemoryAllocationSize"), std::string::npos) << message;
    EXPECT_NE(message.find(dev().properties().name), std::string::npos) << message;
    EXPECT_EQ(error_kind([&] { make_mirror(std::size_t(1) << 50); }), errc::unsupported);
    EXPECT_EQ(error_kind([&] { make_mirror(0); }), errc::invalid_argument);
    // The device still works.
    auto m = make_mirror(4096);
    const std::vector<std::uint32_t> values = {1, 2, 3};
    const sync_point p = put(*m, 0, values);
    const sync_point waits[] = {p};
    EXPECT_EQ(get<std::uint32_t>(*m, 0, 3, waits), values);
}

/* --- kernels ------------------------------------------------------------------------------------- */

TEST_F(VulkanBackend, SaxpyOnPointersIntoTheMiddleOfMirrorsIsBitExact) {
    const std::uint32_t n = 10007;
    const std::size_t x_offset = 4096 + 12;  // inside a page, 4-byte aligned
    const std::size_t y_offset = 8192;
    auto xm = make_mirror(64 * KiB);
    auto ym = make_mirror(64 * KiB);
    std::vector<float> x(n), y(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(i % 1000) - 500.0f;
        y[i] = static_cast<float>(i % 77) * 0.25f;
    }
    // Guards around y's range: the kernel must not touch them.
    const std::vector<float> guard(256, -7.0f);
    const upload_op ops[] = {
        {xm.get(), x_offset, reinterpret_cast<const std::byte*>(x.data()), n * sizeof(float)},
        {ym.get(), y_offset, reinterpret_cast<const std::byte*>(y.data()), n * sizeof(float)},
        {ym.get(), y_offset - guard.size() * sizeof(float), reinterpret_cast<const std::byte*>(guard.data()),
         guard.size() * sizeof(float)},
        {ym.get(), y_offset + n * sizeof(float), reinterpret_cast<const std::byte*>(guard.data()),
         guard.size() * sizeof(float)},
    };
    const sync_point uploaded = dev().upload(ops, {}, {});

    auto k = build(usm::kernels::saxpy_comp);
    const float a = 2.5f;
    const bound_arg args[] = {memory(*xm, x_offset, n * sizeof(float), usm::access::read),
                              memory(*ym, y_offset, n * sizeof(float), usm::access::read_write), value(a), value(n)};
    const sync_point waits[] = {uploaded};
    const sync_point done = dev().launch(*k, {groups_for(n, 256), 1, 1}, {256, 1, 1}, args, waits);
    EXPECT_EQ(done.queue, 0u);

    std::vector<float> expected(n);
    for (std::uint32_t i = 0; i < n; ++i) expected[i] = a * x[i] + y[i];  // exact: few significant bits
    const sync_point done_waits[] = {done};
    const auto result = get<float>(*ym, y_offset, n, done_waits);
    EXPECT_EQ(std::memcmp(result.data(), expected.data(), n * sizeof(float)), 0);
    EXPECT_EQ(get<float>(*ym, y_offset - guard.size() * sizeof(float), guard.size()), guard);
    EXPECT_EQ(get<float>(*ym, y_offset + n * sizeof(float), guard.size()), guard);
}

TEST_F(VulkanBackend, LaunchWaitsForItsUpload) {
    // A large upload right before the launch that needs it; only wait_for
    // orders them.
    const std::uint32_t n = 8 * MiB / sizeof(float);
    auto xm = make_mirror(n * sizeof(float));
    auto ym = make_mirror(n * sizeof(float));
    const sync_point cleared = dev().upload({}, std::vector<fill_op>{{ym.get(), 0, n * sizeof(float)}}, {});
    std::vector<float> x(n);
    for (std::uint32_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 4096);
    const sync_point uploaded = put(*xm, 0, x);

    auto k = build(usm::kernels::saxpy_comp);
    const float a = 3.0f;
    const bound_arg args[] = {memory(*xm, 0, n * sizeof(float), usm::access::read),
                              memory(*ym, 0, n * sizeof(float), usm::access::read_write), value(a), value(n)};
    const sync_point waits[] = {uploaded, cleared};
    const sync_point done = dev().launch(*k, {groups_for(n, 256), 1, 1}, {256, 1, 1}, args, waits);
    dev().wait(done);
    EXPECT_TRUE(dev().reached(done));
    const auto y = get<float>(*ym, 0, n);
    for (std::uint32_t i = 0; i < n; i += 997) ASSERT_EQ(y[i], 3.0f * static_cast<float>(i % 4096)) << i;
    EXPECT_EQ(y[n - 1], 3.0f * static_cast<float>((n - 1) % 4096));
}

TEST_F(VulkanBackend, LaunchesSeeTheWritesOfEarlierLaunches) {
    const std::uint32_t n = 4096;
    auto xm = make_mirror(n * sizeof(float));
    auto ym = make_mirror(n * sizeof(float));
    std::vector<float> x(n), y(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(i % 13);
        y[i] = static_cast<float>(i % 5);
    }
    const upload_op ops[] = {{xm.get(), 0, reinterpret_cast<const std::byte*>(x.data()), n * sizeof(float)},
                             {ym.get(), 0, reinterpret_cast<const std::byte*>(y.data()), n * sizeof(float)}};
    const sync_point uploaded = dev().upload(ops, {}, {});
    auto k = build(usm::kernels::saxpy_comp);
    const float a = 1.0f;
    const bound_arg args[] = {memory(*xm, 0, n * sizeof(float), usm::access::read),
                              memory(*ym, 0, n * sizeof(float), usm::access::read_write), value(a), value(n)};
    const int launches = 25;
    sync_point last{};
    for (int i = 0; i < launches; ++i) {
        // Only the first waits for anything: the rest rely on the contract's
        // "after every earlier launch on this device".
        const sync_point waits[] = {uploaded};
        last = dev().launch(*k, {groups_for(n, 64), 1, 1}, {64, 1, 1}, args,
                            i == 0 ? std::span<const sync_point>(waits) : std::span<const sync_point>());
    }
    const sync_point waits[] = {last};
    const auto result = get<float>(*ym, 0, n, waits);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(result[i], y[i] + launches * x[i]) << i;
}

TEST_F(VulkanBackend, ArgumentLargerThanMaxStorageBufferRangeWorks) {
    // 160 MiB: above lavapipe's 128 MiB maxStorageBufferRange. A device
    // address needs no descriptor range, so the kernel reaches the end.
    const std::size_t bytes = 160 * MiB;
    const std::uint32_t count = 4096;
    const std::uint32_t elements = static_cast<std::uint32_t>(bytes / 4);
    const std::uint32_t first = elements - count;
    auto m = make_mirror(bytes);
    std::vector<std::uint32_t> data(elements);
    for (std::uint32_t i = 0; i < elements; ++i) data[i] = i ^ 0x5a5a5a5au;
    const sync_point uploaded = put(*m, 0, data);  // several submissions' worth

    auto k = build(usm::kernels::test_vk_tail_comp);
    const bound_arg args[] = {memory(*m, 0, bytes, usm::access::read_write), value(first), value(count)};
    const sync_point waits[] = {uploaded};
    const sync_point done = dev().launch(*k, {groups_for(count, 128), 1, 1}, {128, 1, 1}, args, waits);

    const sync_point done_waits[] = {done};
    const auto tail = get<std::uint32_t>(*m, (first - 16) * sizeof(std::uint32_t), count + 16, done_waits);
    for (std::uint32_t i = 0; i < 16; ++i) ASSERT_EQ(tail[i], data[first - 16 + i]) << "untouched element " << i;
    for (std::uint32_t i = 0; i < count; ++i)
        ASSERT_EQ(tail[16 + i], data[first + i] * 3u + (first + i)) << "element " << first + i;
    EXPECT_EQ(get<std::uint32_t>(*m, 0, 4), std::vector<std::uint32_t>(data.begin(), data.begin() + 4));
}

TEST_F(VulkanBackend, Heat2dMatchesTheCpuReference) {
    const std::uint32_t n = 67;  // not a multiple of the 16 x 16 group
    const float alpha = 0.125f;
    const std::size_t cells = std::size_t(n) * n;
    std::vector<float> grid(cells);
    for (std::uint32_t i = 0; i < cells; ++i) grid[i] = static_cast<float>((i * 7) % 16);
    const auto step = [&](const std::vector<float>& in) {
        std::vector<float> out(in);
        for (std::uint32_t r = 1; r + 1 < n; ++r)
            for (std::uint32_t c = 1; c + 1 < n; ++c) {
                const std::uint32_t k = r * n + c;
                const float sum = in[k - n] + in[k + n] + in[k - 1] + in[k + 1];
                out[k] = in[k] + alpha * (sum - 4.0f * in[k]);
            }
        return out;
    };

    const std::size_t bytes = cells * sizeof(float);
    auto a = make_mirror((bytes + 4095) / 4096 * 4096);
    auto b = make_mirror((bytes + 4095) / 4096 * 4096);
    const sync_point uploaded = put(*a, 0, grid);
    auto k = build(usm::kernels::heat2d_comp);
    const dims groups{groups_for(n, 16), groups_for(n, 16), 1};
    const bound_arg forward[] = {memory(*a, 0, bytes, usm::access::read), memory(*b, 0, bytes, usm::access::write),
                                 value(n), value(alpha)};
    const bound_arg backward[] = {memory(*b, 0, bytes, usm::access::read), memory(*a, 0, bytes, usm::access::write),
                                  value(n), value(alpha)};
    const sync_point waits[] = {uploaded};
    dev().launch(*k, groups, {16, 16, 1}, forward, waits);
    const sync_point second = dev().launch(*k, groups, {16, 16, 1}, backward, {});  // reads the first's output

    const auto one = step(grid);
    const auto two = step(one);
    const sync_point second_waits[] = {second};
    const auto got_one = get<float>(*b, 0, cells, second_waits);
    const auto got_two = get<float>(*a, 0, cells);
    EXPECT_EQ(std::memcmp(got_one.data(), one.data(), bytes), 0);
    EXPECT_EQ(std::memcmp(got_two.data(), two.data(), bytes), 0);
}

TEST_F(VulkanBackend, PushConstantsFollowTheArgumentConvention) {
    auto out = make_mirror(4096);
    auto second = make_mirror(4096);
    auto k = build(usm::kernels::test_vk_pack_comp);
    const std::uint32_t a = 0xA1A2A3A4u;
    const std::uint64_t b = 0x0102030405060708ull;  // 8-byte aligned: 4 bytes of padding before it
    const float c = -1.5f;
    const bound_arg args[] = {memory(*out, 16, 16, usm::access::write), value(a), value(b), value(c),
                              memory(*second, 8, 4, usm::access::write)};
    const sync_point done = dev().launch(*k, {1, 1, 1}, {1, 1, 1}, args, {});
    const sync_point waits[] = {done};
    const auto echoed = get<std::uint32_t>(*out, 16, 4, waits);
    std::uint32_t c_bits = 0;
    std::memcpy(&c_bits, &c, 4);
    EXPECT_EQ(echoed, (std::vector<std::uint32_t>{a, 0x05060708u, 0x01020304u, c_bits}));
    EXPECT_EQ(get<std::uint32_t>(*second, 8, 1)[0], 0xC0FFEEu);
}

TEST_F(VulkanBackend, LiteralLocalSizeMustMatchTheLaunchGroup) {
    auto k = build(usm::kernels::test_vk_literal_comp);
    const std::uint32_t n = 1000;
    auto m = make_mirror(4096);
    const bound_arg args[] = {memory(*m, 0, n * 4, usm::access::write), value(n)};
    const sync_point done = dev().launch(*k, {groups_for(n, 64), 1, 1}, {64, 1, 1}, args, {});
    const sync_point waits[] = {done};
    const auto values = get<std::uint32_t>(*m, 0, n, waits);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(values[i], 7 * i + 1) << i;

    std::string message;
    EXPECT_EQ(error_kind(
                  [&] {
                      dev().launch(*k, {32, 1, 1}, {32, 1, 1}, args, {});
                  },
                  &message),
              errc::invalid_argument);
    EXPECT_NE(message.find("64 x 1 x 1"), std::string::npos) << message;
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {16, 1, 1}, {64, 2, 1}, args, {}); }), errc::invalid_argument);
}

TEST_F(VulkanBackend, LaunchRejectsBadGeometryAndArguments) {
    auto k = build(usm::kernels::saxpy_comp);
    auto m = make_mirror(4096);
    const float a = 1.0f;
    const std::uint32_t n = 1024;
    const bound_arg args[] = {memory(*m, 0, 4096, usm::access::read), memory(*m, 0, 4096, usm::access::read_write),
                              value(a), value(n)};
    std::string message;
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {0, 1, 1}, {64, 1, 1}, args, {}); }), errc::invalid_argument);
    EXPECT_EQ(error_kind(
                  [&] {
                      dev().launch(*k, {0xffffffffu, 1, 1}, {64, 1, 1}, args, {});
                  },
                  &message),
              errc::invalid_argument);
    EXPECT_NE(message.find("maxComputeWorkGroupCount"), std::string::npos) << message;
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {1, 1, 1}, {0, 1, 1}, args, {}); }), errc::invalid_argument);
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {1, 1, 1}, {1u << 20, 1, 1}, args, {}); }), errc::invalid_argument);
    // Each dimension within maxComputeWorkGroupSize, but 2048 invocations.
    auto heat = build(usm::kernels::heat2d_comp);
    EXPECT_EQ(error_kind(
                  [&] {
                      dev().launch(*heat, {1, 1, 1}, {32, 64, 1}, args, {});
                  },
                  &message),
              errc::invalid_argument);
    EXPECT_NE(message.find("maxComputeWorkGroupInvocations"), std::string::npos) << message;

    const bound_arg past_end[] = {memory(*m, 4000, 100, usm::access::read),
                                  memory(*m, 0, 4096, usm::access::read_write), value(a), value(n)};
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {1, 1, 1}, {64, 1, 1}, past_end, {}); }), errc::out_of_range);
}

TEST_F(VulkanBackend, TooManyPushConstantBytesIsInvalidArgument) {
    auto k = build(usm::kernels::saxpy_comp);
    auto m = make_mirror(4096);
    struct big {
        std::uint32_t words[1100];
    };
    const big huge{};
    const bound_arg one_huge_value[] = {value(huge)};
    std::string message;
    EXPECT_EQ(error_kind(
                  [&] {
                      dev().launch(*k, {1, 1, 1}, {64, 1, 1}, one_huge_value, {});
                  },
                  &message),
              errc::invalid_argument);
    EXPECT_NE(message.find("maxPushConstantsSize"), std::string::npos) << message;
    // 600 pointers: 4800 bytes, more than any device's block.
    const std::vector<bound_arg> pointers(600, memory(*m, 0, 4096, usm::access::read));
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {1, 1, 1}, {64, 1, 1}, pointers, {}); }), errc::invalid_argument);
}

/* --- host memory in place (import_host) ------------------------------------------------------------------ */

/// `bytes` of a memfd mapped twice MAP_SHARED, the way usm maps an
/// allocation and its alias: `view` is imported, `alias` sees the same pages.
class shared_mapping {
public:
    explicit shared_mapping(std::size_t bytes) : m_bytes(bytes) {
        m_fd = ::memfd_create("usm-import-test", MFD_CLOEXEC);
        if (m_fd < 0 || ::ftruncate(m_fd, static_cast<off_t>(bytes)) != 0) return;
        m_view = map();
        m_alias = map();
    }
    ~shared_mapping() {
        if (m_view != nullptr) ::munmap(m_view, m_bytes);
        if (m_alias != nullptr) ::munmap(m_alias, m_bytes);
        if (m_fd >= 0) ::close(m_fd);
    }
    shared_mapping(const shared_mapping&) = delete;
    shared_mapping& operator=(const shared_mapping&) = delete;

    bool ok() const noexcept { return m_view != nullptr && m_alias != nullptr; }
    std::byte* view() const noexcept { return m_view; }
    std::uint32_t* alias_words() const noexcept { return reinterpret_cast<std::uint32_t*>(m_alias); }

private:
    std::byte* map() const {
        void* p = ::mmap(nullptr, m_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m_fd, 0);
        return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
    }

    std::size_t m_bytes;
    int m_fd = -1;
    std::byte* m_view = nullptr;
    std::byte* m_alias = nullptr;
};

/// `bytes` of private anonymous memory at a 64 KiB boundary (at least any
/// minImportedHostPointerAlignment seen in practice).
class anonymous_mapping {
public:
    static constexpr std::size_t align = 64 * KiB;
    explicit anonymous_mapping(std::size_t bytes) : m_length(bytes + align) {
        void* p = ::mmap(nullptr, m_length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return;
        m_region = p;
        const auto at = reinterpret_cast<std::uintptr_t>(p);
        m_data = reinterpret_cast<std::byte*>((at + align - 1) / align * align);
    }
    ~anonymous_mapping() {
        if (m_region != nullptr) ::munmap(m_region, m_length);
    }
    anonymous_mapping(const anonymous_mapping&) = delete;
    anonymous_mapping& operator=(const anonymous_mapping&) = delete;

    std::byte* data() const noexcept { return m_data; }
    template <class T>
    T* as() const noexcept {
        return reinterpret_cast<T*>(m_data);
    }

private:
    std::size_t m_length;
    void* m_region = nullptr;
    std::byte* m_data = nullptr;
};

class VulkanImport : public VulkanBackend {
protected:
    void SetUp() override {
        VulkanBackend::SetUp();
        if (!dev().properties().host_memory_in_place)
            GTEST_SKIP() << dev().properties().name << " cannot run kernels on host memory in place";
    }
};

TEST_F(VulkanBackend, HostMemoryInPlaceMatchesTheDevice) {
    const device_properties& p = dev().properties();
    if (p.name.find("llvmpipe") != std::string::npos) {
        // lavapipe offers VK_EXT_external_memory_host with a 4 KiB alignment.
        EXPECT_TRUE(p.host_memory_in_place);
    }
    if (!p.host_memory_in_place) {
        anonymous_mapping mapping(64 * KiB);
        EXPECT_EQ(error_kind([&] { dev().import_host(mapping.data(), 64 * KiB); }), errc::unsupported);
    }
}

TEST_F(VulkanImport, KernelsReadAndWriteASharedMappingInPlace) {
    const std::size_t bytes = 64 * KiB;
    const std::size_t words = bytes / 4;
    shared_mapping mapping(bytes);
    ASSERT_TRUE(mapping.ok()) << "memfd_create / mmap failed";
    std::uint32_t* alias = mapping.alias_words();
    for (std::size_t i = 0; i < words; ++i) alias[i] = static_cast<std::uint32_t>(i * 3);
    std::unique_ptr<device_mirror> imported = dev().import_host(mapping.view(), bytes);
    ASSERT_EQ(imported->bytes(), bytes);

    // x[i] += 1 over a range that starts inside page 1 and ends inside page 5.
    auto increment = build(usm::kernels::test_increment_comp);
    const std::size_t offset = 4096 + 8;
    const std::uint32_t n = 5000;
    const bound_arg args[] = {memory(*imported, offset, n * 4, usm::access::read_write), value(n)};
    std::vector<std::uint32_t> expected(alias, alias + words);
    for (int round = 0; round < 3; ++round) {
        // Host writes before the launch are what the kernel reads.
        for (std::size_t i = 0; i < words; i += 7) {
            alias[i] = static_cast<std::uint32_t>(i * 5 + round);
            expected[i] = alias[i];
        }
        const sync_point done = dev().launch(*increment, {groups_for(n, 64), 1, 1}, {64, 1, 1}, args, {});
        dev().wait(done);
        for (std::size_t i = offset / 4; i < offset / 4 + n; ++i) ++expected[i];
        // Both mappings show the kernel's writes, and nothing outside the range changed.
        ASSERT_EQ(std::memcmp(alias, expected.data(), bytes), 0) << "round " << round;
        ASSERT_EQ(std::memcmp(mapping.view(), expected.data(), bytes), 0) << "round " << round;
    }

    // A kernel that only writes, over the whole import.
    auto fill = build(usm::kernels::test_fill_comp);
    const std::uint32_t count = static_cast<std::uint32_t>(words);
    const std::uint32_t seed = 0x5eed;
    const bound_arg fill_args[] = {memory(*imported, 0, bytes, usm::access::write), value(count), value(seed)};
    dev().wait(dev().launch(*fill, {groups_for(words, 256), 1, 1}, {256, 1, 1}, fill_args, {}));
    for (std::uint32_t i = 0; i < count; ++i) ASSERT_EQ(alias[i], (i * 2654435761u) ^ seed) << i;
    imported.reset();

    // Pages in the middle of the mapping: only they change.
    const std::size_t first = 16 * KiB;
    const std::size_t middle = 32 * KiB;
    std::vector<std::uint32_t> before(alias, alias + words);
    std::unique_ptr<device_mirror> part = dev().import_host(mapping.view() + first, middle);
    const std::uint32_t part_words = static_cast<std::uint32_t>(middle / 4);
    const std::uint32_t part_seed = seed + 1;
    const bound_arg part_args[] = {memory(*part, 0, middle, usm::access::write), value(part_words), value(part_seed)};
    dev().wait(dev().launch(*fill, {groups_for(part_words, 256), 1, 1}, {256, 1, 1}, part_args, {}));
    for (std::uint32_t i = 0; i < part_words; ++i) before[first / 4 + i] = (i * 2654435761u) ^ part_seed;
    EXPECT_EQ(std::memcmp(alias, before.data(), bytes), 0);
    part.reset();  // before the mapping goes
}

TEST_F(VulkanImport, KernelsUseAnonymousMemoryBesideMirrors) {
    const std::uint32_t n = 3 * 4096;  // 48 KiB of floats
    const std::size_t bytes = n * sizeof(float);
    anonymous_mapping mapping(bytes);
    ASSERT_NE(mapping.data(), nullptr);
    float* y = mapping.as<float>();
    std::vector<float> x(n), expected(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(i % 100);
        y[i] = static_cast<float>(i % 9) * 0.5f;
        expected[i] = 2.0f * x[i] + y[i];
    }
    std::unique_ptr<device_mirror> imported = dev().import_host(mapping.data(), bytes);

    // x in an ordinary mirror, y in place: y = 2x + y straight into host memory.
    auto xm = make_mirror(bytes);
    const sync_point uploaded = put(*xm, 0, x);
    auto saxpy = build(usm::kernels::saxpy_comp);
    const float a = 2.0f;
    const bound_arg args[] = {memory(*xm, 0, bytes, usm::access::read),
                              memory(*imported, 0, bytes, usm::access::read_write), value(a), value(n)};
    const sync_point waits[] = {uploaded};
    dev().wait(dev().launch(*saxpy, {groups_for(n, 128), 1, 1}, {128, 1, 1}, args, waits));
    EXPECT_EQ(std::memcmp(y, expected.data(), bytes), 0);

    // The other way round: the import read, a mirror written and downloaded.
    auto ym = make_mirror(bytes);
    const sync_point cleared = dev().upload({}, std::vector<fill_op>{{ym.get(), 0, bytes}}, {});
    const bound_arg back[] = {memory(*imported, 0, bytes, usm::access::read),
                              memory(*ym, 0, bytes, usm::access::read_write), value(a), value(n)};
    const sync_point cleared_waits[] = {cleared};
    const sync_point done = dev().launch(*saxpy, {groups_for(n, 128), 1, 1}, {128, 1, 1}, back, cleared_waits);
    const sync_point done_waits[] = {done};
    const auto doubled = get<float>(*ym, 0, n, done_waits);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(doubled[i], 2.0f * expected[i]) << i;
    EXPECT_EQ(std::memcmp(y, expected.data(), bytes), 0) << "a read-only argument changed host memory";
    imported.reset();
}

TEST_F(VulkanImport, MisalignedOrEmptyImportsAreRefused) {
    anonymous_mapping mapping(128 * KiB);
    ASSERT_NE(mapping.data(), nullptr);
    std::string message;
    std::byte* const misaligned = mapping.data() + 256;
    EXPECT_EQ(error_kind([&] { dev().import_host(misaligned, 64 * KiB); }, &message), errc::unsupported);
    EXPECT_NE(message.find("minImportedHostPointerAlignment"), std::string::npos) << message;
    std::ostringstream address;
    address << static_cast<const void*>(misaligned);
    EXPECT_NE(message.find(address.str()), std::string::npos) << message;
    EXPECT_NE(message.find("65536 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find(dev().properties().name), std::string::npos) << message;

    EXPECT_EQ(error_kind([&] { dev().import_host(mapping.data(), 64 * KiB + 256); }, &message), errc::unsupported);
    EXPECT_NE(message.find("65792 bytes"), std::string::npos) << message;
    EXPECT_EQ(error_kind([&] { dev().import_host(mapping.data(), 0); }), errc::invalid_argument);
    EXPECT_EQ(error_kind([&] { dev().import_host(nullptr, 64 * KiB); }), errc::invalid_argument);
    // The device still imports an aligned range.
    EXPECT_EQ(dev().import_host(mapping.data(), 64 * KiB)->bytes(), 64 * KiB);
}

TEST_F(VulkanImport, TransfersRefuseImportedMemory) {
    const std::size_t bytes = 16 * KiB;
    anonymous_mapping mapping(bytes);
    ASSERT_NE(mapping.data(), nullptr);
    std::memset(mapping.data(), 0x3c, bytes);
    std::unique_ptr<device_mirror> imported = dev().import_host(mapping.data(), bytes);
    auto m = make_mirror(bytes);
    std::vector<std::byte> host(bytes, std::byte{0x11});

    std::string message;
    // Alone, or beside a valid op in the same batch: nothing is done.
    const upload_op copies[] = {{m.get(), 0, host.data(), 4096}, {imported.get(), 0, host.data(), 4096}};
    EXPECT_EQ(error_kind([&] { dev().upload(copies, {}, {}); }, &message), errc::invalid_argument);
    EXPECT_NE(message.find("imported"), std::string::npos) << message;
    const fill_op fill{imported.get(), 0, bytes};
    EXPECT_EQ(error_kind([&] { dev().upload({}, {&fill, 1}, {}); }), errc::invalid_argument);
    const download_op read{imported.get(), 0, host.data(), bytes};
    EXPECT_EQ(error_kind([&] { dev().download({&read, 1}, {}); }), errc::invalid_argument);
    EXPECT_EQ(host, std::vector<std::byte>(bytes, std::byte{0x11}));
    EXPECT_EQ(std::vector<std::byte>(mapping.data(), mapping.data() + bytes),
              std::vector<std::byte>(bytes, std::byte{0x3c}));
    imported.reset();
}

/* --- kernel builds ------------------------------------------------------------------------------------ */

TEST_F(VulkanBackend, InvalidSpirvFailsWithTheValidatorsMessage) {
    std::vector<std::uint32_t> words(usm::kernels::saxpy_comp.begin(), usm::kernels::saxpy_comp.end());
    words[3] = 5;  // the id bound: every id above it is now invalid
    std::string message;
    EXPECT_EQ(error_kind([&] { build(words); }, &message), errc::kernel_build_failed);
    EXPECT_NE(message.find("spirv-val"), std::string::npos) << message;
    EXPECT_NE(message.find("ID bound"), std::string::npos) << message;  // the validator's own words

    EXPECT_EQ(error_kind([&] { build(std::vector<std::uint32_t>{}); }), errc::kernel_build_failed);
    const std::vector<std::uint32_t> garbage(64, 0xdeadbeefu);
    EXPECT_EQ(error_kind([&] { build(garbage); }), errc::kernel_build_failed);
}

TEST_F(VulkanBackend, UnknownEntryPointFailsNamingIt) {
    std::string message;
    EXPECT_EQ(error_kind([&] { build(usm::kernels::saxpy_comp, "saxpy_main"); }, &message), errc::kernel_build_failed);
    EXPECT_NE(message.find("'saxpy_main'"), std::string::npos) << message;
    EXPECT_NE(message.find("'main' (GLCompute)"), std::string::npos) << message;  // what the module has
}

TEST_F(VulkanBackend, OpenClSourceIsUnsupported) {
    EXPECT_EQ(error_kind([] { dev().build_opencl_c("__kernel void k() {}", "", "k"); }), errc::unsupported);
}

/* --- sync points and threads ---------------------------------------------------------------------------- */

TEST_F(VulkanBackend, SyncPointsAreCheckedAndJoined) {
    EXPECT_TRUE(dev().reached({}));
    dev().wait({});
    EXPECT_EQ(error_kind([] { dev().reached({0, std::uint64_t(1) << 60}); }), errc::invalid_argument);
    EXPECT_EQ(error_kind([] { dev().wait({1, std::uint64_t(1) << 60}); }), errc::invalid_argument);
    EXPECT_EQ(error_kind([] { dev().reached({7, 1}); }), errc::invalid_argument);

    // An empty upload returns a point covering its wait_for: from one queue,
    // that point; from both, a new transfer point after both.
    auto m = make_mirror(4096);
    auto k = build(usm::kernels::saxpy_comp);
    const float a = 1.0f;
    const std::uint32_t n = 1024;
    const bound_arg args[] = {memory(*m, 0, 4096, usm::access::read), memory(*m, 0, 4096, usm::access::read_write),
                              value(a), value(n)};
    const sync_point launched = dev().launch(*k, {16, 1, 1}, {64, 1, 1}, args, {});
    const sync_point copied = put(*m, 0, std::vector<std::uint32_t>(16, 0));
    const sync_point only_launch[] = {launched, {}};
    const sync_point same = dev().upload({}, {}, only_launch);
    EXPECT_EQ(same.queue, launched.queue);
    EXPECT_EQ(same.value, launched.value);
    const sync_point both[] = {launched, copied};
    const sync_point joined = dev().upload({}, {}, both);
    EXPECT_EQ(joined.queue, 1u);
    dev().wait(joined);
    EXPECT_TRUE(dev().reached(launched));
    EXPECT_TRUE(dev().reached(copied));
    EXPECT_TRUE(dev().upload({}, {}, {}).empty());
    dev().download({}, both);
}

TEST_F(VulkanBackend, WaitsAndBuildsRunBesideSubmissions) {
    const std::uint32_t n = 2048;
    auto xm = make_mirror(n * 4);
    auto ym = make_mirror(n * 4);
    const std::vector<float> ones(n, 1.0f);
    const upload_op ops[] = {{xm.get(), 0, reinterpret_cast<const std::byte*>(ones.data()), n * 4},
                             {ym.get(), 0, reinterpret_cast<const std::byte*>(ones.data()), n * 4}};
    const sync_point uploaded = dev().upload(ops, {}, {});
    auto k = build(usm::kernels::saxpy_comp);
    const float a = 2.0f;
    const bound_arg args[] = {memory(*xm, 0, n * 4, usm::access::read), memory(*ym, 0, n * 4, usm::access::read_write),
                              value(a), value(n)};

    std::atomic<std::uint64_t> published{0};
    std::atomic<bool> finished{false};
    std::atomic<int> failures{0};
    std::thread waiter([&] {
        // Waits come without any lock of the caller (the contract).
        try {
            while (!finished.load()) {
                const std::uint64_t v = published.load();
                if (v != 0) {
                    dev().wait({0, v});
                    if (!dev().reached({0, v})) ++failures;
                }
            }
        } catch (...) {
            ++failures;
        }
    });
    std::thread builder([&] {
        try {
            for (int i = 0; i < 4; ++i) {
                auto built = build(i % 2 == 0 ? usm::kernels::heat2d_comp : usm::kernels::test_vk_tail_comp);
                if (!built) ++failures;
            }
        } catch (...) {
            ++failures;
        }
    });
    const int launches = 40;
    sync_point last{};
    for (int i = 0; i < launches; ++i) {
        const sync_point waits[] = {uploaded};
        last = dev().launch(*k, {groups_for(n, 128), 1, 1}, {128, 1, 1}, args, waits);
        published.store(last.value);
    }
    const sync_point waits[] = {last};
    const auto y = get<float>(*ym, 0, n, waits);
    finished.store(true);
    waiter.join();
    builder.join();
    EXPECT_EQ(failures.load(), 0);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(y[i], 1.0f + launches * 2.0f) << i;
}

TEST_F(VulkanBackend, MirrorsAndKernelsMayOutliveTheirDevice) {
    // The core frees in its own order; the VkDevice must stay until the
    // last buffer and pipeline made from it are gone (the validation layer
    // reports leaked children otherwise).
    auto second = the_driver()->open(first_usable(*the_driver()));
    auto m = second->create_mirror(4096);
    auto k = second->build_spirv(usm::kernels::saxpy_comp, "main");
    const std::vector<std::uint32_t> values(1024, 9);
    const upload_op op{m.get(), 0, reinterpret_cast<const std::byte*>(values.data()), 4096};
    second->wait(second->upload({&op, 1}, {}, {}));
    // A mirror of another device is refused, not used.
    const upload_op foreign{m.get(), 0, reinterpret_cast<const std::byte*>(values.data()), 4096};
    EXPECT_EQ(error_kind([&] { dev().upload({&foreign, 1}, {}, {}); }), errc::invalid_argument);
    EXPECT_EQ(error_kind([&] { dev().launch(*k, {1, 1, 1}, {64, 1, 1}, {}, {}); }), errc::invalid_argument);
    second.reset();
    k.reset();
    m.reset();
}

}  // namespace
