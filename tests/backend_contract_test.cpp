// tests/backend_contract_test.cpp - the backend contract (core/device_interface.hpp)
// as one suite run on every backend: the driver from the backend table, its
// first usable device, and every call the core makes, checked against what
// the contract promises: transfers on both copy paths and their ordering
// with each other and with kernels, imports, bounds and foreign objects,
// sync points, threads, lifetimes and kernel builds. Test names end in the
// backend ("/vulkan", "/opencl"), which gives their ctest label.
//
// Kernels come in both forms (shaders/NAME.comp for Vulkan, NAME.cl for
// OpenCL; tests/support.hpp's USM_TEST_KERNEL). What only one backend has
// (push constants, SPIR-V literal group sizes, OpenCL argument kinds, PoCL's
// facts) is in tests/vulkan_backend_test.cpp and tests/opencl_backend_test.cpp.
//
// The run has the Khronos validation layer on for Vulkan (USM_VK_VALIDATION=1
// unless the environment sets it), and the global tear-down asserts that it
// reported no error.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <kernels/heat2d_cl.hpp>
#include <kernels/heat2d_comp.hpp>
#include <kernels/saxpy_cl.hpp>
#include <kernels/saxpy_comp.hpp>
#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>
#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_slow_add_cl.hpp>
#include <kernels/test_slow_add_comp.hpp>
#include <mutex>
#include <sstream>
#include <thread>

#include "backend_support.hpp"
#if USM_TEST_VULKAN
#include "backends/vulkan/vulkan_debug.hpp"
#endif

namespace usm_test::backend {
namespace {

/* --- the fixture ------------------------------------------------------------------ */

// Kernels the tests share, built once per device for the whole run.
std::map<std::pair<const device_backend*, std::string>, std::unique_ptr<compiled_kernel>>& built_kernels() {
    static std::map<std::pair<const device_backend*, std::string>, std::unique_ptr<compiled_kernel>> all;
    return all;
}

class contract_environment : public testing::Environment {
public:
    void SetUp() override {
        // Before the instance exists: the layer is chosen at vkCreateInstance.
        ::setenv("USM_VK_VALIDATION", "1", 0);
    }
    void TearDown() override {
        // Destroy everything first, so the layer also checks destruction.
        built_kernels().clear();
        close_backends();
#if USM_TEST_VULKAN
        EXPECT_EQ(vulkan_validation_errors(), 0u) << "the Vulkan validation layer reported errors (see the log)";
#endif
    }
};

[[maybe_unused]] testing::Environment* const registered_environment =
    testing::AddGlobalTestEnvironment(new contract_environment);

const char* path_name(transfer_path p) { return p == transfer_path::cpu ? "cpu path" : "queue path"; }

// What a test needs of the device beyond the contract's minimum: outside CI
// its absence skips the test; in CI (lavapipe and PoCL, CPU devices that have
// it all) it fails.
#define USM_REQUIRE(condition, why)                                                                 \
    do {                                                                                            \
        if (condition) break;                                                                       \
        if (!::usm_test::in_ci()) GTEST_SKIP() << dev().properties().name << ": " << (why);         \
        FAIL() << dev().properties().name << ": " << (why) << ", which CI's CPU devices must have"; \
    } while (false)

class backend_contract : public testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        m_opened = &open_backend_once(GetParam());
        USM_REQUIRE_BACKEND(*m_opened, GetParam());
    }

    device_backend& dev() const { return *m_opened->device; }
    driver& drv() const { return *m_opened->loaded; }
    bool vulkan() const { return dev().properties().backend == usm::backend::vulkan; }
    /// The same device opened again: its mirrors and kernels are another
    /// device's to dev().
    std::unique_ptr<device_backend> open_again() const { return drv().open(m_opened->index); }

    /// `k` built for `d` in the form its backend takes.
    static std::unique_ptr<compiled_kernel> build(device_backend& d, const kernel_source& k,
                                                  std::string_view options = {}) {
        if (d.properties().backend == usm::backend::vulkan) return d.build_spirv(k.spirv, "main");
        return d.build_opencl_c(k.opencl, options, k.opencl_entry);
    }
    /// `k` for dev(), built once.
    compiled_kernel& kernel(const kernel_source& k) {
        auto& slot = built_kernels()[{&dev(), k.opencl_entry}];
        if (!slot) slot = build(dev(), k);
        return *slot;
    }

    /// The copy paths this device takes: the queue, and the CPU where its
    /// mirrors are host memory (properties().cpu_copies).
    std::vector<transfer_path> paths() const {
        if (dev().properties().cpu_copies) return {transfer_path::queue, transfer_path::cpu};
        return {transfer_path::queue};
    }

    template <class T>
    sync_point put(device_mirror& m, std::size_t offset, const std::vector<T>& values,
                   std::span<const sync_point> wait_for = {}, transfer_path path = transfer_path::queue) {
        return upload_values(dev(), m, offset, values, wait_for, path);
    }
    template <class T>
    std::vector<T> get(device_mirror& m, std::size_t offset, std::size_t count,
                       std::span<const sync_point> wait_for = {}, transfer_path path = transfer_path::queue) {
        return download_values<T>(dev(), m, offset, count, wait_for, path);
    }

    /// test_slow_add over `n` words: out[i] = in[i] + lcg^rounds(i), reading
    /// `in` only after the rounds. 3000 rounds over 64 Ki words take a few
    /// hundred milliseconds on PoCL and on llvmpipe (2 cores).
    static constexpr std::uint32_t slow_rounds = 3000;
    sync_point slow_add(device_mirror& in, device_mirror& out, std::uint32_t n, std::uint32_t rounds,
                        std::span<const sync_point> wait_for = {}, std::size_t in_offset = 0,
                        std::size_t out_offset = 0) {
        const bound_arg args[] = {memory(in, in_offset, n * word, access::read),
                                  memory(out, out_offset, n * word, access::write), value(n), value(rounds)};
        return dev().launch(kernel(USM_TEST_KERNEL(test_slow_add)), {groups_for(n, 64), 1, 1}, {64, 1, 1}, args,
                            wait_for);
    }
    /// test_increment: x[i] += 1 over `n` words of `m` from `offset`.
    sync_point increment(device_mirror& m, std::size_t offset, std::uint32_t n,
                         std::span<const sync_point> wait_for = {}) {
        const bound_arg args[] = {memory(m, offset, n * word, access::read_write), value(n)};
        return dev().launch(kernel(USM_TEST_KERNEL(test_increment)), {groups_for(n, 64), 1, 1}, {64, 1, 1}, args,
                            wait_for);
    }

    /// The device limit a mirror larger than the largest buffer is refused by.
    const char* largest_buffer_limit() const {
        return vulkan() ? "maxMemoryAllocationSize" : "CL_DEVICE_MAX_MEM_ALLOC_SIZE";
    }

private:
    opened_backend* m_opened = nullptr;
};

/* --- driver and device ------------------------------------------------------------------ */

TEST_P(backend_contract, the_driver_lists_its_devices_and_refuses_an_unknown_one) {
    const auto& list = drv().candidates();
    ASSERT_FALSE(list.empty());
    for (const auto& c : list) EXPECT_FALSE(c.name.empty());
    EXPECT_EQ(list[first_usable(drv())].name, dev().properties().name);
    EXPECT_EQ(expect_error([&] { drv().open(list.size()); }).kind(), errc::invalid_argument);
}

TEST_P(backend_contract, properties_describe_the_device) {
    const device_properties& p = dev().properties();
    EXPECT_EQ(p.backend, std::string_view(GetParam()) == "vulkan" ? usm::backend::vulkan : usm::backend::opencl);
    EXPECT_FALSE(p.name.empty());
    EXPECT_FALSE(p.driver.empty());
    EXPECT_GT(p.memory_bytes, 0u);
    EXPECT_GE(p.max_allocation, 272 * MiB) << "the largest transfer below";
    // The CPU copies only memory it addresses.
    if (p.cpu_copies) {
        EXPECT_TRUE(p.host_addressable);
    }
}

