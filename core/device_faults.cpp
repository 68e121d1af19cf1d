// core/device_faults.cpp - launches through the device page table: the
// kernel runs, usm reads the faults it recorded, services them and runs it
// again while it is replayable (docs/device-faults.md).
//
// A round: submit_launch (core/launch.cpp) with the table in step
// (core/page_table_sync.cpp), await_faults (wait, read the log back),
// classify each fault (serviced or fatal), check progress, and go again.
#include <algorithm>
#include <cstring>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/device_faults.hpp"
#include "core/diagnostics.hpp"
#include "core/page_table_sync.hpp"

namespace usm::detail {

namespace {

const char* access_word(std::uint32_t access) noexcept { return (access & table_write) != 0 ? "write" : "read"; }

const void* address_of(const fault_record& f) noexcept {
    return reinterpret_cast<const void*>(static_cast<std::uintptr_t>(f.address));
}

/// What a launch through the table promised: how its faults are judged.
struct fault_rules {
    std::span<const space_range> declared;
    bool checked = false;   ///< checked mode: the table grants every declared page, the byte check faults
    bool anywhere = false;  ///< usm::any
    bool replayable = false;
    location where = host_location;
};

/// Why fault `f` (in `a`, or outside every allocation when null) cannot be
/// serviced; null when it can.
const char* why_fatal(const fault_record& f, const allocation* a, const fault_rules& rules) noexcept {
    const space_range* range = nullptr;
    for (const space_range& r : rules.declared)
        if (f.address >= r.begin && f.address < r.end) range = &r;
    if (a == nullptr) return "is not in a live allocation of this context";
    if (rules.checked)
        return range != nullptr && (range->access & f.access) != f.access
                   ? "is in a range the launch declared read-only (checked mode)"
                   : "is outside the launch's declared ranges (checked mode)";
    if (!rules.anywhere)
        return range == nullptr ? "is outside the launch's declared ranges (usm::declared)"
                                : "is in a range the launch declared read-only (usm::declared)";
    if (!rules.replayable)
        return (f.access & table_write) != 0 && a->pages[a->page_of(address_of(f))].valid_at(rules.where)
                   ? "is read-only on the device, and the kernel is not usm::replayable"
                   : "is not valid on the device, and the kernel is not usm::replayable";
    return nullptr;
}

/// The pages a serviceable fault asks for: a read brings the block around
/// it, as a host fault does; a write takes only its page (the host keeps the
/// rest).
serviced_range service_for(const fault_record& f, const allocation& a) noexcept {
    const std::size_t page = a.page_of(address_of(f));
    if ((f.access & table_write) != 0) return {a.base, a.id, page, page + 1, true};
    const std::size_t block = page / a.block_pages * a.block_pages;
    return {a.base, a.id, block, std::min(block + a.block_pages, a.page_count), false};
}

bool covered(std::span<const serviced_range> serviced, const serviced_range& r) noexcept {
    return std::any_of(serviced.begin(), serviced.end(), [&](const serviced_range& s) {
        return s.id == r.id && s.first <= r.first && r.end <= s.end && (s.writes || !r.writes);
    });
}

}  // namespace

std::vector<fault_record> context_impl::await_faults(lock_type& lock, device_slot& dev, sync_point done,
                                                     std::uint32_t& fault_count) {
    lock.unlock();
    context_mutex::assert_none_held();
    try {
        dev.backend->wait(done);
    } catch (...) {
        lock.lock();
        dev.table.invalidate();  // the table's upload may be what failed
        throw;
    }
    lock.lock();
    dev.table.retire_old();
    // The fault log, back from the device's copy of the block.
    auto& host = dev.table.host_block();
    const download_op back{&dev.table.block(*dev.backend), 0, host.data(), space_block_bytes};
    m_migration.download(dev, {&back, 1}, {&done, 1});
    space_header header;
    std::memcpy(&header, host.data(), sizeof header);
    fault_count = header.fault_count;
    std::vector<fault_record> records(std::min(header.fault_count, fault_capacity));
    if (!records.empty())  // memcpy's pointers may not be null, even for no bytes
        std::memcpy(records.data(), host.data() + sizeof(space_block), records.size() * sizeof(fault_record));
    return records;
}

event context_impl::launch_through_table(device_slot& dev, const kernel& k, dims grid_dims, dims group_dims, grid g,
                                         std::span<const launch_arg> args, table_launch& table, bool replayable) {
    device_page_table::launch_guard one_at_a_time(dev.table);
    lock_type lock(m_lock);
    const std::vector<space_range> declared = declared_ranges(args);
    const fault_rules rules{declared, m_options.check && !table.anywhere, table.anywhere, replayable, dev.where};
    std::uint64_t faults_in_all = 0;
    auto fail = [&](const fault_record& f, const char* why) {
        const allocation* a = m_allocations.find(address_of(f));
        const std::string where_it_is =
            a != nullptr ? concat(" (allocation ", a->id, ", page ", a->page_of(address_of(f)), ")") : std::string();
        throw_error(errc::device_fault, "launch of '", k.name(), "' on ", dev.backend->properties().name, " (device ",
                    dev.index, "): device fault: ", access_word(f.access), " at ", address_of(f), where_it_is, " ", why,
                    "; ", faults_in_all, " device fault", faults_in_all == 1 ? "" : "s", " in all");
    };
    for (unsigned round = 0;; ++round) {
        const sync_point done = submit_launch(lock, dev, k, grid_dims, group_dims, g, args, &table);
        if (round > 0) count(m_stats, &usm::stats::replays, 1, nullptr, &dev);
        std::uint32_t fault_count = 0;
        const std::vector<fault_record> records = await_faults(lock, dev, done, fault_count);
        if (fault_count == 0) return event(std::make_shared<event_state>(event_state{dev.backend, done}));
        count(m_stats, &usm::stats::device_faults, fault_count, nullptr, &dev);
        faults_in_all += fault_count;
        if (m_trace.on()) {
            const double at = m_trace.now();
            m_trace.complete("device faults", "fault", tracer::queue_track(dev.index, 0), at, at,
                             concat("\"device\": ", dev.index, ", \"faults\": ", fault_count, ", \"round\": ", round,
                                    ", \"first\": \"", address_of(records.front()), "\", \"access\": \"",
                                    access_word(records.front().access), "\""));
        }
        // Each fault is serviced (its page brought, for writing if it wrote)
        // or fatal: outside every allocation, outside what the launch
        // declared, or in a kernel that cannot run again.
        std::vector<serviced_range> more;
        const fault_record* fatal = nullptr;
        const char* why = nullptr;
        for (const fault_record& f : records) {
            allocation* a = m_allocations.find(address_of(f));
            if (a != nullptr) ++a->counters.device_faults;  // the recorded ones; the context and device count all
            if (fatal != nullptr) continue;
            if ((why = why_fatal(f, a, rules)) != nullptr)
                fatal = &f;
            else
                more.push_back(service_for(f, *a));
        }
        if (fatal != nullptr) fail(*fatal, why);
        // Progress: a round must grant something the previous ones did not,
        // else the kernel would fault forever. (Faults past the log's
        // capacity were not seen: they may be new.)
        if (fault_count <= fault_capacity &&
            std::all_of(more.begin(), more.end(), [&](const serviced_range& r) { return covered(table.serviced, r); }))
            fail(records.front(), "faulted again after usm granted it (an access straddling two device buffers?)");
        for (const serviced_range& r : more)
            if (!covered(table.serviced, r)) table.serviced.push_back(r);
    }
}

}  // namespace usm::detail
