// core/launch.cpp - kernels, launches, and the public device, kernel and event.
#include <algorithm>
#include <limits>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/diagnostics.hpp"
#include "kernels/usm_cl.hpp"

namespace usm::detail {

namespace {

const char* access_name(access a) noexcept {
    switch (a) {
        case access::read:
            return "read";
        case access::write:
            return "write";
        case access::read_write:
            return "read_write";
    }
    return "?";
}

dims to_dims(const char* what, std::size_t x, std::size_t y, std::size_t z) {
    constexpr std::size_t limit = std::numeric_limits<std::uint32_t>::max();
    if (x == 0 || y == 0 || z == 0 || x > limit || y > limit || z > limit)
        throw_error(errc::invalid_argument, "launch: ", what, " {", x, ", ", y, ", ", z,
                    "} must be non-zero and fit in 32 bits");
    return {static_cast<std::uint32_t>(x), static_cast<std::uint32_t>(y), static_cast<std::uint32_t>(z)};
}

/// `source` with a line `#include "usm.cl"` (or <usm.cl>) replaced by the
/// helpers' text (shaders/usm.cl), line numbers kept for build logs. The
/// driver's compiler has no file to include: usm carries it.
std::string with_usm_helpers(std::string_view source) {
    std::string out;
    std::size_t line = 1, at = 0;
    while (at < source.size()) {
        std::size_t end = source.find('\n', at);
        if (end == std::string_view::npos) end = source.size();
        const std::string_view text = source.substr(at, end - at);
        const std::size_t hash = text.find_first_not_of(" \t");
        std::string_view directive = hash == std::string_view::npos ? std::string_view{} : text.substr(hash);
        const bool includes =
            directive.starts_with("#include") && (directive.find("\"usm.cl\"") != std::string_view::npos ||
                                                  directive.find("<usm.cl>") != std::string_view::npos);
        if (includes) {
            out += concat("#line 1 \"usm.cl\"\n", usm::kernels::usm_cl, "\n#line ", line + 1, " \"kernel.cl\"\n");
        } else {
            out += text;
            out += '\n';
        }
        at = end + 1;
        ++line;
    }
    return out;
}

}  // namespace

/* --- kernels ------------------------------------------------------------ */

kernel context_impl::load_kernel(device_slot& dev, const spirv& code, std::string_view entry) {
    check_process("load_kernel");
    auto state = std::make_shared<kernel_state>();
    state->backend = dev.backend;
    state->slot = &dev;
    context_mutex::assert_none_held();
    state->compiled = dev.backend->build_spirv(code.words, entry);
    ensure_fault_handler_on_top();  // compilers may install handlers of their own
    return kernel(std::move(state));
}

kernel context_impl::load_kernel(device_slot& dev, const opencl_c& code, std::string_view entry) {
    check_process("load_kernel");
    auto state = std::make_shared<kernel_state>();
    state->backend = dev.backend;
    state->slot = &dev;
    context_mutex::assert_none_held();
    const std::string source = with_usm_helpers(code.source);
    state->compiled = dev.backend->build_opencl_c(source, code.options, entry);
    ensure_fault_handler_on_top();
    return kernel(std::move(state));
}

/* --- launches ----------------------------------------------------------- */

std::vector<range_request> context_impl::resolve_ranges(const device_slot& dev,
                                                        std::span<const launch_arg> args) const {
    std::vector<range_request> ranges;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].what != launch_arg::kind::memory) continue;
        const declared_access& d = args[i].memory;
        const allocation* a = m_allocations.find(d.address);
        if (a == nullptr) {
            const fault_target* owner = fault_range_owner(d.address);
            if (owner != nullptr && owner != this)
                throw_error(errc::not_a_usm_pointer, "launch on ", dev.backend->properties().name, ": argument ", i,
                            " (", access_name(d.mode), " ", d.address, ") belongs to another usm context");
            throw_error(errc::not_a_usm_pointer, "launch on ", dev.backend->properties().name, ": argument ", i, " (",
                        access_name(d.mode), " ", d.address, ") is not in a live allocation of this context");
        }
        const auto offset = static_cast<std::size_t>(static_cast<const std::byte*>(d.address) - a->base);
        if (d.bytes > a->bytes || offset > a->bytes - d.bytes)
            throw_error(errc::out_of_range, "launch on ", dev.backend->properties().name, ": argument ", i, " (",
                        access_name(d.mode), " ", format_bytes(d.bytes), " at ", d.address, ") runs past allocation ",
                        a->id, " [", static_cast<const void*>(a->base), ", +", format_bytes(a->bytes), ")");
        if (d.bytes == 0) continue;  // nothing to move; launch() still gives it a mirror to point into
        const std::size_t segment = dev.segment_pages << page_shift;
        if (offset / segment != (offset + d.bytes - 1) / segment)
            throw_error(errc::unsupported, "launch on ", dev.backend->properties().name, ": argument ", i, " (",
                        access_name(d.mode), " ", format_bytes(d.bytes), " at ", d.address,
                        ") spans two device buffers of allocation ", a->id, ": the device's copy is made of ",
                        format_bytes(segment), " segments (its largest buffer, or USM_SEGMENT), and an argument",
                        " must lie within one");
        const bool writes = d.mode == access::write || d.mode == access::read_write;
        ranges.push_back({const_cast<allocation*>(a), offset >> page_shift,
                          round_up_to_pages(offset + d.bytes) >> page_shift, true, writes});
    }
    return ranges;
}