TEST_P(backend_contract, cpu_copies_are_offered_by_cpu_devices_and_refused_by_the_others) {
    const device_properties& p = dev().properties();
    auto m = dev().create_mirror(page);
    const std::vector<std::uint32_t> data(16, 0x600dcafeu);
    const upload_op op{m.get(), 64, bytes_of(data), 64};
    std::vector<std::uint32_t> back(16, 0);
    const download_op down{m.get(), 64, reinterpret_cast<std::byte*>(back.data()), 64};
    if (!p.cpu_copies) {
        // A GPU's mirrors are not host memory: the CPU path is refused.
        EXPECT_EQ(expect_error([&] {
                      dev().upload({&op, 1}, {}, {}, transfer_path::cpu);
                  }).kind(),
                  errc::invalid_argument);
        EXPECT_EQ(expect_error([&] {
                      dev().download({&down, 1}, {}, transfer_path::cpu);
                  }).kind(),
                  errc::invalid_argument);
        EXPECT_FALSE(in_ci()) << p.name << " offers no CPU copies; CI's lavapipe and PoCL are CPU devices";
        return;
    }
    // A CPU device (lavapipe, PoCL): every mirror is host memory the CPU
    // copies itself, complete on return. (Where the CPU path cannot apply on
    // such a device, imported memory, it is refused: see the imports below.)
    EXPECT_TRUE(p.host_addressable);
    EXPECT_TRUE(dev().upload({&op, 1}, {}, {}, transfer_path::cpu).empty());
    dev().download({&down, 1}, {}, transfer_path::cpu);
    EXPECT_EQ(back, data);
}

TEST_P(backend_contract, mirrors_of_zero_bytes_or_past_the_largest_buffer_are_refused) {
    const device_properties& p = dev().properties();
    const std::uint64_t asked = p.max_allocation + page;
    const usm::error e = expect_error([&] { dev().create_mirror(asked); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), std::to_string(asked)));
    EXPECT_TRUE(contains(e.what(), largest_buffer_limit()));
    EXPECT_TRUE(contains(e.what(), p.name));
    EXPECT_EQ(expect_error([&] { dev().create_mirror(std::size_t{1} << 50); }).kind(), errc::unsupported);
    EXPECT_EQ(expect_error([&] { dev().create_mirror(0); }).kind(), errc::invalid_argument);
    // An error, not an abort: the device still works.
    auto m = dev().create_mirror(page);
    EXPECT_EQ(m->bytes(), page);
    const std::vector<std::uint32_t> values = {1, 2, 3};
    const sync_point written[] = {put(*m, 0, values)};
    EXPECT_EQ(get<std::uint32_t>(*m, 0, 3, written), values);
}

/* --- transfers -------------------------------------------------------------------------- */

TEST_P(backend_contract, upload_then_download_round_trips_bytes_exactly) {
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        std::mt19937 rng(1234);
        const std::size_t sizes[] = {64 * KiB, 1 * MiB + 12 * KiB, 12 * KiB};
        std::vector<std::unique_ptr<device_mirror>> mirrors;
        std::vector<std::vector<std::byte>> model;
        for (std::size_t s : sizes) {
            mirrors.push_back(dev().create_mirror(s));
            ASSERT_EQ(mirrors.back()->bytes(), s);
            model.emplace_back(s);
        }
        for (int round = 0; round < 6; ++round) {
            // One batch: runs of every mirror (all of them in round 0, a
            // random half later), some split in two ops that continue each
            // other on both sides, shuffled. The sources stay unchanged until
            // the download below.
            std::vector<std::vector<std::byte>> sources;
            std::vector<upload_op> ops;
            for (std::size_t m = 0; m < mirrors.size(); ++m) {
                for (auto [offset, length] : random_partition(rng, sizes[m], 9000)) {
                    if (round > 0 && rng() % 2 == 0) continue;
                    sources.push_back(random_bytes(rng, length));
                    const std::byte* src = sources.back().data();
                    std::memcpy(model[m].data() + offset, src, length);
                    const std::size_t split = length > 1 && rng() % 2 == 0 ? length / 2 : length;
                    ops.push_back({mirrors[m].get(), offset, src, split});
                    if (split < length) ops.push_back({mirrors[m].get(), offset + split, src + split, length - split});
                }
            }
            std::shuffle(ops.begin(), ops.end(), rng);
            const sync_point uploaded = dev().upload(ops, {}, {}, path);
            EXPECT_EQ(uploaded.empty(), path == transfer_path::cpu) << "round " << round;

            // Back along another partition, in one batch. Even rounds name
            // the upload in wait_for; odd ones rely on "after earlier
            // transfers".
            std::vector<std::vector<std::byte>> back(mirrors.size());
            std::vector<download_op> reads;
            for (std::size_t m = 0; m < mirrors.size(); ++m) {
                back[m].assign(sizes[m], std::byte{0x5a});
                for (auto [offset, length] : random_partition(rng, sizes[m], 20000))
                    reads.push_back({mirrors[m].get(), offset, back[m].data() + offset, length});
            }
            std::shuffle(reads.begin(), reads.end(), rng);
            const sync_point waits[] = {uploaded};
            dev().download(reads, round % 2 == 0 ? std::span<const sync_point>(waits) : std::span<const sync_point>(),
                           path);
            EXPECT_TRUE(dev().reached(uploaded));
            for (std::size_t m = 0; m < mirrors.size(); ++m)
                ASSERT_EQ(std::memcmp(back[m].data(), model[m].data(), sizes[m]), 0)
                    << "round " << round << " mirror " << m;
        }
        // Overlapping reads at odd offsets, in one batch.
        std::vector<std::vector<std::byte>> pieces;
        std::vector<download_op> reads;
        std::vector<std::pair<std::size_t, std::size_t>> where;
        for (std::size_t m = 0; m < mirrors.size(); ++m)
            for (int k = 0; k < 4; ++k) {
                const std::size_t offset = rng() % (sizes[m] - 1);
                pieces.emplace_back(rng() % (sizes[m] - offset) + 1);
                where.emplace_back(m, offset);
            }
        for (std::size_t i = 0; i < pieces.size(); ++i)
            reads.push_back({mirrors[where[i].first].get(), where[i].second, pieces[i].data(), pieces[i].size()});
        dev().download(reads, {}, path);
        for (std::size_t i = 0; i < pieces.size(); ++i)
            ASSERT_EQ(std::memcmp(pieces[i].data(), model[where[i].first].data() + where[i].second, pieces[i].size()),
                      0)
                << "piece " << i;
    }
}

TEST_P(backend_contract, page_ops_listed_backwards_coalesce_and_a_large_batch_splits) {
    // 96 MiB in 4 KiB ops listed backwards: sorted and merged into few
    // commands, and more than one Vulkan submission's worth (64 MiB) of
    // staging.
    const std::size_t bytes = 96 * MiB;
    auto m = dev().create_mirror(bytes);
    std::vector<std::uint32_t> data(bytes / word);
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        const std::uint32_t seed = path == transfer_path::cpu ? 0x5eed : 0;
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint32_t>(i * 2654435761u) ^ seed;
        std::vector<upload_op> ops;
        for (std::size_t p = bytes / page; p-- > 0;)
            ops.push_back({m.get(), p * page, bytes_of(data) + p * page, page});
        const sync_point uploaded = dev().upload(ops, {}, {}, path);
        dev().wait(uploaded);
        EXPECT_TRUE(dev().reached(uploaded));
        EXPECT_TRUE(get<std::uint32_t>(*m, 0, data.size(), {}, path) == data);
    }
}

