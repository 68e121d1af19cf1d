// usm/ptr.hpp - usm::ptr<T>, a typed address in a context's shared range.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace usm {

/// A typed virtual address in a context's address space.
///
/// Eight bytes, trivially copyable, and usable like `T*` on the host: the
/// address *is* the host address of the data, so `p[i]`, `*p`, `p + n` and
/// `p.get()` are plain memory accesses (a page the host may not touch yet
/// faults into usm, which migrates it). The same value is valid on every
/// device of the context: a launch translates it to the device's copy.
/// A ptr does not own memory; see usm::unique_ptr for that.
template <class T>
class ptr {
public:
    using element_type = T;
    using value_type = std::remove_cv_t<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = std::add_lvalue_reference_t<T>;

    constexpr ptr() noexcept = default;
    constexpr ptr(std::nullptr_t) noexcept {}
    /// Wraps a host address. No check is made here; operations that take a
    /// ptr (launch, free, prefetch) reject addresses outside the context.
    constexpr explicit ptr(T* address) noexcept : m_address(address) {}

    /// ptr<T> converts to ptr<const T> and ptr<void> as T* does.
    template <class U>
    requires std::is_convertible_v<U*, T*>
    constexpr ptr(ptr<U> other) noexcept : m_address(other.get()) {}

    /// The host address: the same memory, usable by any host code.
    constexpr T* get() const noexcept { return m_address; }
    constexpr explicit operator bool() const noexcept { return m_address != nullptr; }
    /// The address as an integer, as stored in device-visible data.
    std::uint64_t address() const noexcept { return reinterpret_cast<std::uintptr_t>(m_address); }

    template <class U = T>
    requires(!std::is_void_v<U>) constexpr U& operator*() const noexcept { return *m_address; }
    template <class U = T>
    requires(!std::is_void_v<U>) constexpr U* operator->() const noexcept { return m_address; }
    template <class U = T>
    requires(!std::is_void_v<U>) constexpr U& operator[](std::ptrdiff_t i) const noexcept { return m_address[i]; }

    constexpr ptr& operator+=(std::ptrdiff_t n) noexcept {
        m_address += n;
        return *this;
    }
    constexpr ptr& operator-=(std::ptrdiff_t n) noexcept {
        m_address -= n;
        return *this;
    }
    constexpr ptr& operator++() noexcept {
        ++m_address;
        return *this;
    }
    constexpr ptr& operator--() noexcept {
        --m_address;
        return *this;
    }
    constexpr ptr operator++(int) noexcept {
        ptr old = *this;
        ++m_address;
        return old;
    }
    constexpr ptr operator--(int) noexcept {
        ptr old = *this;
        --m_address;
        return old;
    }
    friend constexpr ptr operator+(ptr p, std::ptrdiff_t n) noexcept { return p += n; }
    friend constexpr ptr operator+(std::ptrdiff_t n, ptr p) noexcept { return p += n; }
    friend constexpr ptr operator-(ptr p, std::ptrdiff_t n) noexcept { return p -= n; }
    friend constexpr std::ptrdiff_t operator-(ptr a, ptr b) noexcept { return a.m_address - b.m_address; }

    friend constexpr bool operator==(ptr a, ptr b) noexcept = default;
    friend constexpr auto operator<=>(ptr a, ptr b) noexcept { return a.m_address <=> b.m_address; }
    friend constexpr bool operator==(ptr a, std::nullptr_t) noexcept { return a.m_address == nullptr; }

private:
    T* m_address = nullptr;
};

static_assert(sizeof(ptr<float>) == 8 && std::is_trivially_copyable_v<ptr<float>>,
              "usm::ptr must stay an 8-byte trivially copyable value: kernels store it in memory");

}  // namespace usm
