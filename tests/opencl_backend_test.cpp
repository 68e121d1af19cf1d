// tests/opencl_backend_test.cpp - the OpenCL backend, driven directly through
// the backend contract (core/device_interface.hpp), on PoCL or a real GPU.
//
// The driver comes from the backend table (backends/registry.cpp), as the core
// loads it; the first usable device is opened once for the whole suite.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <kernels/heat2d_cl.hpp>
#include <kernels/saxpy_cl.hpp>
#include <kernels/test_cl_add_one_cl.hpp>
#include <kernels/test_cl_slow_add_cl.hpp>
#include <kernels/test_cl_values_cl.hpp>

#include "backends/opencl/opencl_requirements.hpp"
#include "core/device_interface.hpp"
#include "usm/error.hpp"

namespace usm::detail {
namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
constexpr std::size_t word = 4;  // bytes of a float or a uint32_t
// Raw OpenCL statuses as driver_result() reports them (this test includes no
// OpenCL header).
constexpr long long cl_build_program_failure = -11;
constexpr long long cl_invalid_kernel_name = -46;

/* --- helpers ------------------------------------------------------------ */

std::shared_ptr<driver> load_opencl(std::string& why_not) {
    for (const backend_entry& entry : registered_backends())
        if (entry.kind == usm::backend::opencl) return entry.load(why_not);
    why_not = "the OpenCL backend is not in the backend table";
    return nullptr;
}

bound_arg memory(device_mirror& mirror, std::size_t offset, std::size_t bytes, access mode) {
    bound_arg arg;
    arg.what = launch_arg::kind::memory;
    arg.mirror = &mirror;
    arg.offset = offset;
    arg.bytes = bytes;
    arg.mode = mode;
    return arg;
}

template <class T>
bound_arg value(const T& v) {
    bound_arg arg;
    arg.what = launch_arg::kind::value;
    arg.value = &v;
    arg.size = sizeof(T);
    arg.align = alignof(T);
    return arg;
}

// Runs `call` and returns the usm::error it throws (fails the test if none).
template <class Call>
usm::error expect_error(Call&& call) {
    try {
        call();
    } catch (const usm::error& e) {
        return e;
    }
    ADD_FAILURE() << "expected a usm::error";
    return usm::error(errc::invalid_argument, "(nothing was thrown)");
}

// "message contains part", reporting the whole message when it does not.
::testing::AssertionResult contains(const std::string& message, const std::string& part) {
    if (message.find(part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << part << "\" is not in: " << message;
}
::testing::AssertionResult contains_regex(const std::string& message, const std::string& pattern) {
    if (std::regex_search(message, std::regex(pattern))) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "/" << pattern << "/ does not match: " << message;
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
    return std::as_bytes(std::span(v));
}

// The lcg of test_cl_slow_add.cl, applied `rounds` times to `v`.
std::uint32_t lcg(std::uint32_t v, std::uint32_t rounds) {
    for (std::uint32_t r = 0; r < rounds; ++r) v = v * 1664525u + 1013904223u;
    return v;
}

// Host memory as usm holds it: one memfd mapped MAP_SHARED twice, the
// application's view and usm's alias. import_host gets the alias; the test
// reads and writes through the view, so what the kernel does must reach the
// memfd's pages, not a private copy.
class shared_memory {
public:
    explicit shared_memory(std::size_t bytes) : m_bytes(bytes) {
        m_fd = memfd_create("usm-opencl-backend-test", MFD_CLOEXEC);
        if (m_fd < 0 || ftruncate(m_fd, static_cast<off_t>(bytes)) != 0) return;
        m_view = map();
        m_alias = map();
    }
    ~shared_memory() {
        if (m_view != nullptr) munmap(m_view, m_bytes);
        if (m_alias != nullptr) munmap(m_alias, m_bytes);
        if (m_fd >= 0) close(m_fd);
    }
    shared_memory(const shared_memory&) = delete;
    shared_memory& operator=(const shared_memory&) = delete;

    bool ok() const noexcept { return m_view != nullptr && m_alias != nullptr; }
    std::byte* alias(std::size_t offset = 0) const noexcept { return m_alias + offset; }
    // The view as 32-bit words, from byte `offset`.
    std::uint32_t* words(std::size_t offset = 0) const noexcept {
        return reinterpret_cast<std::uint32_t*>(m_view + offset);
    }

private:
    std::byte* map() const {
        void* p = mmap(nullptr, m_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m_fd, 0);
        return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
    }
    std::size_t m_bytes;
    int m_fd = -1;
    std::byte* m_view = nullptr;
    std::byte* m_alias = nullptr;
};

/* --- fixture ------------------------------------------------------------ */

class opencl_backend : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string why_not;
        s_driver = load_opencl(why_not);
        ASSERT_NE(s_driver, nullptr) << "no OpenCL driver: " << why_not;
        const auto& candidates = s_driver->candidates();
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            if (!candidates[i].rejected_because.empty()) continue;
            s_index = i;
            // The suite's device takes the transfer queue for every batch
            // (CPU copies off) unless the environment asks otherwise; the
            // CPU-copy tests below open a device of their own.
            s_device = open_with_cpu_copy_max(std::getenv("USM_CPU_COPY_MAX") != nullptr ? keep_environment : "0");
            break;
        }
        ASSERT_NE(s_device, nullptr) << "no usable OpenCL device among " << candidates.size() << " candidates";
    }
    static void TearDownTestSuite() {
        s_saxpy.reset();
        s_slow_add.reset();
        s_add_one.reset();
        s_device.reset();
        s_driver.reset();
    }
    void SetUp() override {
        if (s_device == nullptr) GTEST_SKIP() << "no device (see SetUpTestSuite's failure)";
    }

    device_backend& dev() { return *s_device; }

    // Opens the suite's device again with USM_CPU_COPY_MAX set to `limit`
    // (null: unset, the default), leaving the environment as it found it.
    static constexpr const char* keep_environment = "(keep)";
    static std::unique_ptr<device_backend> open_with_cpu_copy_max(const char* limit) {
        if (limit == keep_environment) return s_driver->open(s_index);
        const char* before = std::getenv("USM_CPU_COPY_MAX");
        const std::optional<std::string> saved = before != nullptr ? std::optional<std::string>(before) : std::nullopt;
        if (limit != nullptr)
            ::setenv("USM_CPU_COPY_MAX", limit, 1);
        else
            ::unsetenv("USM_CPU_COPY_MAX");
        const auto restore = [&] {
            if (saved)
                ::setenv("USM_CPU_COPY_MAX", saved->c_str(), 1);
            else
                ::unsetenv("USM_CPU_COPY_MAX");
        };
        std::unique_ptr<device_backend> opened;
        try {
            opened = s_driver->open(s_index);
        } catch (...) {
            restore();
            throw;
        }
        restore();
        return opened;
    }

    compiled_kernel& saxpy() {
        if (!s_saxpy) s_saxpy = dev().build_opencl_c(kernels::saxpy_cl, "", "saxpy");
        return *s_saxpy;
    }
    compiled_kernel& slow_add() {
        if (!s_slow_add) s_slow_add = dev().build_opencl_c(kernels::test_cl_slow_add_cl, "", "test_cl_slow_add");
        return *s_slow_add;
    }
    compiled_kernel& add_one() {
        if (!s_add_one) s_add_one = dev().build_opencl_c(kernels::test_cl_add_one_cl, "", "test_cl_add_one");
        return *s_add_one;
    }

