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
    const bool checked = m_options.check && !table.anywhere;  // usm::any is checked against the table only
    const std::vector<space_range> declared = declared_ranges(args);
    if (checked && declared.size() > max_space_ranges)
        throw_error(errc::unsupported, "launch on ", dev.backend->properties().name, ": checked mode (USM_CHECK) ",
                    "checks at most ", max_space_ranges, " declared ranges; this launch declares ", declared.size());

    const auto* view = m_space->view_begin();
    std::size_t extent = 0;  // table entries: up to the end of the highest allocation
    m_allocations.for_each([&](const allocation& a) {
        extent = std::max(extent, static_cast<std::size_t>(a.base - view) / page_size + a.page_count);
    });
    // Everything that may throw comes first: from the first entry written,
    // the host copy is ahead of the device's until this launch's batch lands
    // (a failure after that invalidates the table).
    device_mirror& block_mirror = dev.table.block(*dev.backend);
    device_page_table& t = dev.table;
    t.reserve(*dev.backend, extent);
    const device_mirror* table_mirror = t.table();
    const std::uint64_t table_address = dev.backend->device_address(*table_mirror);
    reachable.push_back(table_mirror);

    // Device addresses of an allocation's segments and import, looked up
    // once per allocation.
    const allocation* cached = nullptr;
    std::vector<std::uint64_t> segment_address;
    std::uint64_t import_address = 0;
    auto address_of = [&](const device_mirror* m) {
        if (std::find(reachable.begin(), reachable.end(), m) == reachable.end()) reachable.push_back(m);
        return dev.backend->device_address(*m);
    };
    auto addresses = [&](const allocation& a) {
        if (&a == cached) return;
        cached = &a;
        const auto& segments = a.segments[where];
        segment_address.assign(segments.size(), 0);
        for (std::size_t s = 0; s < segments.size(); ++s)
            if (segments[s]) segment_address[s] = address_of(segments[s].get());
        import_address = a.imports[where] ? address_of(a.imports[where].get()) : 0;
    };
    auto page_entry = [&](const allocation& a, std::size_t p, bool in_place, std::uint64_t permission) {
        addresses(a);
        const std::uint64_t at = in_place
                                     ? import_address + (p << page_shift)
                                     : segment_address[p / dev.segment_pages] + ((p % dev.segment_pages) << page_shift);
        return (at << table_address_shift) | permission;
    };
    auto first_entry = [&](const allocation& a) { return static_cast<std::size_t>(a.base - view) / page_size; };

    auto& slices = t.slices();
    try {
        // Slices that no longer hold what the device has: of allocations
        // freed (or moved: a new one at another place under the same id
        // cannot happen, ids are unique), or written ahead of a commit, or,
        // for a usm::declared kernel, every slice (it gets its ranges only).
        for (auto it = slices.begin(); it != slices.end();) {
            const allocation* a = m_allocations.find_base(m_space->view_begin() + it->second.first * page_size);
            if (a != nullptr && a->id == it->first && table.anywhere) {
                ++it;
                continue;
            }
            for (std::size_t e = it->second.first; e < it->second.first + it->second.pages; ++e) t.set(e, 0);
            it = slices.erase(it);
        }
        // What the device holds now, for a kernel that may go anywhere: in
        // each allocation's slice, the blocks whose copies changed since it
        // was written, and the pages an earlier launch wrote ahead of its
        // commit.
        if (table.anywhere) {
            m_allocations.for_each([&](const allocation& a) {
                const bool held = a.valid_pages[where] != 0 || a.in_place_pages != 0;
                auto it = slices.find(a.id);
                if (it == slices.end() && !held) return;
                const std::size_t first = first_entry(a);
                device_page_table::slice& s = it != slices.end() ? it->second : slices[a.id];
                const bool fresh = it == slices.end() || s.whole;
                auto rewrite = [&](std::size_t from, std::size_t to) {
                    for (std::size_t p = from; p < to; ++p) {
                        const page_state& st = a.pages[p];
                        if (!st.valid_at(where)) {
                            t.set(first + p, 0);
                            continue;
                        }
                        const bool alone = st.valid == bit(where);
                        t.set(first + p, page_entry(a, p, (st.in_place & bit(where)) != 0,
                                                    table_read | (alone ? table_write : 0)));
                        s.writes = s.writes || alone;
                    }
                };
                if (fresh) {
                    s = {a.version, first, a.page_count, false, false, {}};
                    rewrite(0, a.page_count);
                } else {
                    if (s.version != a.version)
                        for (std::size_t b = 0; b < a.block_versions.size(); ++b)
                            if (a.block_versions[b] > s.version)
                                rewrite(b * a.block_pages, std::min((b + 1) * a.block_pages, a.page_count));
                    for (const auto& [from, to] : s.overlay) rewrite(from, to);
                    s.overlay.clear();
                    s.version = a.version;
                }
                if (!held) return;  // every entry 0
                addresses(a);       // the kernel may reach its mirrors
                uses.push_back({&a, 0, a.page_count, s.writes});
            });
        }
        // This launch's pages, as they will be once staged and committed:
        // written ones exclusive here; read ones shared, or still exclusive
        // where the device holds the only copy and staging keeps it so (a
        // page used in place must be in host memory: staging fetches a
        // device-only copy home, and it is shared after). Checked mode grants
        // a usm::declared kernel the declared access only. They are
        // rewritten from the states next time.
        for (const range_request& r : ranges) {
            const allocation& a = *r.alloc;
            const std::size_t first = first_entry(a);
            for (std::size_t p = r.first_page; p < r.end_page; ++p) {
                const page_state& st = a.pages[p];
                const bool stays_alone =
                    !checked && st.valid == bit(where) && (!r.in_place || (st.in_place & bit(where)) != 0);
                t.set(first + p,
                      page_entry(a, p, r.in_place, table_read | (r.writes || stays_alone ? table_write : 0)));
            }
            auto it = slices.find(a.id);
            if (it == slices.end()) {
                slices[a.id] = {a.version, first, a.page_count, r.writes, true, {}};  // only these pages written
            } else {
                it->second.overlay.emplace_back(r.first_page, r.end_page);
                it->second.writes = it->second.writes || r.writes;
            }
        }
    } catch (...) {
        t.invalidate();
        throw;
    }
    std::vector<upload_op> ops = t.take_uploads();

    space_block block{};
    block.header.base = reinterpret_cast<std::uintptr_t>(view);
    block.header.pages = extent;
    block.header.table = table_address;
    block.header.flags = (checked ? space_checked : 0) | (table.anywhere ? space_anywhere : 0);
    block.header.fault_capacity = fault_capacity;
    block.header.device = static_cast<std::uint32_t>(dev.index);
    if (checked) {
        block.header.range_count = static_cast<std::uint32_t>(declared.size());
        std::copy(declared.begin(), declared.end(), block.ranges.begin());
    }
    auto& host = dev.table.host_block();
    std::memcpy(host.data(), &block, sizeof block);
    ops.push_back({&block_mirror, 0, host.data(), sizeof block});
    return ops;
}