TEST_P(backend_contract, a_transfer_larger_than_the_vulkan_staging_pool_round_trips) {
    // 272 MiB each way: more than Vulkan's staging pool may ever hold (256
    // MiB), so both directions wait for chunks in flight and reuse them.
    // OpenCL copies between host memory and SVM directly: the same bytes.
    const std::size_t bytes = 272 * MiB;
    auto m = dev().create_mirror(bytes);
    std::vector<std::uint64_t> data(bytes / 8);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = i * 0x9E3779B97F4A7C15ull;
    const sync_point uploaded[] = {put(*m, 0, data)};
    EXPECT_TRUE(get<std::uint64_t>(*m, 0, data.size(), uploaded) == data);
}

TEST_P(backend_contract, fills_zero_exactly_the_filled_bytes) {
    const std::size_t bytes = 64 * KiB;
    auto m = dev().create_mirror(bytes);
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        const std::vector<std::uint8_t> pattern(bytes, 0xab);
        const sync_point written[] = {put(*m, 0, pattern)};
        // Aligned, ragged on both ends, tiny, at the very end, and beside a
        // copy in the same batch.
        const fill_op fills[] = {{m.get(), 3, 5},         {m.get(), 100, 128},    {m.get(), page, 2 * page},
                                 {m.get(), 20001, 5003},  {m.get(), 30001, 2},    {m.get(), 8 * page + 1, page - 2},
                                 {m.get(), bytes - 7, 6}, {m.get(), bytes - 1, 1}};
        const std::vector<std::uint8_t> copy(300, 0x5c);
        const upload_op copies[] = {{m.get(), 40000, bytes_of(copy), copy.size()}};
        const sync_point filled[] = {dev().upload(copies, fills, written, path)};
        std::vector<std::uint8_t> expected = pattern;
        for (const fill_op& f : fills)
            std::fill_n(expected.begin() + static_cast<std::ptrdiff_t>(f.offset), f.bytes, std::uint8_t{0});
        std::copy(copy.begin(), copy.end(), expected.begin() + 40000);
        EXPECT_TRUE(get<std::uint8_t>(*m, 0, bytes, filled, path) == expected);

        // A batch of fills alone.
        const fill_op all[] = {{m.get(), 0, bytes}};
        const sync_point cleared[] = {dev().upload({}, all, {}, path)};
        EXPECT_TRUE(get<std::uint8_t>(*m, 0, bytes, cleared, path) == std::vector<std::uint8_t>(bytes, 0));
    }
}

TEST_P(backend_contract, bad_ops_are_refused_before_anything_is_copied) {
    auto m = dev().create_mirror(2 * page);
    const std::vector<std::uint8_t> before(2 * page, 0x11);
    dev().wait(put(*m, 0, before));
    const std::vector<std::byte> data(2 * page + 1, std::byte{0x22});
    std::vector<std::byte> out(3 * page, std::byte{0x33});
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        // Each bad batch also holds a good op, which must not happen either.
        const upload_op good{m.get(), 0, data.data(), page};
        const upload_op past_end[] = {good, {m.get(), page, data.data(), page + 1}};
        EXPECT_EQ(expect_error([&] { dev().upload(past_end, {}, {}, path); }).kind(), errc::out_of_range);
        const fill_op fill_past_end[] = {{m.get(), 2 * page, 1}};
        EXPECT_EQ(expect_error([&] { dev().upload({&good, 1}, fill_past_end, {}, path); }).kind(), errc::out_of_range);
        const upload_op no_mirror[] = {good, {nullptr, 0, data.data(), 4}};
        EXPECT_EQ(expect_error([&] { dev().upload(no_mirror, {}, {}, path); }).kind(), errc::invalid_argument);
        const upload_op no_source[] = {good, {m.get(), page, nullptr, 16}};
        EXPECT_EQ(expect_error([&] { dev().upload(no_source, {}, {}, path); }).kind(), errc::invalid_argument);

        const download_op read_good{m.get(), 0, out.data(), page};
        const download_op read_past_end[] = {read_good, {m.get(), 1, out.data() + page, 2 * page}};
        EXPECT_EQ(expect_error([&] { dev().download(read_past_end, {}, path); }).kind(), errc::out_of_range);
        const download_op read_no_mirror[] = {read_good, {nullptr, 0, out.data() + page, 4}};
        EXPECT_EQ(expect_error([&] { dev().download(read_no_mirror, {}, path); }).kind(), errc::invalid_argument);
        const download_op read_nowhere[] = {read_good, {m.get(), page, nullptr, 16}};
        EXPECT_EQ(expect_error([&] { dev().download(read_nowhere, {}, path); }).kind(), errc::invalid_argument);
        EXPECT_EQ(get<std::uint8_t>(*m, 0, 2 * page), before) << "a refused upload changed the mirror";
    }
}

TEST_P(backend_contract, mirrors_and_kernels_of_another_device_are_refused) {
    auto other = open_again();
    auto foreign = other->create_mirror(page);
    auto foreign_kernel = build(*other, USM_TEST_KERNEL(test_increment));
    auto own = dev().create_mirror(page);
    const std::vector<std::uint32_t> zeros(page / word, 0);
    dev().wait(put(*own, 0, zeros));
    std::vector<std::byte> data(64);
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        const upload_op up{foreign.get(), 0, data.data(), data.size()};
        EXPECT_EQ(expect_error([&] { dev().upload({&up, 1}, {}, {}, path); }).kind(), errc::invalid_argument);
        const fill_op fill{foreign.get(), 0, page};
        EXPECT_EQ(expect_error([&] { dev().upload({}, {&fill, 1}, {}, path); }).kind(), errc::invalid_argument);
        const download_op down{foreign.get(), 0, data.data(), data.size()};
        EXPECT_EQ(expect_error([&] { dev().download({&down, 1}, {}, path); }).kind(), errc::invalid_argument);
    }
    EXPECT_EQ(expect_error([&] { increment(*foreign, 0, 64); }).kind(), errc::invalid_argument);
    EXPECT_EQ(expect_error([&] { (void)dev().device_address(*foreign); }).kind(), errc::invalid_argument);
    const std::uint32_t n = 64;
    const bound_arg args[] = {memory(*own, 0, n * word, access::read_write), value(n)};
    EXPECT_EQ(expect_error([&] {
                  dev().launch(*foreign_kernel, {1, 1, 1}, {64, 1, 1}, args, {});
              }).kind(),
              errc::invalid_argument);
    EXPECT_EQ(get<std::uint32_t>(*own, 0, page / word), zeros) << "a refused launch ran";
}

TEST_P(backend_contract, mirrors_and_kernels_may_outlive_their_device) {
    // The core frees in its own order: the driver's device must stay until
    // the last buffer and kernel made from it are gone (Vulkan's validation
    // layer reports leaked children otherwise).
    auto second = open_again();
    auto m = second->create_mirror(page);
    auto k = build(*second, USM_TEST_KERNEL(test_increment));
    const std::vector<std::uint32_t> values(page / word, 9);
    const upload_op op{m.get(), 0, bytes_of(values), page};
    const sync_point uploaded[] = {second->upload({&op, 1}, {}, {}, transfer_path::queue)};
    const std::uint32_t n = page / word;
    const bound_arg args[] = {memory(*m, 0, page, access::read_write), value(n)};
    const sync_point done[] = {second->launch(*k, {groups_for(n, 64), 1, 1}, {64, 1, 1}, args, uploaded)};
    std::vector<std::uint32_t> back(n);
    const download_op down{m.get(), 0, reinterpret_cast<std::byte*>(back.data()), page};
    second->download({&down, 1}, done, transfer_path::queue);
    EXPECT_EQ(back, std::vector<std::uint32_t>(n, 10));
    second.reset();
    EXPECT_EQ(m->bytes(), page);
    EXPECT_EQ(k->entry(), vulkan() ? "main" : "test_increment");
    k.reset();
    m.reset();
}

