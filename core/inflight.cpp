// core/inflight.cpp - conflict queries over in-flight device work.
#include "core/inflight.hpp"

#include <algorithm>

namespace usm::detail {

void inflight_tracker::retire_completed() {
    std::erase_if(m_ops, [this](const inflight_op& op) {
        if (!op.device->reached(op.done)) return false;
        if (!op.trace_name.empty())
            m_trace.complete(op.trace_name, "kernel", op.trace_track, op.traced_at, m_trace.now());
        return true;
    });
}

std::vector<pending_wait> inflight_tracker::conflicts(const allocation& a, std::size_t first, std::size_t end,
                                                      bool writer, location same_queue) const {
    std::vector<pending_wait> waits;
    for (const inflight_op& op : m_ops) {
        if (op.where == same_queue) continue;
        const bool hit = std::any_of(op.uses.begin(), op.uses.end(), [&](const range_use& u) {
            return u.alloc == &a && u.first_page < end && first < u.end_page && (writer || u.writes);
        });
        if (hit) waits.push_back({op.device, op.done});
    }
    return waits;
}

std::vector<pending_wait> inflight_tracker::uses_of(const allocation& a) const {
    std::vector<pending_wait> waits;
    for (const inflight_op& op : m_ops)
        if (std::any_of(op.uses.begin(), op.uses.end(), [&](const range_use& u) { return u.alloc == &a; }))
            waits.push_back({op.device, op.done});
    return waits;
}

bool inflight_tracker::busy_at(const allocation& a, std::size_t first, std::size_t end, location where) const {
    return std::any_of(m_ops.begin(), m_ops.end(), [&](const inflight_op& op) {
        return op.where == where && std::any_of(op.uses.begin(), op.uses.end(), [&](const range_use& u) {
                   if (u.alloc != &a) return false;
                   if (u.first_page == u.end_page) return u.first_page >= first && u.first_page < end;
                   return u.first_page < end && first < u.end_page;
               });
    });
}

std::vector<pending_wait> inflight_tracker::ops_at(location where) const {
    std::vector<pending_wait> waits;
    for (const inflight_op& op : m_ops)
        if (op.where == where) waits.push_back({op.device, op.done});
    return waits;
}

std::vector<pending_wait> inflight_tracker::all() const {
    std::vector<pending_wait> waits;
    for (const inflight_op& op : m_ops) waits.push_back({op.device, op.done});
    return waits;
}

}  // namespace usm::detail
