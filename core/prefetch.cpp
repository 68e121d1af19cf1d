// core/prefetch.cpp - moving a range ahead of use (context::prefetch).
#include "core/context_impl.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

event context_impl::prefetch(const void* p, std::size_t bytes, device_slot* to) {
    check_process("prefetch");
    if (to != nullptr && to->owner != this)
        throw_error(errc::invalid_argument, "prefetch(", p, ", ", format_bytes(bytes), ") to ",
                    to->backend->properties().name, ": the device belongs to another context");
    if (to == nullptr) {
        // Downloads are synchronous (device_interface.hpp): the range is on
        // the host when this returns.
        make_host_valid("prefetch", p, bytes, false);
        return event();
    }
    if (bytes == 0) return event();

    lock_type lock(m_lock);
    std::vector<range_request> ranges;
    for (;;) {
        allocation& a = locate("prefetch", p, bytes);
        const auto [first, end] = a.pages_of(p, bytes);
        ranges = {range_request{&a, first, end, true, false}};
        m_inflight.retire_completed();
        // Pages a kernel elsewhere is writing come after it (through the host).
        auto waits = m_coherence.launch_conflicts(ranges, to->where, m_inflight);
        if (waits.empty()) waits = m_residency.reserve("prefetch", *to, ranges, m_allocations, m_inflight);
        if (waits.empty()) break;
        wait_unlocked(lock, waits);
    }

    // Staged as for a launch that reads the range: the device gets a copy,
    // the host keeps its own read-only until it writes again.
    const sync_point staged = m_coherence.stage_for_launch(*to, ranges);
    m_coherence.commit_launch(*to, ranges, staged);
    if (staged.empty()) return event();
    // In flight as a reader of the range until copied: a host write waits
    // for it (the copy reads the host's bytes), and launches on `to` order
    // themselves after it through last_upload.
    inflight_op op{to->where, to->backend, staged, {}, nullptr};
    for (const range_request& r : ranges) op.uses.push_back({r.alloc, r.first_page, r.end_page, false});
    m_inflight.add(std::move(op));
    return event(std::make_shared<event_state>(event_state{to->backend, staged}));
}

}  // namespace usm::detail