/* --- host memory in place (import_host) ---------------------------------------------------- */

TEST_P(backend_contract, kernels_read_and_write_imported_host_memory_in_place) {
    USM_REQUIRE(dev().properties().host_memory_in_place, "kernels cannot use host memory in place");
    // Four pages imported from the second page of an eight-page memfd, so
    // the pages around the import show that nothing outside it is touched.
    constexpr std::size_t pages = 8, first = 1, imported = 4;
    constexpr std::size_t words_per_page = page / word, all_words = pages * words_per_page;
    constexpr std::size_t base = first * words_per_page;  // word 0 of the import, in the view
    shared_memory memory_fd(pages * page);
    ASSERT_TRUE(memory_fd.ok()) << "memfd_create / mmap failed";
    std::uint32_t* view = memory_fd.words();
    std::vector<std::uint32_t> model(all_words);
    for (std::size_t i = 0; i < all_words; ++i) model[i] = view[i] = static_cast<std::uint32_t>(i * 2654435761u);
    const auto check = [&](const char* when) {
        for (std::size_t i = 0; i < all_words; ++i)
            ASSERT_EQ(view[i], model[i]) << when << ": word " << i << " (page " << i / words_per_page << ")";
    };
    std::unique_ptr<device_mirror> mirror = dev().import_host(memory_fd.alias(first * page), imported * page);
    ASSERT_EQ(mirror->bytes(), imported * page);

    // x[i] += 1 from 8 bytes into the import's second page to inside its
    // fourth; host writes between launches are what the next one reads.
    const std::size_t offset = page + 8;
    const std::uint32_t n = 2500;
    for (int round = 0; round < 3; ++round) {
        for (std::size_t i = base; i < base + imported * words_per_page; i += 7)
            model[i] = view[i] = static_cast<std::uint32_t>(i * 5 + round);
        dev().wait(increment(*mirror, offset, n));
        for (std::size_t i = base + offset / word; i < base + offset / word + n; ++i) ++model[i];
        check("after an increment");
    }

    // One kernel reading and writing the import at two interior offsets
    // (only multiples of 4: no sub-buffer could start there).
    const std::size_t in_offset = 12, out_offset = 3 * page + 4;
    const std::uint32_t m = 1000;
    const sync_point added = slow_add(*mirror, *mirror, m, 0, {}, in_offset, out_offset);
    dev().wait(added);
    EXPECT_TRUE(dev().reached(added));
    for (std::uint32_t i = 0; i < m; ++i) model[base + out_offset / word + i] = model[base + in_offset / word + i] + i;
    check("after a kernel between two interior offsets");

    // Beside an ordinary mirror in one launch, both ways: the import read
    // into a mirror, then a mirror added into the import.
    auto plain = dev().create_mirror(page);
    const sync_point read[] = {slow_add(*mirror, *plain, m, 0, {}, in_offset)};
    const std::vector<std::uint32_t> got = get<std::uint32_t>(*plain, 0, m, read);
    for (std::uint32_t i = 0; i < m; ++i) ASSERT_EQ(got[i], model[base + in_offset / word + i] + i) << i;
    const std::vector<float> x(m, 3.0f);
    for (std::uint32_t i = 0; i < m; ++i) {
        const float y = static_cast<float>(i % 50);
        std::memcpy(&view[base + i], &y, word);
        const float sum = 2.0f * 3.0f + y;
        std::memcpy(&model[base + i], &sum, word);
    }
    const sync_point uploaded[] = {put(*plain, 0, x)};
    const float a = 2.0f;
    const bound_arg saxpy_args[] = {memory(*plain, 0, m * word, access::read),
                                    memory(*mirror, 0, m * word, access::read_write), value(a), value(m)};
    dev().wait(
        dev().launch(kernel(USM_TEST_KERNEL(saxpy)), {groups_for(m, 64), 1, 1}, {64, 1, 1}, saxpy_args, uploaded));
    check("after saxpy into the import");

    // A kernel that only writes, over the whole import.
    const std::uint32_t count = imported * words_per_page, seed = 0x5eed;
    const bound_arg fill_args[] = {memory(*mirror, 0, imported * page, access::write), value(count), value(seed)};
    dev().wait(
        dev().launch(kernel(USM_TEST_KERNEL(test_fill)), {groups_for(count, 64), 1, 1}, {64, 1, 1}, fill_args, {}));
    for (std::uint32_t i = 0; i < count; ++i) model[base + i] = fill_value(i, seed);
    check("after a fill of the whole import");

    // Releasing the import leaves the memory as the kernels left it.
    mirror.reset();
    check("after the import was destroyed");
}

TEST_P(backend_contract, misaligned_or_empty_imports_are_refused) {
    USM_REQUIRE(dev().properties().host_memory_in_place, "kernels cannot use host memory in place");
    aligned_memory mapping(128 * KiB);
    ASSERT_NE(mapping.data(), nullptr);
    for (const std::size_t offset : {std::size_t{4}, std::size_t{128}, std::size_t{256}, page / 2}) {
        std::byte* const misaligned = mapping.data() + offset;
        const usm::error e = expect_error([&] { dev().import_host(misaligned, 64 * KiB); });
        EXPECT_EQ(e.kind(), errc::unsupported) << "offset " << offset;
        std::ostringstream address;
        address << static_cast<const void*>(misaligned);
        EXPECT_TRUE(contains(e.what(), address.str()));
        EXPECT_TRUE(contains(e.what(), dev().properties().name));
    }
    EXPECT_EQ(expect_error([&] { dev().import_host(mapping.data(), 0); }).kind(), errc::invalid_argument);
    EXPECT_EQ(expect_error([&] { dev().import_host(nullptr, 64 * KiB); }).kind(), errc::invalid_argument);
    const std::size_t too_big = dev().properties().max_allocation + page;
    EXPECT_EQ(expect_error([&] { dev().import_host(mapping.data(), too_big); }).kind(), errc::unsupported);
    // The device still imports an aligned range.
    EXPECT_EQ(dev().import_host(mapping.data(), 64 * KiB)->bytes(), 64 * KiB);
}

TEST_P(backend_contract, transfers_refuse_imported_mirrors_on_either_path) {
    USM_REQUIRE(dev().properties().host_memory_in_place, "kernels cannot use host memory in place");
    shared_memory memory_fd(2 * page);
    ASSERT_TRUE(memory_fd.ok());
    std::fill_n(memory_fd.words(), 2 * page / word, 0x5A5A5A5Au);
    auto imported = dev().import_host(memory_fd.alias(), 2 * page);
    auto plain = dev().create_mirror(page);
    const std::vector<std::uint8_t> before(page, 0x11);
    dev().wait(put(*plain, 0, before));
    std::vector<std::byte> data(64, std::byte{1});
    // The path too: the CPU could copy host memory, but the core never
    // copies an import (kernels use it in place), so neither path does.
    for (const transfer_path path : {transfer_path::queue, transfer_path::cpu}) {
        SCOPED_TRACE(path_name(path));
        // Beside a valid op for an ordinary mirror: the whole batch is refused.
        const upload_op copies[] = {{plain.get(), 0, data.data(), data.size()},
                                    {imported.get(), 0, data.data(), data.size()}};
        usm::error e = expect_error([&] { dev().upload(copies, {}, {}, path); });
        EXPECT_EQ(e.kind(), errc::invalid_argument);
        EXPECT_TRUE(contains(e.what(), "in place"));
        const fill_op fill{imported.get(), 0, page};
        EXPECT_EQ(expect_error([&] { dev().upload({}, {&fill, 1}, {}, path); }).kind(), errc::invalid_argument);
        const download_op down{imported.get(), 0, data.data(), data.size()};
        e = expect_error([&] { dev().download({&down, 1}, {}, path); });
        EXPECT_EQ(e.kind(), errc::invalid_argument);
        EXPECT_TRUE(contains(e.what(), "in place"));
    }
    for (std::size_t i = 0; i < 2 * page / word; ++i) ASSERT_EQ(memory_fd.words()[i], 0x5A5A5A5Au) << i;
    EXPECT_EQ(data, std::vector<std::byte>(64, std::byte{1}));
    EXPECT_EQ(get<std::uint8_t>(*plain, 0, page), before);

    // Another device's import is not this device's mirror.
    auto other = open_again();
    auto foreign = other->import_host(memory_fd.alias(), page);
    EXPECT_EQ(expect_error([&] { increment(*foreign, 0, 64); }).kind(), errc::invalid_argument);
    for (std::size_t i = 0; i < 2 * page / word; ++i) ASSERT_EQ(memory_fd.words()[i], 0x5A5A5A5Au) << i;
}

