// core/page_state.hpp - per-page, per-location copy states.
//
// A page's state is the set of locations holding a valid copy (a bit mask,
// host = bit 0, device slot i = bit i + 1) plus a "zero" flag. From these:
//   * a location not in the mask is `invalid`;
//   * the only location in the mask is `exclusive` (it may write);
//   * each of several locations in the mask is `shared` (read-only).
// So "one writer, and the writer holds the only valid copy" (invariant 1) is
// true by construction, and "every page has a valid copy" (invariant 4) is
// `valid != 0`, which allocation::set_state asserts on every transition in
// debug builds and core/invariants.cpp checks on every page in tests.
//
// The zero flag marks a page nobody has written since allocation: its content
// is all zeros, so a device gets it by a fill instead of a copy. The host's
// copy of a zero page is the memfd hole, always valid; the host view of a
// zero page is read-only, so the first host write faults and clears the flag.
#pragma once

#include <bit>
#include <cstdint>

#include "core/address_space.hpp"

namespace usm::detail {

/// A place that can hold a copy: the host (0) or a device (slot index + 1).
using location = std::uint8_t;
inline constexpr location host_location = 0;
inline constexpr std::size_t max_locations = 16;
using location_mask = std::uint16_t;

constexpr location_mask bit(location l) noexcept { return static_cast<location_mask>(1u << l); }

enum class copy_state : std::uint8_t { invalid, shared, exclusive };

/// Advice bits of a page (usm::advice): read_mostly, and the preferred
/// location plus one (0: none).
struct page_advice {
    std::uint8_t read_mostly : 1 = 0;
    std::uint8_t preferred : 5 = 0;

    bool prefers(location l) const noexcept { return preferred == l + 1; }
    bool prefers_elsewhere(location l) const noexcept { return preferred != 0 && preferred != l + 1; }
    friend bool operator==(page_advice, page_advice) = default;
};

struct page_state {
    location_mask valid = bit(host_location);
    /// Devices (within `valid`) whose copy IS the host memory: a kernel there
    /// reads and writes the host's pages in place (advice::accessed_by), so
    /// the bytes in host memory are current although the host's own bit may
    /// be clear (the host must not touch them while such a kernel writes).
    location_mask in_place = 0;
    /// Advice: devices that should access the page in place.
    location_mask accessed_by = 0;
    bool zero = true;
    page_advice advice{};

    bool valid_at(location l) const noexcept { return (valid & bit(l)) != 0; }
    /// Valid at `l` in `l`'s own memory (for a device: its mirror holds it).
    bool copy_at(location l) const noexcept { return (valid & ~in_place & bit(l)) != 0; }
    /// The locations holding a copy in their own memory.
    location_mask copies() const noexcept { return static_cast<location_mask>(valid & ~in_place); }
    /// Host memory holds the current bytes (the host's copy, or a device's
    /// in-place one): uploads may read the page from there.
    bool host_memory_current() const noexcept { return valid_at(host_location) || in_place != 0; }
    copy_state state_at(location l) const noexcept {
        if (!valid_at(l)) return copy_state::invalid;
        return std::has_single_bit(valid) ? copy_state::exclusive : copy_state::shared;
    }
    /// The most the host view may allow (invariant 3: protection never
    /// exceeds state; zero pages stay read-only to catch the first write).
    protection host_protection() const noexcept {
        switch (state_at(host_location)) {
            case copy_state::invalid:
                return protection::none;
            case copy_state::shared:
                return protection::read;
            case copy_state::exclusive:
                return zero ? protection::read : protection::read_write;
        }
        return protection::none;
    }
    /// Some location other than `l` holding a valid copy (lowest first).
    location any_valid_except(location l) const noexcept {
        return static_cast<location>(std::countr_zero(static_cast<unsigned>(valid & ~bit(l))));
    }
};
static_assert(sizeof(page_state) <= 8, "page metadata must stay small: one entry per 4 KiB page (0.2%)");

}  // namespace usm::detail
