// core/device_faults.cpp - launches through the device page table: the
// table in step with the page states, device faults read back after the
// kernel, serviced, and replayed (docs/device-faults.md).
#include <algorithm>
#include <cstring>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

namespace {

const char* access_word(std::uint32_t access) noexcept { return (access & table_write) != 0 ? "write" : "read"; }

std::uint32_t table_access(access a) noexcept {
    return a == access::read ? static_cast<std::uint32_t>(table_read) : static_cast<std::uint32_t>(table_permissions);
}

/// A launch's declared memory arguments, in usm addresses.
std::vector<space_range> declared_ranges(std::span<const launch_arg> args) {
    std::vector<space_range> out;
    for (const launch_arg& a : args) {
        if (a.what != launch_arg::kind::memory) continue;
        const auto begin = reinterpret_cast<std::uintptr_t>(a.memory.address);
        out.push_back({begin, begin + a.memory.bytes, table_access(a.memory.mode), 0});
    }
    return out;
}

}  // namespace

std::vector<upload_op> context_impl::prepare_table(device_slot& dev, std::span<const range_request> ranges,
                                                   std::span<const launch_arg> args, const table_launch& table,
                                                   std::vector<const device_mirror*>& reachable,
                                                   std::vector<range_use>& uses) {
    const location where = dev.where;
    const bool checked = m_options.check;
    const std::vector<space_range> declared = declared_ranges(args);
    if (checked && declared.size() > max_space_ranges)
        throw_error(errc::unsupported, "launch on ", dev.backend->properties().name, ": checked mode (USM_CHECK) ",
                    "checks at most ", max_space_ranges, " declared ranges; this launch declares ", declared.size());

    const auto* view = m_space->view_begin();
    std::size_t extent = 0;  // table entries: up to the end of the highest allocation
    m_allocations.for_each([&](const allocation& a) {
        extent = std::max(extent, static_cast<std::size_t>(a.base - view) / page_size + a.page_count);
    });
    std::vector<std::uint64_t> entries(extent, 0);

    // Device addresses, looked up once per mirror.
    const device_mirror* last = nullptr;
    std::uint64_t last_address = 0;
    auto address_of = [&](const device_mirror* m) {
        if (m != last) {
            last = m;
            last_address = dev.backend->device_address(*m);
            if (std::find(reachable.begin(), reachable.end(), m) == reachable.end()) reachable.push_back(m);
        }
        return last_address;
    };
    auto page_entry = [&](const allocation& a, std::size_t p, bool in_place, std::uint64_t permission) {
        const std::size_t offset = p << page_shift;
        std::uint64_t at = 0;
        if (in_place) {
            at = address_of(a.imports[where].get()) + offset;
        } else {
            auto [mirror, within] = m_coherence.segment_at(a, where, offset);
            at = address_of(mirror) + within;
        }
        return (at << table_address_shift) | permission;
    };
    auto index_of = [&](const allocation& a, std::size_t p) {
        return static_cast<std::size_t>(a.base - view) / page_size + p;
    };

    // What the device holds now, unless checked mode limits the kernel to
    // its declared ranges.
    if (table.anywhere || !checked) {
        m_allocations.for_each([&](const allocation& a) {
            if (a.valid_pages[where] == 0 && a.in_place_pages == 0) return;
            bool any = false, writes = false;
            for (std::size_t p = 0; p < a.page_count; ++p) {
                const page_state& st = a.pages[p];
                if (!st.valid_at(where)) continue;
                const bool alone = st.valid == bit(where);
                entries[index_of(a, p)] =
                    page_entry(a, p, (st.in_place & bit(where)) != 0, table_read | (alone ? table_write : 0));
                any = true;
                writes = writes || alone;
            }
            if (any) uses.push_back({&a, 0, a.page_count, writes});
        });
    }
    // This launch's pages, as they will be once staged and committed: read
    // ranges shared (or still exclusive), written ones exclusive. Checked
    // mode grants the declared access only.
    for (const range_request& r : ranges)
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            std::uint64_t& e = entries[index_of(*r.alloc, p)];
            const std::uint64_t now = checked ? 0 : e & table_permissions;
            e = page_entry(*r.alloc, p, r.in_place, now | table_read | (r.writes ? table_write : 0));
        }

    std::vector<upload_op> ops = dev.table.update(*dev.backend, std::move(entries));
    const device_mirror* table_mirror = dev.table.table();
    reachable.push_back(table_mirror);

    space_block block{};
    block.header.base = reinterpret_cast<std::uintptr_t>(view);
    block.header.pages = extent;
    block.header.table = dev.backend->device_address(*table_mirror);
    block.header.flags = (checked ? space_checked : 0) | (table.anywhere ? space_anywhere : 0);
    block.header.fault_capacity = fault_capacity;
    block.header.device = static_cast<std::uint32_t>(dev.index);
    if (checked) {
        block.header.range_count = static_cast<std::uint32_t>(declared.size());
        std::copy(declared.begin(), declared.end(), block.ranges.begin());
    }
    auto& host = dev.table.host_block();
    std::memcpy(host.data(), &block, sizeof block);
    ops.push_back({&dev.table.block(*dev.backend), 0, host.data(), sizeof block});
    return ops;
}