/* --- kernels ---------------------------------------------------------------------------------- */

TEST_P(backend_contract, saxpy_on_pointers_into_the_middle_of_mirrors_is_bit_exact) {
    const std::uint32_t n = 10007;  // not a multiple of the group
    // x 12 bytes into a page, y 4 bytes into one: aligned to nothing but float.
    const std::size_t x_offset = page + 12, y_offset = 2 * page + 4;
    auto xm = dev().create_mirror(64 * KiB);
    auto ym = dev().create_mirror(64 * KiB);
    std::vector<float> x(n), y(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(i % 1000) - 500.0f;
        y[i] = static_cast<float>(i % 77) * 0.25f;
    }
    // Guards around y: the kernel writes exactly n floats.
    const std::vector<float> guard(256, -7.0f);
    const std::size_t guard_bytes = guard.size() * sizeof(float);
    const upload_op ops[] = {{xm.get(), x_offset, bytes_of(x), n * sizeof(float)},
                             {ym.get(), y_offset, bytes_of(y), n * sizeof(float)},
                             {ym.get(), y_offset - guard_bytes, bytes_of(guard), guard_bytes},
                             {ym.get(), y_offset + n * sizeof(float), bytes_of(guard), guard_bytes}};
    const sync_point uploaded[] = {dev().upload(ops, {}, {}, transfer_path::queue)};
    const float a = 2.5f;
    const bound_arg args[] = {memory(*xm, x_offset, n * sizeof(float), access::read),
                              memory(*ym, y_offset, n * sizeof(float), access::read_write), value(a), value(n)};
    const sync_point done[] = {
        dev().launch(kernel(USM_TEST_KERNEL(saxpy)), {groups_for(n, 64), 1, 1}, {64, 1, 1}, args, uploaded)};
    // Exact whether or not the multiply and add are fused: few significant bits.
    std::vector<float> expected(n);
    for (std::uint32_t i = 0; i < n; ++i) expected[i] = a * x[i] + y[i];
    const auto result = get<float>(*ym, y_offset, n, done);
    EXPECT_EQ(std::memcmp(result.data(), expected.data(), n * sizeof(float)), 0);
    EXPECT_EQ(get<float>(*ym, y_offset - guard_bytes, guard.size()), guard);
    EXPECT_EQ(get<float>(*ym, y_offset + n * sizeof(float), guard.size()), guard);
}

TEST_P(backend_contract, heat2d_matches_the_cpu_reference) {
    const std::uint32_t n = 67;  // the 16 x 16 groups overhang the grid
    const float alpha = 0.125f;
    const std::size_t cells = std::size_t{n} * n, bytes = cells * sizeof(float);
    std::vector<float> grid(cells);
    for (std::size_t i = 0; i < cells; ++i) grid[i] = static_cast<float>((i * 7) % 16);
    // Small integers and alpha = 1/8: every value is exact, in any order of
    // operations the compiler picks.
    const auto step = [&](const std::vector<float>& in) {
        std::vector<float> out(in);
        for (std::uint32_t r = 1; r + 1 < n; ++r)
            for (std::uint32_t c = 1; c + 1 < n; ++c) {
                const std::size_t k = std::size_t{r} * n + c;
                const float sum = in[k - n] + in[k + n] + in[k - 1] + in[k + 1];
                out[k] = in[k] + alpha * (sum - 4.0f * in[k]);
            }
        return out;
    };
    auto a = dev().create_mirror((bytes + page - 1) / page * page);
    auto b = dev().create_mirror((bytes + page - 1) / page * page);
    const sync_point uploaded[] = {put(*a, 0, grid)};
    compiled_kernel& heat = kernel(USM_TEST_KERNEL(heat2d));
    const dims groups{groups_for(n, 16), groups_for(n, 16), 1};
    const bound_arg forward[] = {memory(*a, 0, bytes, access::read), memory(*b, 0, bytes, access::write), value(n),
                                 value(alpha)};
    const bound_arg backward[] = {memory(*b, 0, bytes, access::read), memory(*a, 0, bytes, access::write), value(n),
                                  value(alpha)};
    dev().launch(heat, groups, {16, 16, 1}, forward, uploaded);
    // Reads the first launch's output: ordered by "after every earlier launch".
    const sync_point second[] = {dev().launch(heat, groups, {16, 16, 1}, backward, {})};
    const auto one = step(grid);
    const auto two = step(one);
    EXPECT_EQ(std::memcmp(get<float>(*b, 0, cells, second).data(), one.data(), bytes), 0);
    EXPECT_EQ(std::memcmp(get<float>(*a, 0, cells).data(), two.data(), bytes), 0);
}

TEST_P(backend_contract, launches_see_the_writes_of_earlier_launches) {
    const std::uint32_t n = 4096;
    auto xm = dev().create_mirror(n * sizeof(float));
    auto ym = dev().create_mirror(n * sizeof(float));
    std::vector<float> x(n), y(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(i % 13);
        y[i] = static_cast<float>(i % 5);
    }
    const upload_op ops[] = {{xm.get(), 0, bytes_of(x), n * sizeof(float)},
                             {ym.get(), 0, bytes_of(y), n * sizeof(float)}};
    const sync_point uploaded[] = {dev().upload(ops, {}, {}, transfer_path::queue)};
    const float a = 1.0f;
    const bound_arg args[] = {memory(*xm, 0, n * sizeof(float), access::read),
                              memory(*ym, 0, n * sizeof(float), access::read_write), value(a), value(n)};
    const int launches = 25;
    sync_point last{};
    for (int i = 0; i < launches; ++i)
        // Only the first waits for anything.
        last = dev().launch(kernel(USM_TEST_KERNEL(saxpy)), {groups_for(n, 64), 1, 1}, {64, 1, 1}, args,
                            i == 0 ? std::span<const sync_point>(uploaded) : std::span<const sync_point>());
    const sync_point waits[] = {last};
    const auto result = get<float>(*ym, 0, n, waits);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(result[i], y[i] + static_cast<float>(launches) * x[i]) << i;
}