event context_impl::launch_through_table(device_slot& dev, const kernel& k, dims grid_dims, dims group_dims, grid g,
                                         std::span<const launch_arg> args, table_launch& table, bool replayable) {
    const std::string& device_name = dev.backend->properties().name;
    device_page_table::launch_guard one_at_a_time(dev.table);
    lock_type lock(m_lock);
    const std::vector<space_range> declared = declared_ranges(args);
    const bool checked = m_options.check && !table.anywhere;
    std::uint64_t faults_in_all = 0;
    auto fault_error = [&](const fault_record& f, const allocation* a, const char* why) {
        const void* address = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(f.address));
        std::string where_it_is;
        if (a != nullptr) where_it_is = concat(" (allocation ", a->id, ", page ", a->page_of(address), ")");
        throw_error(errc::device_fault, "launch of '", k.name(), "' on ", device_name, " (device ", dev.index,
                    "): device fault: ", access_word(f.access), " at ", address, where_it_is, " ", why, "; ",
                    faults_in_all, " device fault", faults_in_all == 1 ? "" : "s", " in all");
    };
    for (unsigned round = 0;; ++round) {
        const sync_point done = submit_launch(lock, dev, k, grid_dims, group_dims, g, args, &table);
        if (round > 0) count(m_stats, &usm::stats::replays, 1, nullptr, &dev);
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

        // Each fault is serviced (its page brought, for writing if it wrote)
        // or fatal: outside every allocation, outside what the launch
        // declared, or in a kernel that cannot run again.
        std::vector<serviced_range> more;
        const fault_record* fatal = nullptr;
        const allocation* fatal_in = nullptr;
        const char* why = nullptr;
        for (const fault_record& f : records) {
            const void* address = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(f.address));
            allocation* a = m_allocations.find(address);
            if (a != nullptr) ++a->counters.device_faults;  // the recorded ones; the context and device count all
            if (fatal != nullptr) continue;
            const space_range* range = nullptr;
            for (const space_range& r : declared)
                if (f.address >= r.begin && f.address < r.end) range = &r;
            const char* fails = nullptr;
            if (a == nullptr)
                fails = "is not in a live allocation of this context";
            else if (checked)  // the table grants every declared page: only the byte check faults
                fails = range != nullptr && (range->access & f.access) != f.access
                            ? "is in a range the launch declared read-only (checked mode)"
                            : "is outside the launch's declared ranges (checked mode)";
            else if (!table.anywhere)
                fails = range == nullptr ? "is outside the launch's declared ranges (usm::declared)"
                                         : "is in a range the launch declared read-only (usm::declared)";
            else if (!replayable)
                fails = (f.access & table_write) != 0 && a->pages[a->page_of(address)].valid_at(dev.where)
                            ? "is read-only on the device, and the kernel is not usm::replayable"
                            : "is not valid on the device, and the kernel is not usm::replayable";
            if (fails != nullptr) {
                fatal = &f;
                fatal_in = a;
                why = fails;
                continue;
            }
            const std::size_t page = a->page_of(address);
            // A read brings the block around it, as a host fault does; a
            // write takes only its page (the host keeps the rest).
            if ((f.access & table_write) != 0) {
                more.push_back({a->base, a->id, page, page + 1, true});
            } else {
                const std::size_t block = page / a->block_pages * a->block_pages;
                more.push_back({a->base, a->id, block, std::min(block + a->block_pages, a->page_count), false});
            }
        }
        if (fatal != nullptr) fault_error(*fatal, fatal_in, why);

        // Progress: a round must grant something the previous ones did not,
        // else the kernel would fault forever. (Faults past the log's
        // capacity were not seen: they may be new.)
        auto covered = [&](const serviced_range& r) {
            return std::any_of(table.serviced.begin(), table.serviced.end(), [&](const serviced_range& s) {
                return s.id == r.id && s.first <= r.first && r.end <= s.end && (s.writes || !r.writes);
            });
        };
        if (header.fault_count <= fault_capacity && std::all_of(more.begin(), more.end(), covered)) {
            const fault_record& f = records.front();
            fault_error(f, m_allocations.find(reinterpret_cast<const void*>(static_cast<std::uintptr_t>(f.address))),
                        "faulted again after usm granted it (an access straddling two device buffers?)");
        }
        for (const serviced_range& r : more)
            if (!covered(r)) table.serviced.push_back(r);
    }
}

}  // namespace usm::detail
