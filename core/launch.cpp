// core/launch.cpp - launches: arguments resolved to page ranges, in-place
// choice, room on the device, staging, binding, submission and tracking.
//
// The path of a launch: device::launch -> context_impl::launch, which checks
// the kernel and geometry and, for a kernel that takes the page table, goes
// to launch_through_table (core/device_faults.cpp). Otherwise submit_launch:
//   settle_ranges      resolve_ranges, merge_requests, choose_in_place, then
//                      coherence::launch_conflicts and residency::reserve,
//                      waiting without the lock until both are satisfied;
//   table_writer       (page-table launches) the table's changed entries;
//   stage_for_launch   coherence: fetch remote pages home, narrow the host's
//                      protection, migration::upload_for one batch;
//   bind_args          mirrors (or imports) and offsets per argument;
//   submit_tracked     the backend's launch, tracked as in-flight work, then
//                      coherence::commit_launch.
#include <algorithm>
#include <limits>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/device_faults.hpp"
#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"
#include "core/page_table_sync.hpp"

namespace usm::detail {

/// What the steps of one submission pass each other.
struct launch_plan {
    std::vector<range_request> ranges;            ///< merged, with room made
    table_launch* table = nullptr;                ///< a launch through the page table
    std::vector<upload_op> table_ops;             ///< its entries and space block, riding in the staging batch
    std::vector<const device_mirror*> reachable;  ///< mirrors the table points into
    std::vector<range_use> table_uses;            ///< allocations the kernel may reach beyond its ranges
    std::vector<range_use> empty_uses;            ///< zero-byte arguments: they hold a segment, touch nothing
    std::vector<bound_arg> bound;
    sync_point staged;  ///< the staging batch
};

namespace {

/// usm::access as written in code (its values are bits: read 1, write 2).
const char* access_name(access a) noexcept {
    constexpr const char* names[] = {"?", "read", "write", "read_write"};
    return names[static_cast<unsigned>(a) & 3u];
}

dims to_dims(const char* what, std::size_t x, std::size_t y, std::size_t z) {
    constexpr std::size_t limit = std::numeric_limits<std::uint32_t>::max();
    if (x == 0 || y == 0 || z == 0 || x > limit || y > limit || z > limit)
        throw_error(errc::invalid_argument, "launch: ", what, " {", x, ", ", y, ", ", z,
                    "} must be non-zero and fit in 32 bits");
    return {static_cast<std::uint32_t>(x), static_cast<std::uint32_t>(y), static_cast<std::uint32_t>(z)};
}

}  // namespace

/* --- arguments to ranges ------------------------------------------------ */

std::vector<range_request> context_impl::resolve_ranges(const device_slot& dev,
                                                        std::span<const launch_arg> args) const {
    const std::string& name = dev.backend->properties().name;
    std::vector<range_request> ranges;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].what != launch_arg::kind::memory) continue;
        const declared_access& d = args[i].memory;
        const allocation* a = m_allocations.find(d.address);
        if (a == nullptr) {
            const fault_target* owner = fault_range_owner(d.address);
            throw_error(errc::not_a_usm_pointer, "launch on ", name, ": argument ", i, " (", access_name(d.mode), " ",
                        d.address, ") ",
                        owner != nullptr && owner != this ? "belongs to another usm context"
                                                          : "is not in a live allocation of this context");
        }
        const auto offset = static_cast<std::size_t>(static_cast<const std::byte*>(d.address) - a->base);
        if (d.bytes > a->bytes || offset > a->bytes - d.bytes)
            throw_error(errc::out_of_range, "launch on ", name, ": argument ", i, " (", access_name(d.mode), " ",
                        format_bytes(d.bytes), " at ", d.address, ") runs past allocation ", a->id, " [",
                        static_cast<const void*>(a->base), ", +", format_bytes(a->bytes), ")");
        if (d.bytes == 0) continue;  // nothing to move; bind_args still gives it a mirror to point into
        const std::size_t segment = dev.segment_pages << page_shift;
        if (offset / segment != (offset + d.bytes - 1) / segment)
            throw_error(errc::unsupported, "launch on ", name, ": argument ", i, " (", access_name(d.mode), " ",
                        format_bytes(d.bytes), " at ", d.address, ") spans two device buffers of allocation ", a->id,
                        ": the device's copy is made of ", format_bytes(segment),
                        " segments (its largest buffer, or USM_SEGMENT), and an argument must lie within one");
        const bool writes = d.mode == access::write || d.mode == access::read_write;
        ranges.push_back({const_cast<allocation*>(a), offset >> page_shift,
                          round_up_to_pages(offset + d.bytes) >> page_shift, true, writes});
    }
    return ranges;
}