TEST_P(backend_contract, launch_rejects_bad_geometry_and_arguments_before_enqueueing) {
    // x = 1..16 at byte 0, y = 0 at byte 64: every refused launch would
    // change y if it ran.
    auto m = dev().create_mirror(page);
    std::vector<float> init(page / sizeof(float), 0.0f);
    for (int i = 0; i < 16; ++i) init[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
    dev().wait(put(*m, 0, init));
    compiled_kernel& saxpy = kernel(USM_TEST_KERNEL(saxpy));
    const float a = 2.0f;
    const std::uint32_t n = 16;
    const bound_arg good[] = {memory(*m, 0, 64, access::read), memory(*m, 64, 64, access::read_write), value(a),
                              value(n)};
    const auto refused = [&](dims grid, dims group, std::span<const bound_arg> args,
                             std::span<const sync_point> wait_for = {}) {
        return expect_error([&] { dev().launch(saxpy, grid, group, args, wait_for); });
    };
    EXPECT_EQ(refused({0, 1, 1}, {16, 1, 1}, good).kind(), errc::invalid_argument);
    EXPECT_EQ(refused({1, 0, 1}, {16, 1, 1}, good).kind(), errc::invalid_argument);
    EXPECT_EQ(refused({1, 1, 1}, {0, 1, 1}, good).kind(), errc::invalid_argument);
    EXPECT_EQ(refused({1, 1, 1}, {16, 1, 0}, good).kind(), errc::invalid_argument);
    const usm::error wide = refused({1, 1, 1}, {1u << 20, 1, 1}, good);
    EXPECT_EQ(wide.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(wide.what(), "1048576"));
    const bound_arg past_end[] = {memory(*m, page - 16, 64, access::read), memory(*m, 64, 64, access::read_write),
                                  value(a), value(n)};
    EXPECT_EQ(refused({1, 1, 1}, {16, 1, 1}, past_end).kind(), errc::out_of_range);
    const sync_point unknown[] = {{7, 1}};
    EXPECT_EQ(refused({1, 1, 1}, {16, 1, 1}, good, unknown).kind(), errc::invalid_argument);

    // Nothing was enqueued: y is still 0, and one good launch makes it 2x.
    EXPECT_EQ(get<float>(*m, 64, 16), std::vector<float>(16, 0.0f));
    const sync_point done[] = {dev().launch(saxpy, {1, 1, 1}, {16, 1, 1}, good, {})};
    const std::vector<float> y = get<float>(*m, 64, 16, done);
    for (std::uint32_t i = 0; i < 16; ++i) ASSERT_EQ(y[i], 2.0f * static_cast<float>(i + 1)) << i;
}

/* --- ordering through wait_for ------------------------------------------------------------------ */

TEST_P(backend_contract, a_launch_waits_for_its_upload_through_wait_for) {
    // A long upload (ops on every other page, so none merge) followed at
    // once by a short kernel that copies its last page (slow_add, 0 rounds).
    const std::size_t pages = 4096;
    auto src = dev().create_mirror(pages * page);
    auto dst = dev().create_mirror(page);
    const std::vector<std::uint32_t> stale(page / word, 0xFFFFFFFFu);
    dev().wait(put(*src, (pages - 1) * page, stale));
    std::vector<std::uint32_t> host(pages * page / word);
    for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<std::uint32_t>(i * 2654435761u);
    std::vector<upload_op> ops;
    for (std::size_t p = 1; p < pages; p += 2) ops.push_back({src.get(), p * page, bytes_of(host) + p * page, page});
    const std::uint32_t n = page / word;
    // Warm up: a driver may compile for the group size at the first launch,
    // which would give the upload time to finish even without the dependency.
    dev().wait(slow_add(*src, *dst, n, 0, {}, (pages - 1) * page));

    const sync_point uploaded[] = {dev().upload(ops, {}, {}, transfer_path::queue)};
    const sync_point launched = slow_add(*src, *dst, n, 0, uploaded, (pages - 1) * page);
    dev().wait(launched);
    EXPECT_TRUE(dev().reached(uploaded[0])) << "the kernel finished before the upload it waited for";
    const std::vector<std::uint32_t> got = get<std::uint32_t>(*dst, 0, n);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], host[(pages - 1) * page / word + i] + i) << i;
}

TEST_P(backend_contract, an_upload_waits_for_a_running_kernel_that_reads_it) {
    // The kernel reads `in` only at its end; the upload overwrites `in` and
    // names the launch in wait_for. On the CPU path it blocks for it.
    const std::uint32_t n = 64 * 1024;
    auto in = dev().create_mirror(n * word);
    auto out = dev().create_mirror(n * word);
    std::vector<std::uint32_t> before(n), after(n, 0xDEADBEEFu), second(n / 2);
    for (std::uint32_t i = 0; i < n; ++i) before[i] = i * 7u;
    for (std::uint32_t i = 0; i < n / 2; ++i) second[i] = i ^ 0x13579BDFu;
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        dev().wait(put(*in, 0, before));
        const sync_point launched[] = {slow_add(*in, *out, n, slow_rounds)};
        const sync_point overwritten = put(*in, 0, after, launched, path);
        if (path == transfer_path::cpu) {
            EXPECT_TRUE(overwritten.empty()) << "a CPU upload is complete on return";
        }
        dev().wait(overwritten);
        EXPECT_TRUE(dev().reached(launched[0])) << "the upload ran before the launch it waited for";
        const std::vector<std::uint32_t> got = get<std::uint32_t>(*out, 0, n, launched, path);
        for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], before[i] + lcg(i, slow_rounds)) << i;
        EXPECT_EQ(get<std::uint32_t>(*in, 0, n, {}, path), after);

        // A kernel reading the first half while the second half is replaced,
        // waiting for nothing: neither disturbs the other.
        const sync_point half[] = {slow_add(*in, *out, n / 2, slow_rounds)};
        dev().wait(put(*in, n / 2 * word, second, {}, path));
        const std::vector<std::uint32_t> first_half = get<std::uint32_t>(*out, 0, n / 2, half, path);
        for (std::uint32_t i = 0; i < n / 2; ++i) ASSERT_EQ(first_half[i], after[i] + lcg(i, slow_rounds)) << i;
        EXPECT_EQ(get<std::uint32_t>(*in, n / 2 * word, n / 2, {}, path), second);
    }
}

TEST_P(backend_contract, a_download_waits_for_a_running_kernel_that_writes_it) {
    // The kernel writes `out` at its end; the download names it in wait_for
    // and is not preceded by a host wait: wait_for is the only dependency.
    const std::uint32_t n = 64 * 1024;
    auto in = dev().create_mirror(n * word);
    auto out = dev().create_mirror(n * word);
    std::vector<std::uint32_t> data(n);
    for (std::uint32_t i = 0; i < n; ++i) data[i] = i * 3u;
    dev().wait(put(*in, 0, data));
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        const fill_op clear{out.get(), 0, n * word};
        dev().wait(dev().upload({}, {&clear, 1}, {}, path));
        const std::uint32_t rounds = slow_rounds + (path == transfer_path::cpu ? 1 : 0);
        const sync_point launched[] = {slow_add(*in, *out, n, rounds)};
        const std::vector<std::uint32_t> got = get<std::uint32_t>(*out, 0, n, launched, path);
        EXPECT_TRUE(dev().reached(launched[0]));
        for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], data[i] + lcg(i, rounds)) << i;
    }
}

/* --- CPU copies ------------------------------------------------------------------------------------ */

TEST_P(backend_contract, cpu_copies_and_kernels_see_each_others_writes) {
    USM_REQUIRE(dev().properties().cpu_copies, "no CPU copies");
    // Rounds of: the host writes a random range (CPU upload), two kernels add
    // one to it with no wait_for (the upload is complete), the host reads it
    // back after the second (CPU download).
    const std::size_t size = 64 * page;
    auto m = dev().create_mirror(size);
    std::mt19937 rng(5);
    for (int round = 0; round < 40; ++round) {
        const auto first = static_cast<std::uint32_t>(rng() % (size / word / 2));
        const auto count = static_cast<std::uint32_t>(rng() % (size / word - first - 64) + 64) / 64 * 64;
        std::vector<std::uint32_t> data(count);
        for (auto& v : data) v = static_cast<std::uint32_t>(rng());
        ASSERT_TRUE(put(*m, first * word, data, {}, transfer_path::cpu).empty()) << "round " << round;
        increment(*m, first * word, count);
        const sync_point second[] = {increment(*m, first * word, count)};
        const std::vector<std::uint32_t> got = get<std::uint32_t>(*m, first * word, count, second, transfer_path::cpu);
        for (std::uint32_t i = 0; i < count; ++i)
            ASSERT_EQ(got[i], data[i] + 2u) << "round " << round << ", word " << first + i;
    }
}

