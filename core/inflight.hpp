// core/inflight.hpp - work submitted to devices and not yet known complete.
//
// Each launch records which page ranges it may read or write on which device.
// A host access or a launch elsewhere that conflicts with one of them must
// wait for it first (DESIGN.md, "How an access is served"). Work on the same
// device needs no host wait: the device's queue orders it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include <string>

#include "core/device_interface.hpp"
#include "core/page_state.hpp"
#include "core/trace.hpp"

namespace usm::detail {

struct allocation;
struct kernel_state;

/// A page range of one allocation that in-flight work touches.
struct range_use {
    const allocation* alloc = nullptr;
    std::size_t first_page = 0;
    std::size_t end_page = 0;  // one past the last
    bool writes = false;
};

/// Something to wait for outside the context lock.
struct pending_wait {
    std::shared_ptr<device_backend> device;
    sync_point point;
};

struct inflight_op {
    location where = host_location;
    std::shared_ptr<device_backend> device;
    sync_point done;
    std::vector<range_use> uses;
    std::shared_ptr<kernel_state> kernel;  // keeps the pipeline alive until done
    /// Traced ops: the event's name, its track and when it was submitted
    /// (it ends when usm sees it complete).
    std::string trace_name{};
    std::uint64_t trace_track = 0;
    double traced_at = 0;
};

/// Guarded by the context lock.
class inflight_tracker {
public:
    /// Ops with a trace name become trace events when they retire.
    explicit inflight_tracker(tracer& trace) noexcept : m_trace(trace) {}

    /// Makes room for one more op, so that the next add() cannot throw
    /// (a submitted kernel must be tracked).
    void reserve_one() {
        if (m_ops.size() == m_ops.capacity()) m_ops.reserve(std::max<std::size_t>(16, 2 * m_ops.capacity()));
    }
    void add(inflight_op op) { m_ops.push_back(std::move(op)); }

    /// Drops every op whose completion point is reached. Throws device_lost
    /// when a device reports failure.
    void retire_completed();

    /// The in-flight work that an access to pages [first, end) of `a` must
    /// wait for: by a writer, every use; by a reader, every write. Work at
    /// location `same_queue` is ordered by its queue and not returned.
    std::vector<pending_wait> conflicts(const allocation& a, std::size_t first, std::size_t end, bool writer,
                                        location same_queue) const;

    /// Every in-flight op that touches `a` (before freeing it).
    std::vector<pending_wait> uses_of(const allocation& a) const;

    /// True when in-flight work at `where` uses pages [first, end) of `a`.
    /// An empty use (a zero-byte launch argument pointing at page q) counts
    /// when q lies in [first, end): the kernel holds that device memory.
    bool busy_at(const allocation& a, std::size_t first, std::size_t end, location where) const;

    /// Every op at `where` (eviction waits for them when nothing else can go).
    std::vector<pending_wait> ops_at(location where) const;

    /// Every op (before tearing the context down).
    std::vector<pending_wait> all() const;

private:
    tracer& m_trace;
    std::vector<inflight_op> m_ops;
};

}  // namespace usm::detail