namespace {

/// Every page of `ranges` (one allocation's) is advised accessed_by `where`.
bool all_accessed_by(const allocation& a, std::span<const range_request> ranges, location where) noexcept {
    if (a.accessed_pages[where] == a.page_count) return true;
    if (a.accessed_pages[where] == 0) return false;
    for (const range_request& r : ranges)
        for (std::size_t p = r.first_page; p < r.end_page; ++p)
            if ((a.pages[p].accessed_by & bit(where)) == 0) return false;
    return true;
}

}  // namespace

void context_impl::choose_in_place(device_slot& dev, std::vector<range_request>& ranges) {
    if (!dev.backend->properties().host_memory_in_place) return;
    const location where = dev.where;
    // merge_requests sorted the ranges by allocation.
    for (std::size_t i = 0; i < ranges.size();) {
        allocation& a = *ranges[i].alloc;
        std::size_t j = i;
        while (j < ranges.size() && ranges[j].alloc == &a) ++j;
        const std::span<range_request> mine(ranges.data() + i, j - i);
        bool all = !(a.import_refused & bit(where)) && all_accessed_by(a, mine, where);
        if (all && !a.imports[where]) {
            try {
                a.imports[where] = dev.backend->import_host(m_space->alias_of(a.base), a.page_count << page_shift);
            } catch (const error& e) {
                if (e.kind() != errc::unsupported) throw;
                log(log_level::warn, "launch on ", dev.backend->properties().name, ": allocation ", a.id,
                    " is advised accessed_by it, but its memory cannot be imported (", e.what(), "); migrating it");
                a.import_refused |= bit(where);  // asked once: the advice stays, the pages migrate
                all = false;
            }
        }
        for (range_request& r : mine) r.in_place = all;
        i = j;
    }
}

std::vector<range_request> context_impl::settle_ranges(lock_type& lock, device_slot& dev,
                                                       std::span<const launch_arg> args, const table_launch* table) {
    for (;;) {
        std::vector<range_request> requested = resolve_ranges(dev, args);
        if (table != nullptr)
            for (const serviced_range& r : table->serviced)
                // Gone since (freed by another thread): the kernel's next
                // access there faults as outside every allocation.
                if (allocation* a = m_allocations.find_base(r.base); a != nullptr && a->id == r.id)
                    requested.push_back({a, r.first, r.end, true, r.writes});
        std::vector<range_request> ranges = merge_requests(std::move(requested));
        choose_in_place(dev, ranges);
        m_inflight.retire_completed();
        auto waits = m_coherence.launch_conflicts(ranges, dev.where, m_inflight);
        if (waits.empty()) waits = m_residency.reserve("launch", dev, ranges, m_allocations, m_inflight);
        if (waits.empty()) return ranges;
        wait_unlocked(lock, waits);  // allocations may change meanwhile: resolve again
    }
}

/* --- launching ---------------------------------------------------------- */