    // Uploads `data` to `mirror` at `offset` and waits for it.
    void put(device_mirror& mirror, std::size_t offset, std::span<const std::byte> data) {
        const upload_op op{&mirror, offset, data.data(), data.size()};
        dev().wait(dev().upload({&op, 1}, {}, {}));
    }
    template <class T>
    void put(device_mirror& mirror, std::size_t offset, const std::vector<T>& data) {
        put(mirror, offset, bytes_of(data));
    }
    // Downloads `count` elements of T from `mirror` at `offset`.
    template <class T = std::byte>
    std::vector<T> get(device_mirror& mirror, std::size_t offset, std::size_t count,
                       std::span<const sync_point> wait_for = {}) {
        std::vector<T> out(count);
        const download_op op{&mirror, offset, reinterpret_cast<std::byte*>(out.data()), count * sizeof(T)};
        dev().download({&op, 1}, wait_for);
        return out;
    }

    static inline std::shared_ptr<driver> s_driver;
    static inline std::unique_ptr<device_backend> s_device;
    static inline std::size_t s_index = 0;
    static inline std::unique_ptr<compiled_kernel> s_saxpy, s_slow_add, s_add_one;
};

/* --- driver and device ------------------------------------------------------ */

TEST_F(opencl_backend, offers_devices_and_describes_the_opened_one) {
    const device_properties& p = dev().properties();
    EXPECT_EQ(p.backend, usm::backend::opencl);
    EXPECT_EQ(p.name, s_driver->candidates()[s_index].name);
    EXPECT_FALSE(p.name.empty());
    EXPECT_FALSE(p.driver.empty());
    EXPECT_GT(p.memory_bytes, 0u);
    EXPECT_GT(p.max_allocation, 0u);
    EXPECT_LE(p.max_allocation, p.memory_bytes);
    EXPECT_FALSE(p.dedicated_transfer_queue);
    if (p.driver.find("PoCL") != std::string::npos) {
        // PoCL's pthread device is the CPU: its memory is host memory.
        EXPECT_TRUE(p.host_addressable);
        // ... and its kernels use CL_MEM_USE_HOST_PTR memory at the host pointer.
        EXPECT_TRUE(p.host_memory_in_place);
        EXPECT_TRUE(contains_regex(p.driver, "PoCL [0-9]+\\.[0-9]+.*"));
    }
}

TEST_F(opencl_backend, opening_an_unknown_candidate_fails) {
    const usm::error e = expect_error([&] { s_driver->open(s_driver->candidates().size()); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
}

TEST(opencl_requirements, reject_old_versions_missing_svm_and_no_compiler) {
    using opencl::rejection_reason;
    EXPECT_EQ(opencl::parse_opencl_version("OpenCL 3.0 PoCL HSTR: pthread-x86_64"), 300);
    EXPECT_EQ(opencl::parse_opencl_version("OpenCL 1.2 CUDA"), 102);
    EXPECT_EQ(opencl::parse_opencl_version("OpenCL C 1.2"), 0);
    EXPECT_EQ(opencl::parse_opencl_version(""), 0);

    EXPECT_EQ(rejection_reason({"OpenCL 3.0 PoCL", true, true, true}), "");
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 1.2 CUDA", true, true, true}), "OpenCL 2.0"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 1.2 CUDA", true, true, true}), "OpenCL 1.2 CUDA"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 3.0 ", false, true, true}), "CL_DEVICE_SVM_COARSE_GRAIN_BUFFER"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 3.0 ", true, false, true}), "unavailable"));
    EXPECT_TRUE(contains(rejection_reason({"OpenCL 3.0 ", true, true, false}), "compiler"));
}

/* --- mirrors and transfers -------------------------------------------------- */

TEST_F(opencl_backend, mirror_larger_than_the_largest_buffer_is_unsupported) {
    const std::uint64_t max = dev().properties().max_allocation;
    const std::uint64_t asked = max + page;
    const usm::error e = expect_error([&] { dev().create_mirror(asked); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), std::to_string(asked)));
    EXPECT_TRUE(contains(e.what(), std::to_string(max)));
    EXPECT_TRUE(contains(e.what(), dev().properties().name));
}

TEST_F(opencl_backend, upload_then_download_round_trips_bytes_exactly) {
    std::mt19937 random(1234);
    const std::array<std::size_t, 3> sizes = {3 * page, 8 * page, page};
    std::vector<std::unique_ptr<device_mirror>> mirrors;
    std::vector<std::vector<std::byte>> model;  // what each mirror must hold
    for (std::size_t s : sizes) {
        mirrors.push_back(dev().create_mirror(s));
        ASSERT_EQ(mirrors.back()->bytes(), s);
        model.emplace_back(s);
        for (auto& b : model.back()) b = std::byte(random());
    }
    // Round 0 writes every byte, so the model is known everywhere.
    {
        std::vector<upload_op> ops;
        for (std::size_t m = 0; m < mirrors.size(); ++m)
            ops.push_back({mirrors[m].get(), 0, model[m].data(), model[m].size()});
        dev().wait(dev().upload(ops, {}, {}));
    }
    for (int round = 0; round < 25; ++round) {
        // Sources stay alive (and unchanged) until the download below, which
        // follows the upload on the in-order transfer queue.
        std::vector<std::vector<std::byte>> sources;
        std::vector<upload_op> ops;
        for (std::size_t m = 0; m < mirrors.size(); ++m) {
            // Disjoint ranges from a random start: some adjacent on both sides
            // (one host buffer split in two ops), some with gaps.
            std::size_t offset = random() % 97 + 1;
            while (offset < sizes[m]) {
                const std::size_t length = std::min<std::size_t>(random() % 3000 + 1, sizes[m] - offset);
                const bool skip = random() % 4 == 0;
                if (!skip) {
                    sources.emplace_back(length);
                    for (auto& b : sources.back()) b = std::byte(random());
                    std::vector<std::byte>& src = sources.back();
                    const std::size_t split = length > 1 && random() % 2 == 0 ? length / 2 : length;
                    ops.push_back({mirrors[m].get(), offset, src.data(), split});
                    if (split < length)
                        ops.push_back({mirrors[m].get(), offset + split, src.data() + split, length - split});
                    std::memcpy(model[m].data() + offset, src.data(), length);
                }
                offset += length;
            }
        }
        std::shuffle(ops.begin(), ops.end(), random);
        const sync_point uploaded = dev().upload(ops, {}, {});
        EXPECT_FALSE(uploaded.empty());

        // One download batch with several ops per mirror, at odd offsets.
        std::vector<std::vector<std::byte>> pieces;
        std::vector<download_op> downs;
        std::vector<std::pair<std::size_t, std::size_t>> where;  // (mirror, offset) of each piece
        for (std::size_t m = 0; m < mirrors.size(); ++m) {
            for (int k = 0; k < 4; ++k) {
                const std::size_t offset = random() % (sizes[m] - 1);
                const std::size_t length = random() % (sizes[m] - offset) + 1;
                pieces.emplace_back(length);
                where.emplace_back(m, offset);
            }
        }
        for (std::size_t i = 0; i < pieces.size(); ++i)
            downs.push_back({mirrors[where[i].first].get(), where[i].second, pieces[i].data(), pieces[i].size()});
        dev().download(downs, {});
        EXPECT_TRUE(dev().reached(uploaded));
        for (std::size_t i = 0; i < pieces.size(); ++i) {
            const auto [m, offset] = where[i];
            ASSERT_EQ(0, std::memcmp(pieces[i].data(), model[m].data() + offset, pieces[i].size()))
                << "round " << round << ", mirror " << m << ", offset " << offset << ", " << pieces[i].size()
                << " bytes";
        }
    }
    // And each mirror whole, with its bytes exactly as the model says.
    for (std::size_t m = 0; m < mirrors.size(); ++m) EXPECT_EQ(get(*mirrors[m], 0, sizes[m]), model[m]) << m;
}