TEST_P(backend_contract, cpu_copies_stay_ordered_with_queued_transfers) {
    USM_REQUIRE(dev().properties().cpu_copies, "no CPU copies");
    std::mt19937 rng(77);
    const std::size_t size = 1 * MiB;
    auto m = dev().create_mirror(size);
    std::vector<std::byte> model = random_bytes(rng, size);

    // 1 MiB through the queue, not waited for: a CPU batch after it lands
    // after it (write after write).
    const upload_op whole{m.get(), 0, model.data(), size};
    EXPECT_FALSE(dev().upload({&whole, 1}, {}, {}, transfer_path::queue).empty());
    std::vector<std::vector<std::byte>> sources;
    std::vector<upload_op> ops;
    for (std::size_t offset = 5; offset < 128 * KiB;) {
        const std::size_t length = std::min<std::size_t>(rng() % 5000 + 1, 128 * KiB - offset);
        sources.push_back(random_bytes(rng, length));
        std::memcpy(model.data() + offset, sources.back().data(), length);
        ops.push_back({m.get(), offset, sources.back().data(), length});
        offset += length + rng() % 3;  // some gaps
    }
    std::shuffle(ops.begin(), ops.end(), rng);
    const fill_op zero{m.get(), 130 * KiB + 3, 10 * KiB + 1};
    std::memset(model.data() + zero.offset, 0, zero.bytes);
    EXPECT_TRUE(dev().upload(ops, {&zero, 1}, {}, transfer_path::cpu).empty());

    // 512 KiB through the queue; a CPU download right after it, waiting for
    // nothing, sees it (read after write).
    sources.push_back(random_bytes(rng, 512 * KiB));
    std::memcpy(model.data() + 512 * KiB, sources.back().data(), 512 * KiB);
    const upload_op big{m.get(), 512 * KiB, sources.back().data(), 512 * KiB};
    EXPECT_FALSE(dev().upload({&big, 1}, {}, {}, transfer_path::queue).empty());
    std::vector<std::byte> back(size, std::byte{0x5a});
    const download_op tail{m.get(), size - 64 * KiB - 3, back.data() + (size - 64 * KiB - 3), 64 * KiB + 3};
    dev().download({&tail, 1}, {}, transfer_path::cpu);
    EXPECT_EQ(std::memcmp(back.data() + tail.offset, model.data() + tail.offset, tail.bytes), 0);

    // The whole mirror back through the queue, then in CPU reads of a page,
    // then of 3 pages at odd offsets, 16 to a batch.
    const download_op all{m.get(), 0, back.data(), size};
    dev().download({&all, 1}, {}, transfer_path::queue);
    ASSERT_EQ(std::memcmp(back.data(), model.data(), size), 0);
    std::vector<std::byte> pages(size, std::byte{0x5a});
    for (std::size_t offset = 0; offset < size; offset += page) {
        const download_op one{m.get(), offset, pages.data() + offset, page};
        dev().download({&one, 1}, {}, transfer_path::cpu);
    }
    ASSERT_EQ(std::memcmp(pages.data(), model.data(), size), 0);
    std::vector<download_op> reads;
    std::vector<std::byte> odd(size, std::byte{0x5a});
    for (std::size_t offset = 7; offset + 3 * page <= size; offset += 3 * page)
        reads.push_back({m.get(), offset, odd.data() + offset, 3 * page});
    for (std::size_t first = 0; first < reads.size(); first += 16)
        dev().download(std::span(reads).subspan(first, std::min<std::size_t>(16, reads.size() - first)), {},
                       transfer_path::cpu);
    for (const download_op& r : reads)
        ASSERT_EQ(std::memcmp(odd.data() + r.offset, model.data() + r.offset, r.bytes), 0) << r.offset;

    // A CPU upload, then a queued download: it sees the CPU's bytes.
    const std::vector<std::uint32_t> marks(1024, 0xC0FFEEu);
    EXPECT_TRUE(put(*m, 300 * KiB, marks, {}, transfer_path::cpu).empty());
    EXPECT_EQ(get<std::uint32_t>(*m, 300 * KiB, marks.size()), marks);
}

/* --- sync points ------------------------------------------------------------------------------------- */

TEST_P(backend_contract, unknown_sync_points_are_refused_everywhere) {
    EXPECT_TRUE(dev().reached({}));
    dev().wait({});
    const sync_point unknown_queue{7, 1};
    const sync_point never_issued[] = {{0, std::uint64_t{1} << 60}, {1, std::uint64_t{1} << 60}};
    EXPECT_EQ(expect_error([&] { (void)dev().reached(unknown_queue); }).kind(), errc::invalid_argument);
    EXPECT_EQ(expect_error([&] { dev().wait(unknown_queue); }).kind(), errc::invalid_argument);
    for (const sync_point& p : never_issued) {
        EXPECT_EQ(expect_error([&] { (void)dev().reached(p); }).kind(), errc::invalid_argument) << p.queue;
        EXPECT_EQ(expect_error([&] { dev().wait(p); }).kind(), errc::invalid_argument) << p.queue;
    }
    auto m = dev().create_mirror(page);
    std::vector<std::byte> data(64, std::byte{1});
    const upload_op up{m.get(), 0, data.data(), data.size()};
    const download_op down{m.get(), 0, data.data(), data.size()};
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        const sync_point waits[] = {unknown_queue};
        EXPECT_EQ(expect_error([&] { dev().upload({&up, 1}, {}, waits, path); }).kind(), errc::invalid_argument);
        EXPECT_EQ(expect_error([&] { dev().upload({}, {}, waits, path); }).kind(), errc::invalid_argument);
        EXPECT_EQ(expect_error([&] { dev().download({&down, 1}, waits, path); }).kind(), errc::invalid_argument);
        EXPECT_EQ(expect_error([&] { dev().upload({&up, 1}, {}, never_issued, path); }).kind(), errc::invalid_argument);
    }
    EXPECT_EQ(expect_error([&] { increment(*m, 0, 16, never_issued); }).kind(), errc::invalid_argument);
}

TEST_P(backend_contract, an_empty_upload_joins_its_waits_and_is_empty_once_they_are_reached) {
    EXPECT_TRUE(dev().upload({}, {}, {}, transfer_path::queue).empty());
    const std::uint32_t n = 64 * 1024;
    auto in = dev().create_mirror(n * word);
    auto out = dev().create_mirror(n * word);
    auto side = dev().create_mirror(n * word);
    for (const transfer_path path : paths()) {
        SCOPED_TRACE(path_name(path));
        // A point on each queue, the kernel still running: the empty batch
        // returns a point after both.
        const sync_point launched = slow_add(*in, *out, n, slow_rounds);
        const std::vector<std::uint32_t> ones(n, 1);
        const sync_point copied = put(*side, 0, ones, {}, transfer_path::queue);
        const sync_point both[] = {launched, copied};
        const sync_point joined = dev().upload({}, {}, both, path);
        EXPECT_TRUE(!joined.empty() || (dev().reached(launched) && dev().reached(copied)));
        dev().wait(joined);
        EXPECT_TRUE(dev().reached(launched));
        EXPECT_TRUE(dev().reached(copied));
        // Once reached, nothing is left to wait for.
        EXPECT_TRUE(dev().upload({}, {}, both, path).empty());
        const sync_point only_launch[] = {launched, {}};
        EXPECT_TRUE(dev().upload({}, {}, only_launch, path).empty());
        dev().download({}, both, path);
    }
}