event context_impl::launch(device_slot& dev, const kernel& k, grid g, group l, std::span<const launch_arg> args) {
    check_process("launch");
    const std::string& name = dev.backend->properties().name;
    if (!k || k.state()->slot != &dev)
        throw_error(errc::invalid_argument, "launch on ", name, ": kernel '", k ? k.name() : std::string("(empty)"),
                    "' was not loaded on this device");
    const dims grid_dims = to_dims("grid", g.x, g.y, g.z);
    const dims group_dims = to_dims("group", l.x, l.y, l.z);

    bool takes_table = false, replayable = false;
    table_launch table;
    for (const launch_arg& a : args) {
        if (a.what == launch_arg::kind::space) {
            if (takes_table)
                throw_error(errc::invalid_argument, "launch of '", k.name(), "' on ", name,
                            ": usm::any or usm::declared given twice (a kernel has one usm_space parameter)");
            takes_table = true;
            table.anywhere = a.anywhere;
        }
        replayable = replayable || a.what == launch_arg::kind::replay;
    }
    if (replayable && !takes_table)
        throw_error(errc::invalid_argument, "launch of '", k.name(), "' on ", name,
                    ": usm::replayable without usm::any or usm::declared; only kernels that take the page table "
                    "record device faults to replay");
    if (takes_table) return launch_through_table(dev, k, grid_dims, group_dims, g, args, table, replayable);

    lock_type lock(m_lock);
    return event(std::make_shared<event_state>(
        event_state{dev.backend, submit_launch(lock, dev, k, grid_dims, group_dims, g, args, nullptr)}));
}

sync_point context_impl::submit_launch(lock_type& lock, device_slot& dev, const kernel& k, dims grid_dims,
                                       dims group_dims, grid g, std::span<const launch_arg> args, table_launch* table) {
    const double launched_at = m_trace.now();
    launch_plan plan;
    plan.table = table;
    plan.ranges = settle_ranges(lock, dev, args, table);

    // The page table, brought in step with what the states will be once this
    // launch's pages are staged, rides in the staging batch.
    try {
        if (table != nullptr) {
            for (const range_request& r : plan.ranges)
                if (!r.in_place) ensure_segments(*r.alloc, dev, r.first_page, r.end_page);
            table_writer writer(dev, m_allocations, *m_space, table->anywhere, m_options.check && !table->anywhere);
            plan.table_ops = writer.prepare(plan.ranges, args, plan.reachable, plan.table_uses);
        }
        plan.staged = m_coherence.stage_for_launch(dev, plan.ranges, plan.table_ops);
    } catch (...) {
        if (table != nullptr) dev.table.invalidate();  // the table's copy may be half written
        throw;
    }
    sync_point done;
    try {
        bind_args(dev, args, plan);
        done = submit_tracked(dev, k, grid_dims, group_dims, plan, launch_dependencies(dev, plan));
    } catch (...) {
        m_coherence.abandon_launch(plan.ranges);
        unwind_staging(lock, dev, plan);
        throw;
    }
    if (m_trace.on()) {
        try {
            m_trace.complete(concat("launch ", k.name()), "launch", tracer::this_thread(), launched_at, m_trace.now(),
                             concat("\"device\": ", dev.index, ", \"grid\": [", g.x, ", ", g.y, ", ", g.z, "]"));
        } catch (const std::exception& e) {  // a trace never fails the program
            log(log_level::error, "USM_TRACE: launch event lost: ", e.what());
        }
    }
    return done;
}

void context_impl::unwind_staging(lock_type& lock, device_slot& dev, const launch_plan& plan) noexcept {
    // Nothing tracks the staging batch of a launch that failed, and it may
    // still read host pages (and the page table's host copies, which the
    // next launch through the table rewrites) and write segments that
    // eviction could release: it is waited for, without the lock.
    if (!plan.staged.empty()) {
        lock.unlock();
        try {
            dev.backend->wait(plan.staged);
        } catch (const std::exception& e) {
            try {
                log(log_level::warn, "launch on ", dev.backend->properties().name,
                    ": its staging batch failed too: ", e.what());
            } catch (...) {  // the first failure is the one the caller sees
            }
        }
        lock.lock();
    }
    if (plan.table != nullptr) dev.table.invalidate();
}