event context_impl::launch_through_table(device_slot& dev, const kernel& k, dims grid_dims, dims group_dims, grid g,
                                         std::span<const launch_arg> args, table_launch& table, bool replayable) {
    const std::string& device_name = dev.backend->properties().name;
    device_page_table::launch_guard one_at_a_time(dev.table);
    lock_type lock(m_lock);
    const std::vector<space_range> declared = declared_ranges(args);
    std::uint64_t faults_in_all = 0;
    for (unsigned round = 0;; ++round) {
        const sync_point done = submit_launch(lock, dev, k, grid_dims, group_dims, g, args, &table);
        lock.unlock();
        context_mutex::assert_none_held();
        try {
            dev.backend->wait(done);
        } catch (...) {
            lock.lock();
            throw;
        }
        lock.lock();
        dev.table.retire_old();

        // The fault log, back from the device's copy of the block.
        auto& host = dev.table.host_block();
        const download_op back{&dev.table.block(*dev.backend), 0, host.data(), space_block_bytes};
        dev.backend->download({&back, 1}, {&done, 1});
        space_header header;
        std::memcpy(&header, host.data(), sizeof header);
        if (header.fault_count == 0) return event(std::make_shared<event_state>(event_state{dev.backend, done}));

        const std::uint32_t recorded = std::min(header.fault_count, fault_capacity);
        std::vector<fault_record> records(recorded);
        std::memcpy(records.data(), host.data() + sizeof(space_block), recorded * sizeof(fault_record));
        count(m_stats, &usm::stats::device_faults, header.fault_count, nullptr, &dev);
        faults_in_all += header.fault_count;
        if (m_trace.on()) {
            const double at = m_trace.now();
            m_trace.complete("device faults", "fault", tracer::queue_track(dev.index, 0), at, at,
                             concat("\"device\": ", dev.index, ", \"faults\": ", header.fault_count, ", \"round\": ",
                                    round, ", \"first\": \"", reinterpret_cast<const void*>(records.front().address),
                                    "\", \"access\": \"", access_word(records.front().access), "\""));
        }

        // Each fault is serviced (its block brought, for writing if it
        // wrote) or fatal: outside every allocation, outside what the launch
        // declared, or in a kernel that cannot run again.
        std::vector<range_request> more;
        for (const fault_record& f : records) {
            const void* address = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(f.address));
            allocation* a = m_allocations.find(address);
            const bool in_declared = std::any_of(declared.begin(), declared.end(), [&](const space_range& r) {
                return f.address >= r.begin && f.address < r.end && (r.access & f.access) == f.access;
            });
            const char* why = nullptr;
            if (a == nullptr)
                why = "is not in a live allocation of this context";
            else if (!table.anywhere && !in_declared)
                why = m_options.check ? "is outside the launch's declared ranges (checked mode)"
                                      : "is outside the launch's declared ranges (usm::declared)";
            else if (!replayable)
                why = (f.access & table_write) != 0 && a->pages[a->page_of(address)].valid_at(dev.where)
                          ? "is read-only on the device, and the kernel is not usm::replayable"
                          : "is not valid on the device, and the kernel is not usm::replayable";
            if (why != nullptr) {
                std::string where_it_is;
                if (a != nullptr) where_it_is = concat(" (allocation ", a->id, ", page ", a->page_of(address), ")");
                throw_error(errc::device_fault, "launch of '", k.name(), "' on ", device_name, " (device ", f.device,
                            "): device fault: ", access_word(f.access), " at ", address, where_it_is, " ", why, "; ",
                            faults_in_all, " device fault", faults_in_all == 1 ? "" : "s", " in all");
            }
            ++a->counters.device_faults;  // the recorded ones; the context and device count all
            const std::size_t page = a->page_of(address);
            const std::size_t block = page / a->block_pages * a->block_pages;
            const bool writes = (f.access & table_write) != 0;
            // A read brings the block around it, as a host fault does; a write
            // takes only its page (the host keeps the rest).
            more.push_back({a, block, std::min(block + a->block_pages, a->page_count), true, false});
            if (writes) more.push_back({a, page, page + 1, true, true});
        }
        // Progress: a round must grant something the previous ones did not,
        // else the kernel would fault forever.
        const std::vector<range_request> before = merge_requests(table.serviced);
        auto covered = [&](const range_request& r) {
            return std::any_of(before.begin(), before.end(), [&](const range_request& s) {
                return s.alloc == r.alloc && s.first_page <= r.first_page && r.end_page <= s.end_page &&
                       (s.writes || !r.writes);
            });
        };
        if (std::all_of(more.begin(), more.end(), covered)) {
            const fault_record& f = records.front();
            throw_error(errc::device_fault, "launch of '", k.name(), "' on ", device_name,
                        ": device fault: ", access_word(f.access), " at ", reinterpret_cast<const void*>(f.address),
                        " again after usm granted it (an access straddling two device buffers?); ", faults_in_all,
                        " device faults in all");
        }
        table.serviced.insert(table.serviced.end(), more.begin(), more.end());
        table.serviced = merge_requests(std::move(table.serviced));
        count(m_stats, &usm::stats::replays, 1, nullptr, &dev);
    }
}

}  // namespace usm::detail