TEST_F(opencl_backend, fill_zero_clears_exactly_its_ranges) {
    const std::size_t size = 6 * page;
    auto mirror = dev().create_mirror(size);
    std::vector<std::byte> model(size, std::byte{0xAB});
    put(*mirror, 0, model);

    // Odd and aligned offsets and sizes, next to a copy in the same batch.
    const std::vector<fill_op> fills = {{mirror.get(), 3, 5},
                                        {mirror.get(), 100, 128},
                                        {mirror.get(), page, 2 * page},
                                        {mirror.get(), 3 * page + 1, page - 2},
                                        {mirror.get(), size - 7, 7}};
    const std::vector<std::byte> copied(300, std::byte{0x5C});
    const upload_op copy{mirror.get(), 5 * page, copied.data(), copied.size()};
    for (const fill_op& f : fills)
        std::fill_n(model.begin() + static_cast<std::ptrdiff_t>(f.offset), f.bytes, std::byte{0});
    std::copy(copied.begin(), copied.end(), model.begin() + 5 * page);

    const sync_point done = dev().upload({&copy, 1}, fills, {});
    dev().wait(done);
    EXPECT_TRUE(dev().reached(done));
    EXPECT_EQ(get(*mirror, 0, size), model);
}

TEST_F(opencl_backend, empty_upload_is_reached_and_follows_its_waits) {
    EXPECT_TRUE(dev().upload({}, {}, {}).empty());
    EXPECT_TRUE(dev().reached(sync_point{}));
    dev().wait(sync_point{});

    // An empty batch that waits for a launch still running must return a
    // point that follows it.
    const std::uint32_t n = 16 * 1024, rounds = 20000;
    auto in = dev().create_mirror(n * word);
    auto out = dev().create_mirror(n * word);
    const sync_point launched =
        dev().launch(slow_add(), {n / 64}, {64},
                     std::array{memory(*in, 0, n * word, access::read), memory(*out, 0, n * word, access::write),
                                value(n), value(rounds)},
                     {});
    const sync_point joined = dev().upload({}, {}, std::array{launched});
    // Empty only if the launch was already reached (it takes a few hundred
    // milliseconds, so in practice this is the marker path).
    EXPECT_TRUE(!joined.empty() || dev().reached(launched));
    dev().wait(joined);
    EXPECT_TRUE(dev().reached(launched));
    // Once the launch is reached, nothing is left to wait for.
    EXPECT_TRUE(dev().upload({}, {}, std::array{launched}).empty());
}

TEST_F(opencl_backend, transfers_outside_the_mirror_are_rejected) {
    auto mirror = dev().create_mirror(page);
    std::vector<std::byte> data(16);
    const upload_op past{mirror.get(), page - 8, data.data(), 16};
    EXPECT_EQ(expect_error([&] { dev().upload({&past, 1}, {}, {}); }).kind(), errc::out_of_range);
    const fill_op fill_past{mirror.get(), page, 1};
    EXPECT_EQ(expect_error([&] { dev().upload({}, {&fill_past, 1}, {}); }).kind(), errc::out_of_range);
    const download_op down_past{mirror.get(), 1, data.data(), page};
    EXPECT_EQ(expect_error([&] { dev().download({&down_past, 1}, {}); }).kind(), errc::out_of_range);
}

