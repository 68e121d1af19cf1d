// core/advice.cpp - advice on ranges (context::advise) and what a range's
// pages are doing (context::query).
//
// Advice is per page (page_state::advice, page_state::accessed_by); the
// policies read it: eviction ranks by it (core/eviction.cpp), a host read of
// pages preferring the host moves them home (allocation::mark_host_valid),
// and launches use accessed_by pages in place (context_impl::choose_in_place).
#include "core/context_impl.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

namespace {

/// Sets `what` on page `q` of `a`; `preferred` is the location plus one.
void apply_advice(allocation& a, std::size_t q, advice what, std::uint8_t preferred, const device_slot* where) {
    page_advice& adv = a.pages[q].advice;
    switch (what) {
        case advice::read_mostly:
            adv.read_mostly = 1;
            break;
        case advice::unset_read_mostly:
            adv.read_mostly = 0;
            break;
        case advice::preferred_location:
            adv.preferred = preferred;
            break;
        case advice::unset_preferred_location:
            adv.preferred = 0;
            break;
        case advice::accessed_by:
            a.set_accessed_by(q, where->where, true);
            break;
        case advice::unset_accessed_by:
            a.set_accessed_by(q, where->where, false);
            break;
    }
}

}  // namespace

void context_impl::advise(const void* p, std::size_t bytes, advice what, device_slot* where, bool host) {
    check_process("advise");
    const bool has_location = where != nullptr || host;
    const bool wants_device = what == advice::accessed_by || what == advice::unset_accessed_by;
    const bool wants_location = what == advice::preferred_location || wants_device;
    if (has_location != wants_location || (wants_device && host))
        throw_error(errc::invalid_argument, "advise(", p, ", ", format_bytes(bytes), "): ",
                    wants_device     ? "accessed_by needs a device"
                    : wants_location ? "preferred_location needs a device or usm::host"
                                     : "this advice takes no location");
    if (where != nullptr && where->owner != this)
        throw_error(errc::invalid_argument, "advise(", p, ", ", format_bytes(bytes), ") for ",
                    where->backend->properties().name, ": the device belongs to another context");
    if (bytes == 0) return;
    std::lock_guard lock(m_lock);
    allocation& a = locate("advise", p, bytes);
    const auto [first, end] = a.pages_of(p, bytes);
    const auto preferred = static_cast<std::uint8_t>((where != nullptr ? where->where : host_location) + 1);
    for (std::size_t q = first; q < end; ++q) apply_advice(a, q, what, preferred, where);
}

range_info context_impl::query(const void* p, std::size_t bytes) const {
    check_process("query");
    range_info info;
    info.device_pages.assign(m_slots.size(), 0);
    if (bytes == 0) return info;
    std::lock_guard lock(m_lock);
    const allocation& a = locate("query", p, bytes);
    const auto [first, end] = a.pages_of(p, bytes);
    info.pages = end - first;
    info.read_mostly = true;
    const std::uint8_t preferred = a.pages[first].advice.preferred;
    bool same_preferred = true;
    location_mask accessed = a.pages[first].accessed_by;
    for (std::size_t q = first; q < end; ++q) {
        const page_state& st = a.pages[q];
        info.host_pages += st.valid_at(host_location) ? 1 : 0;
        for (const auto& slot : m_slots) info.device_pages[slot->index] += st.copy_at(slot->where) ? 1 : 0;
        accessed &= st.accessed_by;
        info.zero_pages += st.zero ? 1 : 0;
        info.read_mostly = info.read_mostly && st.advice.read_mostly;
        same_preferred = same_preferred && st.advice.preferred == preferred;
    }
    if (same_preferred && preferred == host_location + 1) info.preferred_host = true;
    if (same_preferred && preferred > host_location + 1) info.preferred_device = m_by_location[preferred - 1]->index;
    for (const auto& slot : m_slots)
        if (accessed & bit(slot->where)) info.accessed_by.push_back(slot->index);
    return info;
}

}  // namespace usm::detail
