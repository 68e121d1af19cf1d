// core/address_space.hpp - the reserved range and its host backing.
//
// One memfd backs the whole range and is mapped twice:
//   * the *view*: the addresses the application uses (and usm::ptr holds),
//     mprotect-ed page by page to match the host's copy state;
//   * the *alias*: a second mapping of the same memfd pages, always
//     read-write, that only usm touches. Migrations write a page through the
//     alias and open the view afterwards, so no thread ever sees a half-filled
//     page (DESIGN.md invariant 7).
// Freed ranges are punched out of the memfd, so new allocations read zero
// (invariant 5). Both mappings are MADV_DONTFORK: memory stays with the parent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>

namespace usm::detail {

class uffd_region;

inline constexpr std::size_t page_size = 4096;
inline constexpr std::size_t page_shift = 12;

constexpr std::size_t round_up_to_pages(std::size_t bytes) noexcept {
    return (bytes + page_size - 1) & ~(page_size - 1);
}

/// Host page protection, in the order of what it allows.
enum class protection : std::uint8_t { none, read, read_write };

class address_space {
public:
    /// Reserves `bytes` (rounded up to pages) of view and alias and creates the
    /// memfd. Throws usm::error: address_space_exhausted when the reservation
    /// fails, out_of_memory when the memfd cannot be created.
    explicit address_space(std::size_t bytes);
    ~address_space();
    address_space(const address_space&) = delete;
    address_space& operator=(const address_space&) = delete;

    std::byte* view_begin() const noexcept { return m_view; }
    std::byte* view_end() const noexcept { return m_view + m_size; }
    std::size_t size() const noexcept { return m_size; }
    bool contains(const void* p) const noexcept {
        auto* b = static_cast<const std::byte*>(p);
        return b >= m_view && b < m_view + m_size;
    }
    /// The alias address of a view address.
    std::byte* alias_of(const void* view_address) const noexcept {
        return m_alias + (static_cast<const std::byte*>(view_address) - m_view);
    }

    /// Carves `bytes` (a page multiple) from the range, first fit. Returns the
    /// view address, or nullopt when no free run is large enough.
    std::optional<std::byte*> carve(std::size_t bytes);
    /// Returns a carved run to the free list. Its memfd pages are discarded
    /// (they read zero afterwards) and its view is protected none.
    void release(std::byte* view_address, std::size_t bytes);

    /// Limits what the host may do with the view pages [view_address,
    /// +bytes). Signal path: mprotect. Userfaultfd path: absent pages stay
    /// absent, and `none` unmaps (MADV_DONTNEED), `read` write-protects,
    /// `read_write` lifts write protection. Throws usm::error (out_of_memory:
    /// the kernel could not split the mapping).
    void protect(std::byte* view_address, std::size_t bytes, protection p);

    /// Switches the view to the userfaultfd path (before any allocation):
    /// live allocations' VMAs become read-write and `uffd` decides per page.
    void use_userfaultfd(uffd_region* uffd) noexcept { m_uffd = uffd; }
    bool uses_userfaultfd() const noexcept { return m_uffd != nullptr; }
    /// Makes a freshly carved run usable: on the userfaultfd path its VMA
    /// becomes read-write (what the host may do is then per page); on the
    /// signal path nothing is needed.
    void activate(std::byte* view_address, std::size_t bytes);
    /// Userfaultfd path: maps [view_address, +bytes) now, read-only or
    /// read-write (`p` must not be none), creating zero memfd pages where
    /// none exist yet, and wakes threads waiting on them.
    void map_now(std::byte* view_address, std::size_t bytes, protection p);

private:
    std::byte* m_view = nullptr;
    std::byte* m_alias = nullptr;
    std::size_t m_size = 0;
    int m_memfd = -1;
    uffd_region* m_uffd = nullptr;
    std::map<std::size_t, std::size_t> m_free;  // offset -> length, coalesced
};

}  // namespace usm::detail