TEST_F(opencl_backend, mirrors_of_another_device_are_rejected) {
    auto other = s_driver->open(s_index);
    auto foreign = other->create_mirror(page);
    std::vector<std::byte> data(16);
    const upload_op op{foreign.get(), 0, data.data(), data.size()};
    const usm::error e = expect_error([&] { dev().upload({&op, 1}, {}, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "not created by this device"));
}

/* --- host memory imported in place ----------------------------------------- */

TEST_F(opencl_backend, imported_host_memory_is_read_and_written_in_place) {
    // Four pages imported from the second page of an eight-page memfd, so
    // the pages around the import show that nothing outside it is touched.
    constexpr std::size_t pages = 8, first = 1, imported = 4;
    shared_memory memory_fd(pages * page);
    ASSERT_TRUE(memory_fd.ok());
    constexpr std::size_t words_per_page = page / word;
    constexpr std::size_t all_words = pages * words_per_page;
    std::uint32_t* view = memory_fd.words();
    std::vector<std::uint32_t> model(all_words);
    for (std::size_t i = 0; i < all_words; ++i) model[i] = view[i] = static_cast<std::uint32_t>(i * 2654435761u);
    const auto check_model = [&](const char* when) {
        for (std::size_t i = 0; i < all_words; ++i)
            ASSERT_EQ(view[i], model[i]) << when << ": word " << i << " (page " << i / words_per_page << ")";
    };

    if (!dev().properties().host_memory_in_place) {
        EXPECT_EQ(expect_error([&] { dev().import_host(memory_fd.alias(first * page), imported * page); }).kind(),
                  errc::unsupported);
        return;
    }
    std::unique_ptr<device_mirror> mirror = dev().import_host(memory_fd.alias(first * page), imported * page);
    ASSERT_NE(mirror, nullptr);
    EXPECT_EQ(mirror->bytes(), imported * page);
    const std::size_t base_word = first * words_per_page;  // word 0 of the mirror, in `view`

    // 1. x[i] += 1 over the first two pages of the import, offset 0.
    const std::uint32_t n = 2 * words_per_page;
    dev().wait(dev().launch(add_one(), {n / 64}, {64},
                            std::array{memory(*mirror, 0, n * word, access::read_write), value(n)}, {}));
    for (std::uint32_t i = 0; i < n; ++i) model[base_word + i] += 1;
    check_model("after add_one at offset 0");

    // 2. Host writes made now, through the view, are what the next kernel
    // reads: out[i] = in[i] + lcg^0(i) = in[i] + i, with `in` at an offset
    // that is only a multiple of 4 (no sub-buffer could start there) and
    // `out` on the import's last page.
    const std::size_t in_offset = page + 12, out_offset = 3 * page + 4;
    const std::uint32_t m = 1000, rounds = 0;
    for (std::uint32_t i = 0; i < m; ++i)
        model[base_word + in_offset / word + i] = view[base_word + in_offset / word + i] = 0xA0000000u + i * 5u;
    const sync_point added =
        dev().launch(slow_add(), {(m + 63) / 64}, {64},
                     std::array{memory(*mirror, in_offset, m * word, access::read),
                                memory(*mirror, out_offset, m * word, access::write), value(m), value(rounds)},
                     {});
    dev().wait(added);
    EXPECT_TRUE(dev().reached(added));
    for (std::uint32_t i = 0; i < m; ++i)
        model[base_word + out_offset / word + i] = model[base_word + in_offset / word + i] + i;
    check_model("after slow_add between two interior offsets");

    // 3. The import is not a snapshot taken at the first launch: host writes
    // between launches reach the kernel too, and an imported argument mixes
    // with an SVM mirror's in one launch.
    for (std::uint32_t i = 0; i < m; ++i)
        model[base_word + in_offset / word + i] = view[base_word + in_offset / word + i] = i * 11u;
    auto out = dev().create_mirror(page);
    const sync_point mixed = dev().launch(slow_add(), {(m + 63) / 64}, {64},
                                          std::array{memory(*mirror, in_offset, m * word, access::read),
                                                     memory(*out, 0, m * word, access::write), value(m), value(rounds)},
                                          {});
    const std::vector<std::uint32_t> got = get<std::uint32_t>(*out, 0, m, std::array{mixed});
    for (std::uint32_t i = 0; i < m; ++i) ASSERT_EQ(got[i], i * 11u + i) << "i = " << i;
    check_model("after a launch that only read the import");

    // 4. Releasing the import leaves the host memory as the kernels left it.
    mirror.reset();
    check_model("after the import was destroyed");
}

TEST_F(opencl_backend, import_of_misaligned_or_empty_host_memory_is_refused) {
    if (!dev().properties().host_memory_in_place) GTEST_SKIP() << "no in-place host memory on this device";
    shared_memory memory_fd(4 * page);
    ASSERT_TRUE(memory_fd.ok());
    // 128 bytes into a page: aligned for PoCL (CL_DEVICE_MEM_BASE_ADDR_ALIGN)
    // but not to a page.
    for (std::size_t offset : {std::size_t{4}, std::size_t{128}, page / 2}) {
        const usm::error e = expect_error([&] { dev().import_host(memory_fd.alias(offset), 2 * page); });
        EXPECT_EQ(e.kind(), errc::unsupported) << "offset " << offset;
        EXPECT_TRUE(contains(e.what(), "not a multiple of")) << "offset " << offset;
        EXPECT_TRUE(contains(e.what(), dev().properties().name));
    }
    EXPECT_EQ(expect_error([&] { dev().import_host(memory_fd.alias(), 0); }).kind(), errc::invalid_argument);
    EXPECT_EQ(expect_error([&] { dev().import_host(nullptr, page); }).kind(), errc::invalid_argument);
    const std::uint64_t too_big = dev().properties().max_allocation + page;
    const usm::error e = expect_error([&] { dev().import_host(memory_fd.alias(), too_big); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
}

TEST_F(opencl_backend, transfers_reject_imported_mirrors) {
    if (!dev().properties().host_memory_in_place) GTEST_SKIP() << "no in-place host memory on this device";
    shared_memory memory_fd(2 * page);
    ASSERT_TRUE(memory_fd.ok());
    std::fill_n(memory_fd.words(), 2 * page / word, 0x5A5A5A5Au);
    auto mirror = dev().import_host(memory_fd.alias(), 2 * page);
    auto svm = dev().create_mirror(page);
    std::vector<std::byte> data(64, std::byte{1});

    // Each batch also holds a valid op for an SVM mirror: the whole batch is
    // refused before anything is enqueued.
    const std::array copies = {upload_op{svm.get(), 0, data.data(), data.size()},
                               upload_op{mirror.get(), 0, data.data(), data.size()}};
    usm::error e = expect_error([&] { dev().upload(copies, {}, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "in place"));
    const fill_op fill{mirror.get(), 0, page};
    e = expect_error([&] { dev().upload({}, {&fill, 1}, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "in place"));
    const download_op down{mirror.get(), 0, data.data(), data.size()};
    e = expect_error([&] { dev().download({&down, 1}, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "in place"));

    // Nothing reached the host memory.
    for (std::size_t i = 0; i < 2 * page / word; ++i) ASSERT_EQ(memory_fd.words()[i], 0x5A5A5A5Au) << i;
    // Another device's import is not this device's mirror.
    auto other = s_driver->open(s_index);
    auto foreign = other->import_host(memory_fd.alias(), page);
    const std::uint32_t n = 64;
    e = expect_error([&] {
        dev().launch(add_one(), {1}, {64}, std::array{memory(*foreign, 0, n * word, access::read_write), value(n)}, {});
    });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "not created by this device"));
}

/* --- launches --------------------------------------------------------------- */

TEST_F(opencl_backend, saxpy_on_interior_pointers_is_bit_exact) {
    const std::uint32_t n = 3001;  // not a multiple of the group
    // x starts 4 bytes into one mirror, y 12 bytes into the second page of
    // another: neither is aligned to anything but float.
    const std::size_t x_offset = 4, y_offset = page + 12;
    auto xs = dev().create_mirror(4 * page);
    auto ys = dev().create_mirror(5 * page);
    std::mt19937 random(7);
    std::uniform_real_distribution<float> uniform(-100.0f, 100.0f);
    std::vector<float> x(n), y(n);
    for (auto& v : x) v = uniform(random);
    for (auto& v : y) v = uniform(random);
    // Guards around y: the kernel must write exactly n floats.
    const std::vector<float> guard(3, -7.5f);
    put(*ys, y_offset - 12, guard);
    put(*ys, y_offset + n * word, guard);
    put(*xs, x_offset, x);
    put(*ys, y_offset, y);

    const float a = 1.7f;
    const std::uint32_t groups = (n + 63) / 64;
    const sync_point done =
        dev().launch(saxpy(), {groups}, {64},
                     std::array{memory(*xs, x_offset, n * word, access::read),
                                memory(*ys, y_offset, n * word, access::read_write), value(a), value(n)},
                     {});
    dev().wait(done);
    EXPECT_TRUE(dev().reached(done));
    const std::vector<float> result = get<float>(*ys, y_offset, n);
    for (std::uint32_t i = 0; i < n; ++i) {
        const float product = a * x[i];  // two roundings, as the kernel (FP_CONTRACT OFF)
        const float expected = product + y[i];
        ASSERT_EQ(std::bit_cast<std::uint32_t>(result[i]), std::bit_cast<std::uint32_t>(expected)) << "i = " << i;
    }
    EXPECT_EQ(get<float>(*ys, y_offset - 12, 3), guard);
    EXPECT_EQ(get<float>(*ys, y_offset + n * word, 3), guard);
}

TEST_F(opencl_backend, heat2d_matches_the_cpu_reference) {
    const std::uint32_t n = 70;  // the 8x8 groups overhang the grid
    const float alpha = 0.2f;
    auto grid_in = dev().create_mirror(6 * page);
    auto grid_out = dev().create_mirror(6 * page);
    std::vector<float> in(std::size_t{n} * n);
    std::mt19937 random(3);
    std::uniform_real_distribution<float> uniform(0.0f, 50.0f);
    for (auto& v : in) v = uniform(random);
    put(*grid_in, 0, in);

    auto heat = dev().build_opencl_c(kernels::heat2d_cl, "", "heat2d");
    const std::uint32_t groups = (n + 7) / 8;
    dev().wait(
        dev().launch(*heat, {groups, groups}, {8, 8},
                     std::array{memory(*grid_in, 0, std::size_t{n} * n * word, access::read),
                                memory(*grid_out, 0, std::size_t{n} * n * word, access::write), value(n), value(alpha)},
                     {}));
    const std::vector<float> out = get<float>(*grid_out, 0, std::size_t{n} * n);
    for (std::uint32_t i = 0; i < n; ++i) {
        for (std::uint32_t j = 0; j < n; ++j) {
            const std::size_t c = std::size_t{i} * n + j;
            float expected = in[c];
            if (i != 0 && j != 0 && i != n - 1 && j != n - 1) {
                float sum = in[c - n] + in[c + n];
                sum = sum + in[c - 1];
                sum = sum + in[c + 1];
                const float laplacian = sum - 4.0f * in[c];
                const float step = alpha * laplacian;
                expected = in[c] + step;
            }
            ASSERT_EQ(std::bit_cast<std::uint32_t>(out[c]), std::bit_cast<std::uint32_t>(expected))
                << "row " << i << ", column " << j;
        }
    }
}

TEST_F(opencl_backend, value_arguments_arrive_with_their_exact_bytes) {
    auto kernel = dev().build_opencl_c(kernels::test_cl_values_cl, "", "test_cl_values");
    auto out = dev().create_mirror(page);
    const std::uint64_t a = 0x0123456789ABCDEFull;
    const std::int32_t b = -123456789;
    const float c = -0.1f;
    const std::uint8_t d = 0xC3;
    const std::int16_t e = -2;
    dev().wait(dev().launch(
        *kernel, {1}, {1},
        std::array{memory(*out, 8, 40, access::write), value(a), value(b), value(c), value(d), value(e)}, {}));
    const std::vector<std::uint64_t> got = get<std::uint64_t>(*out, 8, 5);
    EXPECT_EQ(got[0], a);
    EXPECT_EQ(got[1], static_cast<std::uint64_t>(std::int64_t{b}));
    EXPECT_EQ(got[2], std::bit_cast<std::uint32_t>(c));
    EXPECT_EQ(got[3], d);
    EXPECT_EQ(got[4], static_cast<std::uint64_t>(std::int64_t{e}));
}

TEST_F(opencl_backend, launch_waits_for_an_upload_through_wait_for) {
    // A long upload (many commands: the ops skip every other page, so none
    // merge) followed at once by a short kernel that reads its last page.
    const std::size_t pages = 8192;
    auto src = dev().create_mirror(pages * page);
    auto dst = dev().create_mirror(page);
    const std::vector<std::uint32_t> stale(page / 4, 0xFFFFFFFFu);
    put(*src, (pages - 1) * page, stale);

    std::vector<std::uint32_t> host(pages * page / 4);
    for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<std::uint32_t>(i * 2654435761u);
    std::vector<upload_op> ops;
    for (std::size_t p = 1; p < pages; p += 2)
        ops.push_back({src.get(), p * page, reinterpret_cast<const std::byte*>(host.data()) + p * page, page});
    const std::uint32_t n = page / 4, rounds = 0;
    const auto args = std::array{memory(*src, (pages - 1) * page, page, access::read),
                                 memory(*dst, 0, page, access::write), value(n), value(rounds)};
    // Warm up: PoCL compiles a kernel for its group size at the first launch,
    // which would give the upload time to finish even without the dependency.
    dev().wait(dev().launch(slow_add(), {n / 64}, {64}, args, {}));

    const sync_point uploaded = dev().upload(ops, {}, {});
    const sync_point launched = dev().launch(slow_add(), {n / 64}, {64}, args, std::array{uploaded});
    dev().wait(launched);
    // The kernel finished, so the upload it waited for did too.
    EXPECT_TRUE(dev().reached(uploaded));
    const std::vector<std::uint32_t> got = get<std::uint32_t>(*dst, 0, n);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], host[(pages - 1) * page / 4 + i] + i) << "i = " << i;
}

TEST_F(opencl_backend, upload_waits_for_a_launch_through_wait_for) {
    // A slow kernel reads `in` only at its end; an upload that overwrites
    // `in` must wait for it.
    const std::uint32_t n = 64 * 1024, rounds = 3000;
    auto in = dev().create_mirror(n * word);
    auto out = dev().create_mirror(n * word);
    std::vector<std::uint32_t> before(n), after(n, 0xDEADBEEFu);
    for (std::uint32_t i = 0; i < n; ++i) before[i] = i * 7u;
    put(*in, 0, before);

    const sync_point launched =
        dev().launch(slow_add(), {n / 256}, {256},
                     std::array{memory(*in, 0, n * word, access::read), memory(*out, 0, n * word, access::write),
                                value(n), value(rounds)},
                     {});
    const upload_op overwrite{in.get(), 0, reinterpret_cast<const std::byte*>(after.data()), n * word};
    const sync_point overwritten = dev().upload({&overwrite, 1}, {}, std::array{launched});
    dev().wait(overwritten);
    // The launch ran before the upload, so it is reached too.
    EXPECT_TRUE(dev().reached(launched));
    const std::vector<std::uint32_t> got = get<std::uint32_t>(*out, 0, n, std::array{launched});
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], before[i] + lcg(i, rounds)) << "i = " << i;
    EXPECT_EQ(get<std::uint32_t>(*in, 0, n), after);
}