void context_impl::choose_in_place(device_slot& dev, std::vector<range_request>& ranges) {
    if (!dev.backend->properties().host_memory_in_place) return;
    const location where = dev.where;
    // merge_requests sorted the ranges by allocation.
    for (std::size_t i = 0; i < ranges.size();) {
        allocation& a = *ranges[i].alloc;
        std::size_t j = i;
        while (j < ranges.size() && ranges[j].alloc == &a) ++j;
        bool all = a.accessed_pages[where] == a.page_count && !(a.import_refused & bit(where));
        if (!all && a.accessed_pages[where] != 0 && !(a.import_refused & bit(where))) {
            all = true;
            for (std::size_t k = i; k < j && all; ++k)
                for (std::size_t p = ranges[k].first_page; p < ranges[k].end_page && all; ++p)
                    all = (a.pages[p].accessed_by & bit(where)) != 0;
        }
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
        for (std::size_t k = i; k < j; ++k) ranges[k].in_place = all;
        i = j;
    }
}

event context_impl::launch(device_slot& dev, const kernel& k, grid g, group l, std::span<const launch_arg> args) {
    check_process("launch");
    if (!k || k.state()->slot != &dev)
        throw_error(errc::invalid_argument, "launch on ", dev.backend->properties().name, ": kernel '",
                    k ? k.name() : std::string("(empty)"), "' was not loaded on this device");
    const dims grid_dims = to_dims("grid", g.x, g.y, g.z);
    const dims group_dims = to_dims("group", l.x, l.y, l.z);

    bool takes_table = false, replayable = false;
    table_launch table;
    for (const launch_arg& a : args) {
        if (a.what == launch_arg::kind::space) {
            if (takes_table)
                throw_error(errc::invalid_argument, "launch of '", k.name(), "' on ", dev.backend->properties().name,
                            ": usm::any or usm::declared given twice (a kernel has one usm_space parameter)");
            takes_table = true;
            table.anywhere = a.anywhere;
        }
        replayable = replayable || a.what == launch_arg::kind::replay;
    }
    if (replayable && !takes_table)
        throw_error(errc::invalid_argument, "launch of '", k.name(), "' on ", dev.backend->properties().name,
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
    std::vector<range_request> ranges;
    for (;;) {
        std::vector<range_request> requested = resolve_ranges(dev, args);
        if (table != nullptr)
            for (const serviced_range& r : table->serviced)
                // Gone since (freed by another thread): the kernel's next
                // access there faults as outside every allocation.
                if (allocation* a = m_allocations.find_base(r.base); a != nullptr && a->id == r.id)
                    requested.push_back({a, r.first, r.end, true, r.writes});
        ranges = merge_requests(std::move(requested));
        choose_in_place(dev, ranges);
        m_inflight.retire_completed();
        auto waits = m_coherence.launch_conflicts(ranges, dev.where, m_inflight);
        if (waits.empty()) waits = m_coherence.reserve("launch", dev, ranges, m_allocations, m_inflight);
        if (waits.empty()) break;
        wait_unlocked(lock, waits);  // allocations may change meanwhile: resolve again
    }

    // The page table, brought in step with what the states will be once this
    // launch's pages are staged, rides in the staging batch.
    std::vector<upload_op> table_ops;
    std::vector<const device_mirror*> reachable;
    std::vector<range_use> table_uses;
    if (table != nullptr) {
        for (const range_request& r : ranges)
            if (!r.in_place) m_coherence.ensure_segments(*r.alloc, dev, r.first_page, r.end_page);
        table_ops = prepare_table(dev, ranges, args, *table, reachable, table_uses);
    }

    sync_point staged;
    try {
        staged =
            m_coherence.stage_for_launch(dev, ranges, table_ops);  // its point becomes each allocation's last_upload
    } catch (...) {
        if (table != nullptr) dev.table.invalidate();  // the table's copy may be half written
        throw;
    }

    // A launch that fails after its staging batch was queued: nothing
    // tracks the batch, which may still read host pages (and the page
    // table's host copies, which the next launch through the table
    // rewrites) and write segments that eviction could release. It is
    // waited for (without the lock); the device's table is then unknown.
    auto unwind_staging = [&]() {
        if (!staged.empty()) {
            lock.unlock();
            try {
                dev.backend->wait(staged);
            } catch (const std::exception& e) {
                log(log_level::warn, "launch on ", dev.backend->properties().name,
                    ": its staging batch failed too: ", e.what());
            }
            lock.lock();
        }
        if (table != nullptr) dev.table.invalidate();
    };

    std::vector<bound_arg> bound;
    bound.reserve(args.size());
    std::vector<range_use> empty_uses;  // zero-byte arguments: they hold a segment, touch nothing
    for (std::size_t i = 0; i < args.size(); ++i) {
        const launch_arg& a = args[i];
        if (a.what == launch_arg::kind::replay) continue;  // binds no parameter
        bound_arg& b = bound.emplace_back();
        b.what = a.what == launch_arg::kind::value ? launch_arg::kind::value : launch_arg::kind::memory;
        if (a.what == launch_arg::kind::space) {
            b.mirror = &dev.table.block(*dev.backend);
            b.bytes = space_block_bytes;
            b.mode = access::read_write;
            b.reaches = reachable;
        } else if (a.what == launch_arg::kind::memory) {
            allocation* owner = m_allocations.find(a.memory.address);
            const auto offset = static_cast<std::size_t>(static_cast<const std::byte*>(a.memory.address) - owner->base);
            if (std::any_of(ranges.begin(), ranges.end(),
                            [&](const range_request& r) { return r.alloc == owner && r.in_place; })) {
                b.mirror = owner->imports[dev.where].get();  // the host memory itself
                b.offset = offset;
                b.bytes = a.memory.bytes;
                b.mode = a.memory.mode;
                if (a.memory.bytes == 0) empty_uses.push_back({owner, 0, 0, false});
                continue;
            }
            // An argument ending the allocation points one past its last page.
            const std::size_t page = std::min(offset >> page_shift, owner->page_count - 1);
            if (a.memory.bytes == 0) {
                try {
                    m_coherence.ensure_segments(*owner, dev, page, page + 1);
                } catch (...) {
                    m_coherence.abandon_launch(ranges);
                    unwind_staging();
                    throw;
                }
                empty_uses.push_back({owner, page, page, false});
            }
            const std::size_t segment = page / dev.segment_pages;
            b.mirror = owner->segments[dev.where][segment].get();
            b.offset = offset - ((segment * dev.segment_pages) << page_shift);
            b.bytes = a.memory.bytes;
            b.mode = a.memory.mode;
        } else {
            b.value = a.value;
            b.size = a.size;
            b.align = a.align;
        }
    }

    // After this launch's own uploads and any earlier ones into its
    // allocations (a prefetch's) that may still be copying.
    std::vector<sync_point> after;
    auto wait_for = [&](sync_point up) {
        if (up.empty()) return;
        auto same = std::ranges::find_if(after, [&](const sync_point& s) { return s.queue == up.queue; });
        if (same == after.end())
            after.push_back(up);
        else if (same->value < up.value)
            *same = up;  // one timeline: the latest point covers the earlier ones
    };
    wait_for(staged);
    for (const range_request& r : ranges) wait_for(r.alloc->last_upload[dev.where]);
    for (const range_use& u : table_uses) wait_for(u.alloc->last_upload[dev.where]);  // reached through the table
    // What the kernel uses, made before it is submitted: once it is, nothing
    // may throw before it is tracked (an untracked kernel is waited for by
    // nobody: host faults and eviction would not wait for it).
    inflight_op op{dev.where, dev.backend, {}, {}, k.state()};
    sync_point done;
    try {
        for (const range_request& r : ranges) op.uses.push_back({r.alloc, r.first_page, r.end_page, r.writes});
        op.uses.insert(op.uses.end(), empty_uses.begin(), empty_uses.end());
        op.uses.insert(op.uses.end(), table_uses.begin(), table_uses.end());
        if (m_trace.on()) {
            op.trace_name = concat("kernel ", k.name());
            op.trace_track = tracer::queue_track(dev.index, 0);
        }
        m_inflight.reserve_one();
        m_lock.assert_held();
        op.traced_at = m_trace.now();
        done = dev.backend->launch(*k.state()->compiled, grid_dims, group_dims, bound, after);
    } catch (...) {
        m_coherence.abandon_launch(ranges);
        unwind_staging();
        throw;
    }
    m_coherence.commit_launch(dev.where, ranges, done);
    op.done = done;
    m_inflight.add(std::move(op));  // room reserved: does not throw
    count(m_stats, &usm::stats::launches, 1, nullptr, &dev);
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

}  // namespace usm::detail

/* --- public handles ----------------------------------------------------- */

namespace usm {

const char* to_string(backend b) noexcept { return b == backend::vulkan ? "vulkan" : "opencl"; }

const device_properties& device::properties() const noexcept { return m_slot->backend->properties(); }
std::size_t device::index() const noexcept { return m_slot->index; }
std::uint64_t device::budget() const noexcept { return std::uint64_t{m_slot->budget_pages} << detail::page_shift; }
std::uint64_t device::resident_bytes() const { return m_slot->owner->resident_bytes(*m_slot); }
usm::stats device::stats() const { return m_slot->owner->device_stats(*m_slot); }

kernel device::load_kernel(const spirv& code, std::string_view entry) {
    return m_slot->owner->load_kernel(*m_slot, code, entry);
}
kernel device::load_kernel(const opencl_c& code, std::string_view entry) {
    return m_slot->owner->load_kernel(*m_slot, code, entry);
}
event device::launch_args(const kernel& k, grid g, group l, std::span<const detail::launch_arg> args) {
    return m_slot->owner->launch(*m_slot, k, g, l, args);
}

const std::string& kernel::name() const { return m_state->compiled->entry(); }

void event::wait() const {
    detail::context_mutex::assert_none_held();
    if (m_state) m_state->backend->wait(m_state->point);
}
bool event::ready() const { return !m_state || m_state->backend->reached(m_state->point); }

}  // namespace usm
