// tests/backend_support.hpp - what the backend suites share. They drive
// usm::detail::device_backend directly, as the core does: a driver from the
// backend table (backends/registry.cpp), its first usable device, mirrors,
// transfer batches, kernels and sync points. Here: opening the drivers once
// per process, argument binders, error checks, host mappings for imports,
// and random data. No driver header: the suites see only the contract.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/device_interface.hpp"
#include "support.hpp"
#include "usm/error.hpp"

namespace usm_test::backend {

using namespace usm::detail;
using usm::access;
using usm::device_properties;
using usm::errc;
using usm::transfer_path;

constexpr std::size_t page = 4096;
constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
constexpr std::size_t word = 4;  // bytes of a float or a uint32_t

/* --- drivers and devices ---------------------------------------------------- */

/// The first candidate of `d` that usm can use, or candidates().size().
inline std::size_t first_usable(const driver& d) {
    const auto& list = d.candidates();
    for (std::size_t i = 0; i < list.size(); ++i)
        if (list[i].rejected_because.empty()) return i;
    return list.size();
}

/// One backend's driver and first usable device, opened once per process.
struct opened_backend {
    std::shared_ptr<driver> loaded;
    std::size_t index = 0;
    std::unique_ptr<device_backend> device;
    std::string why_not;  ///< why `device` is null
};

inline std::map<std::string, opened_backend>& opened_backends() {
    static std::map<std::string, opened_backend> all;
    return all;
}

/// `name`'s driver ("vulkan" or "opencl"), loaded through the backend table
/// as a context loads it, with its first usable device opened.
inline opened_backend& open_backend_once(const std::string& name) {
    auto [it, fresh] = opened_backends().try_emplace(name);
    opened_backend& b = it->second;
    if (!fresh) return b;
    for (const backend_entry& entry : registered_backends())
        if (entry.name != nullptr && name == entry.name) b.loaded = entry.load(b.why_not);
    if (!b.loaded) {
        if (b.why_not.empty()) b.why_not = "the " + name + " backend is not in this build's backend table";
        return b;
    }
    b.index = first_usable(*b.loaded);
    if (b.index == b.loaded->candidates().size()) {
        b.why_not = "no usable device among " + std::to_string(b.loaded->candidates().size()) + " candidates";
        return b;
    }
    try {
        b.device = b.loaded->open(b.index);
    } catch (const usm::error& e) {
        b.why_not = e.what();
    }
    return b;
}

/// Closes every device and driver opened above (devices first).
inline void close_backends() {
    for (auto& [name, b] : opened_backends()) b.device.reset();
    opened_backends().clear();
}

/// Fails the test (or, outside CI, skips it) when `b` has no device.
#define USM_REQUIRE_BACKEND(b, name)                                                          \
    do {                                                                                      \
        if ((b).device) break;                                                                \
        if (!::usm_test::in_ci()) GTEST_SKIP() << (name) << ": " << (b).why_not;              \
        FAIL() << "no " << (name) << " device (CI=true makes it a failure): " << (b).why_not; \
    } while (false)

/* --- launch arguments ----------------------------------------------------------- */

inline bound_arg memory(device_mirror& m, std::size_t offset, std::size_t bytes, access mode) {
    bound_arg a;
    a.what = launch_arg::kind::memory;
    a.mirror = &m;
    a.offset = offset;
    a.bytes = bytes;
    a.mode = mode;
    return a;
}

/// `v` must outlive the launch call.
template <class T>
bound_arg value(const T& v) {
    bound_arg a;
    a.what = launch_arg::kind::value;
    a.value = &v;
    a.size = sizeof(T);
    a.align = alignof(T);
    return a;
}

inline std::uint32_t groups_for(std::size_t items, std::uint32_t group) {
    return static_cast<std::uint32_t>((items + group - 1) / group);
}

/* --- errors ----------------------------------------------------------------------- */

/// Runs `call` and returns the usm::error it throws (fails the test if none).
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

/// "message contains part", reporting the whole message when it does not.
inline testing::AssertionResult contains(const std::string& message, const std::string& part) {
    if (message.find(part) != std::string::npos) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "\"" << part << "\" is not in: " << message;
}
inline testing::AssertionResult contains_regex(const std::string& message, const std::string& pattern) {
    if (std::regex_search(message, std::regex(pattern))) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "/" << pattern << "/ does not match: " << message;
}

/* --- data ---------------------------------------------------------------------------- */

inline std::vector<std::byte> random_bytes(std::mt19937& rng, std::size_t n) {
    std::vector<std::byte> bytes(n);
    for (auto& b : bytes) b = static_cast<std::byte>(rng() & 0xff);
    return bytes;
}

/// [offset, length) runs covering [0, total), of random lengths from 1 to
/// `max_len`, in order.
inline std::vector<std::pair<std::size_t, std::size_t>> random_partition(std::mt19937& rng, std::size_t total,
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

template <class T>
const std::byte* bytes_of(const std::vector<T>& v) {
    return reinterpret_cast<const std::byte*>(v.data());
}

/// Uploads `values` to `m` at `offset` in one batch; its point.
template <class T>
sync_point upload_values(device_backend& d, device_mirror& m, std::size_t offset, const std::vector<T>& values,
                         std::span<const sync_point> wait_for = {}, transfer_path path = transfer_path::queue) {
    const upload_op op{&m, offset, bytes_of(values), values.size() * sizeof(T)};
    return d.upload({&op, 1}, {}, wait_for, path);
}

/// `count` values of T downloaded from `m` at `offset` in one batch.
template <class T>
std::vector<T> download_values(device_backend& d, device_mirror& m, std::size_t offset, std::size_t count,
                               std::span<const sync_point> wait_for = {}, transfer_path path = transfer_path::queue) {
    std::vector<T> values(count);
    const download_op op{&m, offset, reinterpret_cast<std::byte*>(values.data()), count * sizeof(T)};
    d.download({&op, 1}, wait_for, path);
    return values;
}

/// The lcg of shaders/test_slow_add, applied `rounds` times to `v`.
inline std::uint32_t lcg(std::uint32_t v, std::uint32_t rounds) { return usm_test::slow_value(v, rounds); }

/* --- host memory for imports ----------------------------------------------------------- */

/// Host memory as usm holds it: one memfd mapped MAP_SHARED twice, the
/// application's view and usm's alias. import_host gets the alias; the test
/// reads and writes through the view, so what a kernel does must reach the
/// memfd's pages, not a private copy.
class shared_memory {
public:
    explicit shared_memory(std::size_t bytes) : m_bytes(bytes) {
        m_fd = ::memfd_create("usm-backend-test", MFD_CLOEXEC);
        if (m_fd < 0 || ::ftruncate(m_fd, static_cast<off_t>(bytes)) != 0) return;
        m_view = map();
        m_alias = map();
    }
    ~shared_memory() {
        if (m_view != nullptr) ::munmap(m_view, m_bytes);
        if (m_alias != nullptr) ::munmap(m_alias, m_bytes);
        if (m_fd >= 0) ::close(m_fd);
    }
    shared_memory(const shared_memory&) = delete;
    shared_memory& operator=(const shared_memory&) = delete;

    bool ok() const noexcept { return m_view != nullptr && m_alias != nullptr; }
    std::byte* alias(std::size_t offset = 0) const noexcept { return m_alias + offset; }
    /// The view as 32-bit words, from byte `offset`.
    std::uint32_t* words(std::size_t offset = 0) const noexcept {
        return reinterpret_cast<std::uint32_t*>(m_view + offset);
    }

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
/// import alignment seen in practice: minImportedHostPointerAlignment,
/// CL_DEVICE_MEM_BASE_ADDR_ALIGN).
class aligned_memory {
public:
    static constexpr std::size_t align = 64 * KiB;
    explicit aligned_memory(std::size_t bytes) : m_length(bytes + align) {
        void* p = ::mmap(nullptr, m_length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return;
        m_region = p;
        const auto at = reinterpret_cast<std::uintptr_t>(p);
        m_data = reinterpret_cast<std::byte*>((at + align - 1) / align * align);
    }
    ~aligned_memory() {
        if (m_region != nullptr) ::munmap(m_region, m_length);
    }
    aligned_memory(const aligned_memory&) = delete;
    aligned_memory& operator=(const aligned_memory&) = delete;

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

}  // namespace usm_test::backend