TEST_F(opencl_backend, download_waits_for_a_launch_through_wait_for) {
    // A slow kernel writes `out` at its end; a download listing it in
    // wait_for (and not waited for on the host) must see its results.
    const std::uint32_t n = 64 * 1024, rounds = 3000;
    auto in = dev().create_mirror(n * word);
    auto out = dev().create_mirror(n * word);
    std::vector<std::uint32_t> data(n);
    for (std::uint32_t i = 0; i < n; ++i) data[i] = i * 3u;
    put(*in, 0, data);
    put(*out, 0, std::vector<std::uint32_t>(n, 0));

    const sync_point launched =
        dev().launch(slow_add(), {n / 256}, {256},
                     std::array{memory(*in, 0, n * word, access::read), memory(*out, 0, n * word, access::write),
                                value(n), value(rounds)},
                     {});
    const std::vector<std::uint32_t> got = get<std::uint32_t>(*out, 0, n, std::array{launched});
    EXPECT_TRUE(dev().reached(launched));
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], data[i] + lcg(i, rounds)) << "i = " << i;
}

/* --- CPU copies ----------------------------------------------------------------- */

// The suite's device has CPU copies off (the queue path); these tests open
// their own device with them on. A device that offers none (not a CPU device
// with fine-grained SVM) reports cpu_copy_max 0 and skips them.

TEST_F(opencl_backend, cpu_copy_max_is_1_MiB_by_default_on_a_cpu_device_and_0_turns_it_off) {
    const auto by_default = open_with_cpu_copy_max(nullptr);
    const auto limited = open_with_cpu_copy_max("256K");
    const auto off = open_with_cpu_copy_max("0");
    EXPECT_EQ(off->properties().cpu_copy_max, 0u);
    if (by_default->properties().cpu_copy_max == 0) {
        // The variable cannot turn on what the device does not allow.
        EXPECT_EQ(limited->properties().cpu_copy_max, 0u);
        GTEST_SKIP() << dev().properties().name << " is not a CPU device with fine-grained SVM buffers";
    }
    EXPECT_EQ(by_default->properties().cpu_copy_max, 1 * MiB);
    EXPECT_EQ(limited->properties().cpu_copy_max, 256 * KiB);
    EXPECT_TRUE(by_default->properties().host_addressable);
    const usm::error e = expect_error([&] { open_with_cpu_copy_max("lots"); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "USM_CPU_COPY_MAX"));
}