void context_impl::bind_args(device_slot& dev, std::span<const launch_arg> args, launch_plan& plan) {
    plan.bound.reserve(args.size());
    for (const launch_arg& a : args) {
        if (a.what == launch_arg::kind::replay) continue;  // binds no parameter
        bound_arg& b = plan.bound.emplace_back();
        b.what = a.what == launch_arg::kind::value ? launch_arg::kind::value : launch_arg::kind::memory;
        if (a.what == launch_arg::kind::value) {
            b.value = a.value;
            b.size = a.size;
            b.align = a.align;
            continue;
        }
        if (a.what == launch_arg::kind::space) {
            b.mirror = &dev.table.block(*dev.backend);
            b.bytes = space_block_bytes;
            b.mode = access::read_write;
            b.reaches = plan.reachable;
            continue;
        }
        allocation* owner = m_allocations.find(a.memory.address);
        const auto offset = static_cast<std::size_t>(static_cast<const std::byte*>(a.memory.address) - owner->base);
        b.bytes = a.memory.bytes;
        b.mode = a.memory.mode;
        if (std::any_of(plan.ranges.begin(), plan.ranges.end(),
                        [&](const range_request& r) { return r.alloc == owner && r.in_place; })) {
            b.mirror = owner->imports[dev.where].get();  // the host memory itself
            b.offset = offset;
            if (a.memory.bytes == 0) plan.empty_uses.push_back({owner, 0, 0, false});
            continue;
        }
        // An argument ending the allocation points one past its last page.
        const std::size_t page = std::min(offset >> page_shift, owner->page_count - 1);
        if (a.memory.bytes == 0) {
            ensure_segments(*owner, dev, page, page + 1);
            plan.empty_uses.push_back({owner, page, page, false});
        }
        const std::size_t segment = page / dev.segment_pages;
        b.mirror = owner->segments[dev.where][segment].get();
        b.offset = offset - ((segment * dev.segment_pages) << page_shift);
    }
}

std::vector<sync_point> context_impl::launch_dependencies(const device_slot& dev, const launch_plan& plan) const {
    // After this launch's own uploads and any earlier ones into its
    // allocations (a prefetch's) that may still be copying; one point per
    // queue, the latest (a timeline's later point covers the earlier ones).
    std::vector<sync_point> after;
    auto wait_for = [&](sync_point up) {
        if (up.empty()) return;
        auto same = std::ranges::find_if(after, [&](const sync_point& s) { return s.queue == up.queue; });
        if (same == after.end())
            after.push_back(up);
        else if (same->value < up.value)
            *same = up;
    };
    wait_for(plan.staged);
    for (const range_request& r : plan.ranges) wait_for(r.alloc->last_upload[dev.where]);
    for (const range_use& u : plan.table_uses) wait_for(u.alloc->last_upload[dev.where]);  // reached through the table
    return after;
}

sync_point context_impl::submit_tracked(device_slot& dev, const kernel& k, dims grid_dims, dims group_dims,
                                        launch_plan& plan, std::span<const sync_point> after) {
    // What the kernel uses, made before it is submitted: once it is, nothing
    // may throw before it is tracked (an untracked kernel is waited for by
    // nobody: host faults and eviction would not wait for it).
    inflight_op op{dev.where, dev.backend, {}, {}, k.state()};
    for (const range_request& r : plan.ranges) op.uses.push_back({r.alloc, r.first_page, r.end_page, r.writes});
    op.uses.insert(op.uses.end(), plan.empty_uses.begin(), plan.empty_uses.end());
    op.uses.insert(op.uses.end(), plan.table_uses.begin(), plan.table_uses.end());
    if (m_trace.on()) {
        op.trace_name = concat("kernel ", k.name());
        op.trace_track = tracer::queue_track(dev.index, 0);
    }
    m_inflight.reserve_one();
    m_lock.assert_held();
    op.traced_at = m_trace.now();
    const sync_point done = dev.backend->launch(*k.state()->compiled, grid_dims, group_dims, plan.bound, after);
    // Nothing below throws: the kernel is tracked from here.
    m_coherence.commit_launch(dev, plan.ranges, done);
    op.done = done;
    m_inflight.add(std::move(op));  // room reserved: does not throw
    count(m_stats, &usm::stats::launches, 1, nullptr, &dev);
    return done;
}

}  // namespace usm::detail
