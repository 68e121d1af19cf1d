// usm/launch.hpp - what a launch declares: accessed ranges, grid and group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ptr.hpp"

namespace usm {

/// How a kernel may touch a declared range.
enum class access : std::uint8_t {
    read = 1,        ///< the kernel only loads
    write = 2,       ///< the kernel may store (the range's old contents are kept)
    read_write = 3,  ///< the kernel loads and stores
};

/// One declared range: `count` elements from `address`, touched as `mode`.
/// Built by usm::read, usm::write and usm::read_write; passed to launch in
/// the position of the kernel argument it binds.
struct declared_access {
    const void* address = nullptr;
    std::size_t bytes = 0;
    access mode = access::read;
};

/// The kernel reads `count` elements from `p`.
template <class T>
constexpr declared_access read(ptr<T> p, std::size_t count) noexcept {
    return {p.get(), count * sizeof(T), access::read};
}
/// The kernel may write `count` elements from `p`.
template <class T>
constexpr declared_access write(ptr<T> p, std::size_t count) noexcept {
    return {p.get(), count * sizeof(T), access::write};
}
/// The kernel reads and writes `count` elements from `p`.
template <class T>
constexpr declared_access read_write(ptr<T> p, std::size_t count) noexcept {
    return {p.get(), count * sizeof(T), access::read_write};
}
// The same, from a raw host pointer into usm memory (ptr::get()).
template <class T>
constexpr declared_access read(T* p, std::size_t count) noexcept {
    return read(ptr<T>(p), count);
}
template <class T>
constexpr declared_access write(T* p, std::size_t count) noexcept {
    return write(ptr<T>(p), count);
}
template <class T>
constexpr declared_access read_write(T* p, std::size_t count) noexcept {
    return read_write(ptr<T>(p), count);
}

/// Passes the context's page table to the kernel's `usm_space` parameter
/// (shaders/usm.glsl, shaders/usm.cl), through which the kernel turns usm
/// addresses read from memory (a usm::ptr stored in a node) into loads and
/// stores, each checked against the device's permission for its page. An
/// access the table does not allow touches nothing and is recorded as a
/// device fault (docs/device-faults.md).
struct space_access {
    /// The kernel may follow pointers anywhere in the context (usm::any);
    /// otherwise only into its declared ranges (usm::declared).
    bool anywhere = false;
};
/// The kernel may follow pointers anywhere in the context. A page it reaches
/// that is not valid on the device is a device fault: usm brings the page
/// and runs the kernel again when it is launched usm::replayable, and raises
/// errc::device_fault otherwise.
inline constexpr space_access any{true};
/// The kernel uses the page table only within its declared ranges: the
/// table grants their pages alone, and any access outside them is
/// errc::device_fault (checked to the byte, and to the declared access, with
/// context_options::check or USM_CHECK=1).
inline constexpr space_access declared{false};

/// Marks a launch replayable: the kernel is idempotent, so after device
/// faults usm may service them and run it again until none remains. Passed
/// among the arguments; binds no kernel parameter.
struct replayable_t {
    explicit constexpr replayable_t() = default;
};
inline constexpr replayable_t replayable{};

/// Number of work-groups in each dimension (as vkCmdDispatch and CUDA's
/// gridDim count them). OpenCL's global size is grid * group.
struct grid {
    std::size_t x = 1, y = 1, z = 1;
    constexpr grid(std::size_t gx, std::size_t gy = 1, std::size_t gz = 1) noexcept : x(gx), y(gy), z(gz) {}
};

/// Work-items per work-group. Vulkan kernels receive it through
/// specialization constants 0, 1, 2 (`layout(local_size_x_id = 0, ...)`).
struct group {
    std::size_t x = 1, y = 1, z = 1;
    constexpr group(std::size_t lx, std::size_t ly = 1, std::size_t lz = 1) noexcept : x(lx), y(ly), z(lz) {}
};

namespace detail {

/// One kernel argument as the library sees it, in declaration order.
struct launch_arg {
    /// space: a space_access (the kernel's usm_space parameter); replay: the
    /// usm::replayable mark, which binds no parameter.
    enum class kind : std::uint8_t { memory, value, space, replay };
    kind what = kind::value;
    declared_access memory{};     ///< for kind::memory
    const void* value = nullptr;  ///< for kind::value: the bytes, valid during the call
    std::size_t size = 0;
    std::size_t align = 1;
    bool anywhere = false;  ///< for kind::space: usm::any
};

template <class T>
inline constexpr bool is_ptr_v = false;
template <class T>
inline constexpr bool is_ptr_v<ptr<T>> = true;

template <class A>
launch_arg make_launch_arg(const A& a) {
    if constexpr (std::is_same_v<A, declared_access>) {
        return {launch_arg::kind::memory, a, nullptr, 0, 1};
    } else if constexpr (std::is_same_v<A, space_access>) {
        return {launch_arg::kind::space, {}, nullptr, 0, 1, a.anywhere};
    } else if constexpr (std::is_same_v<A, replayable_t>) {
        return {launch_arg::kind::replay, {}, nullptr, 0, 1};
    } else {
        static_assert(!is_ptr_v<A> && !std::is_pointer_v<A>,
                      "declare how the kernel touches this pointer: usm::read(p, n), usm::write(p, n) "
                      "or usm::read_write(p, n)");
        static_assert(std::is_trivially_copyable_v<A>, "kernel value arguments must be trivially copyable");
        return {launch_arg::kind::value, {}, &a, sizeof(A), alignof(A)};
    }
}

}  // namespace detail
}  // namespace usm