TEST_F(opencl_backend, pocl_offers_cpu_copies) {
    if (dev().properties().driver.find("PoCL") == std::string::npos) GTEST_SKIP() << "not PoCL";
    // PoCL's pthread device is a CPU device with fine-grained buffer SVM.
    EXPECT_EQ(open_with_cpu_copy_max(nullptr)->properties().cpu_copy_max, 1 * MiB);
}

TEST_F(opencl_backend, cpu_copies_skip_the_queue_and_stay_ordered_with_it) {
    const auto cpu = open_with_cpu_copy_max("256K");
    if (cpu->properties().cpu_copy_max == 0) GTEST_SKIP() << "no CPU copies on " << dev().properties().name;
    std::mt19937 random(77);
    const auto random_bytes = [&](std::size_t n) {
        std::vector<std::byte> bytes(n);
        for (auto& b : bytes) b = std::byte(random());
        return bytes;
    };
    const std::size_t size = 1 * MiB;
    auto mirror = cpu->create_mirror(size);
    std::vector<std::byte> model = random_bytes(size);

    // 1 MiB through the queue, not waited for: the small batch after it must
    // land after it (write after write).
    const upload_op whole{mirror.get(), 0, model.data(), size};
    EXPECT_FALSE(cpu->upload({&whole, 1}, {}, {}).empty()) << "a 1 MiB batch skipped the queue";
    std::vector<std::vector<std::byte>> sources;
    std::vector<upload_op> ops;
    for (std::size_t offset = 5; offset < 128 * KiB;) {
        const std::size_t length = std::min<std::size_t>(random() % 5000 + 1, 128 * KiB - offset);
        sources.push_back(random_bytes(length));
        std::memcpy(model.data() + offset, sources.back().data(), length);
        ops.push_back({mirror.get(), offset, sources.back().data(), length});
        offset += length + random() % 3;  // some gaps
    }
    std::shuffle(ops.begin(), ops.end(), random);
    const fill_op zero{mirror.get(), 130 * KiB + 3, 10 * KiB + 1};
    std::memset(model.data() + zero.offset, 0, zero.bytes);
    EXPECT_TRUE(cpu->upload(ops, {&zero, 1}, {}).empty()) << "a 138 KiB batch went through the queue";

    // 512 KiB through the queue; a small download right after it, waiting
    // for nothing, must see it (read after write).
    sources.push_back(random_bytes(512 * KiB));
    std::memcpy(model.data() + 512 * KiB, sources.back().data(), 512 * KiB);
    const upload_op big{mirror.get(), 512 * KiB, sources.back().data(), 512 * KiB};
    EXPECT_FALSE(cpu->upload({&big, 1}, {}, {}).empty()) << "a 512 KiB batch skipped the queue";
    std::vector<std::byte> back(size, std::byte{0x5a});
    const download_op tail{mirror.get(), size - 64 * KiB - 3, back.data() + (size - 64 * KiB - 3), 64 * KiB + 3};
    cpu->download({&tail, 1}, {});
    EXPECT_EQ(std::memcmp(back.data() + tail.offset, model.data() + tail.offset, tail.bytes), 0);

    // The whole mirror back, through the queue (1 MiB) and in CPU reads of a
    // page, then of 3 pages at odd offsets.
    const download_op all{mirror.get(), 0, back.data(), size};
    cpu->download({&all, 1}, {});
    ASSERT_EQ(std::memcmp(back.data(), model.data(), size), 0);
    std::vector<std::byte> pages(size, std::byte{0x5a});
    for (std::size_t offset = 0; offset < size; offset += page) {
        const download_op one{mirror.get(), offset, pages.data() + offset, page};
        cpu->download({&one, 1}, {});
    }
    ASSERT_EQ(std::memcmp(pages.data(), model.data(), size), 0);
    std::vector<download_op> reads;
    std::vector<std::byte> odd(size, std::byte{0x5a});
    for (std::size_t offset = 7; offset + 3 * page <= size; offset += 3 * page)
        reads.push_back({mirror.get(), offset, odd.data() + offset, 3 * page});
    for (std::size_t first = 0; first < reads.size(); first += 16)  // 16 x 12 KiB per batch
        cpu->download(std::span(reads).subspan(first, std::min<std::size_t>(16, reads.size() - first)), {});
    for (const download_op& r : reads)
        ASSERT_EQ(std::memcmp(odd.data() + r.offset, model.data() + r.offset, r.bytes), 0) << r.offset;

    // Bad ops are refused the same way on this path, with nothing copied.
    const std::vector<std::byte> data(64, std::byte{1});
    const upload_op past{mirror.get(), size - 8, data.data(), 16};
    EXPECT_EQ(expect_error([&] { cpu->upload({&past, 1}, {}, {}); }).kind(), errc::out_of_range);
    const download_op read_past{mirror.get(), size - 8, pages.data(), 16};
    EXPECT_EQ(expect_error([&] { cpu->download({&read_past, 1}, {}); }).kind(), errc::out_of_range);
    const download_op last{mirror.get(), size - 16, back.data(), 16};
    cpu->download({&last, 1}, {});
    EXPECT_EQ(std::memcmp(back.data(), model.data() + size - 16, 16), 0);

    // Imported host memory is never copied, small batch or not.
    if (!cpu->properties().host_memory_in_place) return;
    shared_memory memory_fd(2 * page);
    ASSERT_TRUE(memory_fd.ok());
    std::fill_n(memory_fd.words(), 2 * page / word, 0x5A5A5A5Au);
    auto imported = cpu->import_host(memory_fd.alias(), 2 * page);
    const upload_op into{imported.get(), 0, data.data(), data.size()};
    usm::error e = expect_error([&] { cpu->upload({&into, 1}, {}, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "in place"));
    const fill_op fill{imported.get(), 0, page};
    EXPECT_EQ(expect_error([&] { cpu->upload({}, {&fill, 1}, {}); }).kind(), errc::invalid_argument);
    std::vector<std::byte> out(64);
    const download_op from{imported.get(), 0, out.data(), out.size()};
    EXPECT_EQ(expect_error([&] { cpu->download({&from, 1}, {}); }).kind(), errc::invalid_argument);
    for (std::size_t i = 0; i < 2 * page / word; ++i) ASSERT_EQ(memory_fd.words()[i], 0x5A5A5A5Au) << i;
}

TEST_F(opencl_backend, cpu_copy_download_waits_for_a_running_kernel_that_writes_it) {
    const auto cpu = open_with_cpu_copy_max(nullptr);  // the default, 1 MiB
    if (cpu->properties().cpu_copy_max == 0) GTEST_SKIP() << "no CPU copies on " << dev().properties().name;
    auto kernel = cpu->build_opencl_c(kernels::test_cl_slow_add_cl, "", "test_cl_slow_add");
    // 256 KiB each: every batch below is a CPU copy.
    const std::uint32_t n = 64 * 1024, rounds = 3000;
    auto in = cpu->create_mirror(n * word);
    auto out = cpu->create_mirror(n * word);
    std::vector<std::uint32_t> data(n);
    for (std::uint32_t i = 0; i < n; ++i) data[i] = i * 3u;
    const upload_op put_in{in.get(), 0, reinterpret_cast<const std::byte*>(data.data()), n * word};
    const fill_op clear_out{out.get(), 0, n * word};
    // Complete on return: the launch needs nothing in wait_for to see it.
    ASSERT_TRUE(cpu->upload({&put_in, 1}, {&clear_out, 1}, {}).empty());

    const sync_point launched =
        cpu->launch(*kernel, {n / 256}, {256},
                    std::array{memory(*in, 0, n * word, access::read), memory(*out, 0, n * word, access::write),
                               value(n), value(rounds)},
                    {});
    // Not waited for on the host: the download's wait_for is the dependency.
    std::vector<std::uint32_t> got(n, 0x5a5a5a5au);
    const download_op take{out.get(), 0, reinterpret_cast<std::byte*>(got.data()), n * word};
    cpu->download({&take, 1}, std::array{launched});
    EXPECT_TRUE(cpu->reached(launched));
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], data[i] + lcg(i, rounds)) << "i = " << i;
}