/* --- threads ----------------------------------------------------------------------------------------- */

TEST_P(backend_contract, waits_from_another_thread_while_the_main_thread_submits) {
    const std::uint32_t n = 64 * 1024;  // enough work per launch for the threads to overlap
    const int launches = 300;
    auto counters = dev().create_mirror(n * word);
    auto side = dev().create_mirror(64 * page);
    dev().wait(put(*counters, 0, std::vector<std::uint32_t>(n, 0)));
    std::vector<std::uint32_t> side_data(64 * page / word);
    for (std::size_t i = 0; i < side_data.size(); ++i) side_data[i] = static_cast<std::uint32_t>(i);
    (void)kernel(USM_TEST_KERNEL(test_increment));  // built before the race starts

    std::mutex lock;
    std::vector<sync_point> issued;  // in submission order, both queues
    std::atomic<bool> finished{false};
    std::atomic<int> waits{0}, failures{0};
    std::thread waiter([&] {
        // Waits come without any lock of the caller (the contract).
        std::mt19937 rng(11);
        while (!finished.load() || waits.load() == 0) {
            std::vector<sync_point> seen;
            {
                std::lock_guard guard(lock);
                seen = issued;
            }
            if (seen.empty()) {
                std::this_thread::yield();
                continue;
            }
            try {
                // Mostly recent points, which are likely still pending.
                const std::size_t recent = std::min<std::size_t>(seen.size(), 8);
                const sync_point target =
                    rng() % 4 == 0 ? seen[rng() % seen.size()] : seen[seen.size() - 1 - rng() % recent];
                if (rng() % 2 == 0) {
                    dev().wait(target);
                    ++waits;
                    if (!dev().reached(target)) ++failures;
                    // In order: every earlier point of that queue is reached too.
                    for (const sync_point& p : seen)
                        if (p.queue == target.queue && p.value < target.value && !dev().reached(p)) ++failures;
                } else {
                    (void)dev().reached(target);
                }
            } catch (const std::exception& e) {
                ADD_FAILURE() << "waiter: " << e.what();
                ++failures;
                return;
            }
        }
    });
    for (int i = 0; i < launches; ++i) {
        const sync_point launched = increment(*counters, 0, n);
        {
            std::lock_guard guard(lock);
            issued.push_back(launched);
        }
        if (i % 10 == 0) {
            const upload_op op{side.get(), static_cast<std::size_t>(i / 10 % 64) * page, bytes_of(side_data), page};
            const sync_point after[] = {launched};
            const sync_point uploaded = dev().upload({&op, 1}, {}, after, transfer_path::queue);
            std::lock_guard guard(lock);
            issued.push_back(uploaded);
        }
        // Paced, so the waiter's calls overlap with submissions.
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    finished = true;
    waiter.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(waits.load(), 0);
    const sync_point last[] = {issued.back()};
    EXPECT_EQ(get<std::uint32_t>(*counters, 0, n, last),
              std::vector<std::uint32_t>(n, static_cast<std::uint32_t>(launches)));
    dev().wait_idle();
    for (const sync_point& p : issued) EXPECT_TRUE(dev().reached(p));
}

TEST_P(backend_contract, builds_run_while_another_thread_launches) {
    const std::uint32_t n = 4096;
    auto counters = dev().create_mirror(n * word);
    dev().wait(put(*counters, 0, std::vector<std::uint32_t>(n, 0)));
    (void)kernel(USM_TEST_KERNEL(test_increment));  // built before the race starts

    std::vector<std::unique_ptr<compiled_kernel>> built(3);
    std::atomic<bool> builder_done{false};
    std::thread builder([&] {
        try {
            // Other options on OpenCL: other programs, even with a kernel cache.
            built[0] = build(dev(), USM_TEST_KERNEL(saxpy), "-DUSM_VARIANT=1");
            built[1] = build(dev(), USM_TEST_KERNEL(heat2d), "-DUSM_VARIANT=2 -cl-mad-enable");
            built[2] = build(dev(), USM_TEST_KERNEL(test_increment), "-DUSM_VARIANT=3");
        } catch (const std::exception& e) {
            ADD_FAILURE() << "builder: " << e.what();
        }
        builder_done = true;
    });
    int launches = 0;
    sync_point last;
    do {
        last = increment(*counters, 0, n);
        ++launches;
    } while (launches < 20 || !builder_done.load());
    builder.join();
    ASSERT_TRUE(built[0] && built[1] && built[2]);
    // The kernel built meanwhile works like the other.
    const bound_arg args[] = {memory(*counters, 0, n * word, access::read_write), value(n)};
    const sync_point after[] = {last};
    const sync_point done[] = {dev().launch(*built[2], {n / 64, 1, 1}, {64, 1, 1}, args, after)};
    EXPECT_EQ(get<std::uint32_t>(*counters, 0, n, done),
              std::vector<std::uint32_t>(n, static_cast<std::uint32_t>(launches + 1)));
}

/* --- kernel builds ---------------------------------------------------------------------------------------- */

TEST_P(backend_contract, kernel_build_errors_carry_the_drivers_log) {
    usm::error e =
        vulkan() ? expect_error([&] {
            // The id bound: every id above it is now invalid.
            std::vector<std::uint32_t> words(usm::kernels::saxpy_comp.begin(), usm::kernels::saxpy_comp.end());
            words[3] = 5;
            dev().build_spirv(words, "main");
        })
                 : expect_error([&] {
                       dev().build_opencl_c("__kernel void broken(__global int* p) {\n    p[0] = undeclared_name;\n}\n",
                                            "", "broken");
                   });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_TRUE(contains(e.what(), dev().properties().name));
    // The validator's or the compiler's own words.
    if (vulkan()) {
        EXPECT_TRUE(contains(e.what(), "spirv-val"));
        EXPECT_TRUE(contains(e.what(), "ID bound"));
    } else {
        EXPECT_TRUE(contains(e.what(), "clBuildProgram"));
        EXPECT_TRUE(contains_regex(e.what(), "error:.*undeclared_name"));
    }
    // Nothing to build is a build failure too.
    e = vulkan() ? expect_error([&] { dev().build_spirv({}, "main"); })
                 : expect_error([&] { dev().build_opencl_c("", "", "main"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
}

TEST_P(backend_contract, an_unknown_entry_point_is_named_with_the_ones_the_kernel_has) {
    // The OpenCL program has a second kernel, so the list shows more than the
    // name asked for.
    const std::string source =
        std::string(usm::kernels::saxpy_cl) + "\n__kernel void second(__global int* p) { p[0] = 1; }\n";
    const usm::error e = expect_error([&] {
        if (vulkan())
            dev().build_spirv(usm::kernels::saxpy_comp, "saxpy_typo");
        else
            dev().build_opencl_c(source, "", "saxpy_typo");
    });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_TRUE(contains(e.what(), "'saxpy_typo'"));
    EXPECT_TRUE(contains(e.what(), vulkan() ? "'main'" : "second"));
}

TEST_P(backend_contract, the_other_kernel_language_is_unsupported) {
    const usm::error e =
        vulkan() ? expect_error([&] { dev().build_opencl_c("__kernel void k() {}", "", "k"); }) : expect_error([&] {
            const std::uint32_t words[] = {0x07230203u, 0x00010500u, 0u, 1u, 0u};
            dev().build_spirv(words, "main");
        });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), vulkan() ? "SPIR-V" : "OpenCL C"));
}

INSTANTIATE_TEST_SUITE_P(backends, backend_contract, testing::Values("vulkan", "opencl"), usm_test::backend_name);

}  // namespace
}  // namespace usm_test::backend