TEST_F(opencl_backend, cpu_copy_upload_waits_for_a_running_kernel_that_reads_it) {
    const auto cpu = open_with_cpu_copy_max(nullptr);
    if (cpu->properties().cpu_copy_max == 0) GTEST_SKIP() << "no CPU copies on " << dev().properties().name;
    auto kernel = cpu->build_opencl_c(kernels::test_cl_slow_add_cl, "", "test_cl_slow_add");
    // The kernel reads `in` only at its end; the upload overwrites `in`.
    const std::uint32_t n = 64 * 1024, rounds = 3000;
    auto in = cpu->create_mirror(n * word);
    auto out = cpu->create_mirror(n * word);
    std::vector<std::uint32_t> before(n), after(n, 0xDEADBEEFu);
    for (std::uint32_t i = 0; i < n; ++i) before[i] = i * 7u;
    const upload_op put_before{in.get(), 0, reinterpret_cast<const std::byte*>(before.data()), n * word};
    ASSERT_TRUE(cpu->upload({&put_before, 1}, {}, {}).empty());
    const auto launch = [&](std::uint32_t count) {
        return cpu->launch(*kernel, {count / 256}, {256},
                           std::array{memory(*in, 0, count * word, access::read),
                                      memory(*out, 0, count * word, access::write), value(count), value(rounds)},
                           {});
    };
    const auto download = [&](device_mirror& from, std::uint32_t first, std::uint32_t count,
                              std::span<const sync_point> wait_for) {
        std::vector<std::uint32_t> got(count);
        const download_op op{&from, first * word, reinterpret_cast<std::byte*>(got.data()), count * word};
        cpu->download({&op, 1}, wait_for);
        return got;
    };

    sync_point launched = launch(n);
    const upload_op overwrite{in.get(), 0, reinterpret_cast<const std::byte*>(after.data()), n * word};
    // The empty point: complete, and so is the launch it had to follow.
    EXPECT_TRUE(cpu->upload({&overwrite, 1}, {}, std::array{launched}).empty());
    EXPECT_TRUE(cpu->reached(launched));
    std::vector<std::uint32_t> got = download(*out, 0, n, std::array{launched});
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_EQ(got[i], before[i] + lcg(i, rounds)) << "i = " << i;
    EXPECT_EQ(download(*in, 0, n, {}), after);

    // A kernel reading the first half of `in` while the second half is
    // replaced: nothing to wait for, and neither disturbs the other.
    std::vector<std::uint32_t> second(n / 2);
    for (std::uint32_t i = 0; i < n / 2; ++i) second[i] = i ^ 0x13579BDFu;
    launched = launch(n / 2);
    const upload_op half{in.get(), n / 2 * word, reinterpret_cast<const std::byte*>(second.data()), n / 2 * word};
    EXPECT_TRUE(cpu->upload({&half, 1}, {}, {}).empty());
    got = download(*out, 0, n / 2, std::array{launched});
    for (std::uint32_t i = 0; i < n / 2; ++i) ASSERT_EQ(got[i], after[i] + lcg(i, rounds)) << "i = " << i;
    EXPECT_EQ(download(*in, n / 2, n / 2, {}), second);
}

TEST_F(opencl_backend, cpu_copies_and_kernels_see_each_others_writes) {
    const auto cpu = open_with_cpu_copy_max(nullptr);
    if (cpu->properties().cpu_copy_max == 0) GTEST_SKIP() << "no CPU copies on " << dev().properties().name;
    auto kernel = cpu->build_opencl_c(kernels::test_cl_add_one_cl, "", "test_cl_add_one");
    // Rounds of: the host writes a random range (CPU upload), two kernels add
    // one to it without a wait_for (the upload is complete), the host reads
    // it back after the second (CPU download).
    const std::size_t size = 64 * page;
    auto mirror = cpu->create_mirror(size);
    std::mt19937 random(5);
    for (int round = 0; round < 40; ++round) {
        const std::uint32_t first = static_cast<std::uint32_t>(random() % (size / word / 2));
        const std::uint32_t count = static_cast<std::uint32_t>(random() % (size / word - first - 64) + 64) / 64 * 64;
        std::vector<std::uint32_t> data(count);
        for (auto& v : data) v = static_cast<std::uint32_t>(random());
        const upload_op op{mirror.get(), first * word, reinterpret_cast<const std::byte*>(data.data()), count * word};
        ASSERT_TRUE(cpu->upload({&op, 1}, {}, {}).empty()) << "round " << round;
        const auto args = std::array{memory(*mirror, first * word, count * word, access::read_write), value(count)};
        cpu->launch(*kernel, {count / 64}, {64}, args, {});
        const sync_point second = cpu->launch(*kernel, {count / 64}, {64}, args, {});
        std::vector<std::uint32_t> got(count);
        const download_op back{mirror.get(), first * word, reinterpret_cast<std::byte*>(got.data()), count * word};
        cpu->download({&back, 1}, std::array{second});
        for (std::uint32_t i = 0; i < count; ++i)
            ASSERT_EQ(got[i], data[i] + 2u) << "round " << round << ", word " << first + i;
    }
}

TEST_F(opencl_backend, waits_from_another_thread_while_the_main_thread_submits) {
    const std::uint32_t n = 64 * 1024;  // enough work per launch for the threads to overlap
    const int launches = 300;
    auto counters = dev().create_mirror(n * word);
    auto side = dev().create_mirror(64 * page);
    put(*counters, 0, std::vector<std::uint32_t>(n, 0));
    std::vector<std::uint32_t> side_data(64 * page / 4);
    for (std::size_t i = 0; i < side_data.size(); ++i) side_data[i] = static_cast<std::uint32_t>(i);

    std::mutex lock;
    std::vector<sync_point> issued;  // in submission order, both queues
    std::atomic<bool> finished{false};
    std::atomic<int> waits{0}, failures{0};
    std::thread waiter([&] {
        std::mt19937 random(11);
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
                    random() % 4 == 0 ? seen[random() % seen.size()] : seen[seen.size() - 1 - random() % recent];
                if (random() % 2 == 0) {
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
        const sync_point launched = dev().launch(
            add_one(), {n / 64}, {64}, std::array{memory(*counters, 0, n * word, access::read_write), value(n)}, {});
        {
            std::lock_guard guard(lock);
            issued.push_back(launched);
        }
        if (i % 10 == 0) {
            const upload_op op{side.get(), (i / 10) % 64 * page, reinterpret_cast<const std::byte*>(side_data.data()),
                               page};
            const sync_point uploaded = dev().upload({&op, 1}, {}, std::array{launched});
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
    dev().wait(issued.back());
    EXPECT_EQ(get<std::uint32_t>(*counters, 0, n, std::array{issued.back()}),
              std::vector<std::uint32_t>(n, static_cast<std::uint32_t>(launches)));
    dev().wait_idle();
    for (const sync_point& p : issued) EXPECT_TRUE(dev().reached(p));
}

TEST_F(opencl_backend, builds_run_while_another_thread_launches) {
    const std::uint32_t n = 4096;
    auto counters = dev().create_mirror(n * word);
    put(*counters, 0, std::vector<std::uint32_t>(n, 0));
    add_one();  // built before the race starts

    std::vector<std::unique_ptr<compiled_kernel>> built(3);
    std::atomic<bool> builder_done{false};
    std::thread builder([&] {
        try {
            // Different options: different programs, even with a kernel cache.
            built[0] = dev().build_opencl_c(kernels::saxpy_cl, "-DUSM_VARIANT=1", "saxpy");
            built[1] = dev().build_opencl_c(kernels::saxpy_cl, "-DUSM_VARIANT=2 -cl-mad-enable", "saxpy");
            built[2] = dev().build_opencl_c(kernels::test_cl_add_one_cl, "-DUSM_VARIANT=3", "test_cl_add_one");
        } catch (const std::exception& e) {
            ADD_FAILURE() << "builder: " << e.what();
        }
        builder_done = true;
    });
    int launches = 0;
    sync_point last;
    do {
        last = dev().launch(add_one(), {n / 64}, {64},
                            std::array{memory(*counters, 0, n * word, access::read_write), value(n)}, {});
        ++launches;
    } while (launches < 20 || !builder_done.load());
    builder.join();
    ASSERT_TRUE(built[2]);
    // The kernel built meanwhile works like the other.
    last = dev().launch(*built[2], {n / 64}, {64},
                        std::array{memory(*counters, 0, n * word, access::read_write), value(n)}, std::array{last});
    EXPECT_EQ(get<std::uint32_t>(*counters, 0, n, std::array{last}),
              std::vector<std::uint32_t>(n, static_cast<std::uint32_t>(launches + 1)));
}

TEST_F(opencl_backend, launch_rejects_bad_arguments_and_geometry_before_enqueueing) {
    auto mirror = dev().create_mirror(page);
    const float a = 2.0f;
    const std::uint32_t n = 16;
    const auto good = std::array{memory(*mirror, 0, 64, access::read), memory(*mirror, 64, 64, access::read_write),
                                 value(a), value(n)};

    usm::error e = expect_error([&] { dev().launch(saxpy(), {1}, {16}, std::span(good).first(3), {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "'saxpy'"));
    EXPECT_TRUE(contains(e.what(), "takes 4 arguments"));
    EXPECT_TRUE(contains(e.what(), "gave 3"));

    e = expect_error([&] { dev().launch(saxpy(), {1}, {1u << 20}, good, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "1048576"));

    e = expect_error([&] { dev().launch(saxpy(), {0}, {16}, good, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);

    // A value where the kernel declares a __global pointer, and memory where
    // it declares a value.
    auto swapped = good;
    swapped[0] = value(n);
    e = expect_error([&] { dev().launch(saxpy(), {1}, {16}, swapped, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "argument 0"));
    swapped = good;
    swapped[2] = memory(*mirror, 0, 4, access::read);
    e = expect_error([&] { dev().launch(saxpy(), {1}, {16}, swapped, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "argument 2"));

    // A value of the wrong size: the driver rejects it.
    const double wide = 2.0;
    swapped = good;
    swapped[2] = value(wide);
    e = expect_error([&] { dev().launch(saxpy(), {1}, {16}, swapped, {}); });
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_TRUE(contains(e.what(), "clSetKernelArg"));

    // A range past the end of its mirror.
    swapped = good;
    swapped[1] = memory(*mirror, page - 16, 64, access::read_write);
    EXPECT_EQ(expect_error([&] { dev().launch(saxpy(), {1}, {16}, swapped, {}); }).kind(), errc::out_of_range);

    // Nothing was enqueued by the failures: the good launch still works.
    dev().wait(dev().launch(saxpy(), {1}, {16}, good, {}));
}

/* --- sync points ------------------------------------------------------------ */

TEST_F(opencl_backend, unknown_sync_points_are_rejected) {
    EXPECT_EQ(expect_error([&] { dev().wait(sync_point{7, 1}); }).kind(), errc::invalid_argument);
    EXPECT_EQ(expect_error([&] { (void)dev().reached(sync_point{0, 1ull << 40}); }).kind(), errc::invalid_argument);
    EXPECT_EQ(expect_error([&] {
                  dev().upload({}, {}, std::array{sync_point{1, 1ull << 40}});
              }).kind(),
              errc::invalid_argument);
}

/* --- builds ----------------------------------------------------------------- */

TEST_F(opencl_backend, syntax_error_reports_the_build_log) {
    const std::string source = "__kernel void broken(__global int* p) {\n    p[0] = undeclared_name;\n}\n";
    const usm::error e = expect_error([&] { dev().build_opencl_c(source, "", "broken"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_EQ(e.driver_result(), cl_build_program_failure);
    EXPECT_TRUE(contains(e.what(), "clBuildProgram"));
    EXPECT_TRUE(contains(e.what(), dev().properties().name));
    // The compiler's own line, with the identifier it choked on.
    EXPECT_TRUE(contains_regex(e.what(), "error:.*undeclared_name"));
}

TEST_F(opencl_backend, unknown_entry_is_named_and_the_programs_kernels_listed) {
    const std::string source =
        std::string(kernels::saxpy_cl) + "\n__kernel void second(__global int* p) { p[0] = 1; }\n";
    const usm::error e = expect_error([&] { dev().build_opencl_c(source, "", "saxpy_typo"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_EQ(e.driver_result(), cl_invalid_kernel_name);
    EXPECT_TRUE(contains(e.what(), "'saxpy_typo'"));
    EXPECT_TRUE(contains(e.what(), "saxpy"));
    EXPECT_TRUE(contains(e.what(), "second"));
}

TEST_F(opencl_backend, bad_build_options_fail_the_build) {
    const usm::error e = expect_error([&] { dev().build_opencl_c(kernels::saxpy_cl, "-no-such-option", "saxpy"); });
    EXPECT_EQ(e.kind(), errc::kernel_build_failed);
    EXPECT_TRUE(contains(e.what(), "-no-such-option"));
}

TEST_F(opencl_backend, spirv_is_unsupported) {
    const std::array<std::uint32_t, 5> words = {0x07230203u, 0x00010500u, 0u, 1u, 0u};
    const usm::error e = expect_error([&] { dev().build_spirv(words, "main"); });
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_TRUE(contains(e.what(), "OpenCL C"));
}

}  // namespace
}  // namespace usm::detail
