// core/context.cpp - context creation and teardown, allocation, host faults.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/diagnostics.hpp"
#include "core/fault_injection.hpp"
#include "core/mmu_check.hpp"

namespace usm::detail {

/* --- creation and teardown --------------------------------------------- */

context_impl::context_impl(const context_options& options)
    : m_pid(::getpid()),
      m_options(resolve_options(options)),
      m_space(std::make_unique<address_space>(m_options.va_size)),
      m_trace(m_options.trace),
      m_inflight(m_trace),
      m_coherence(*m_space, m_stats, m_by_location, m_options.block_size >> page_shift, m_options.thrash_in_place,
                  m_trace) {
    // The signal path is the default: measured faster on the machines usm
    // runs on (docs/fault-paths.md).
    if (m_options.fault == usm::fault_path::userfaultfd) {
        std::string why_not = "denied by a test";
        if (!testing::userfaultfd_denied()) m_uffd = uffd_region::open(m_space->view_begin(), m_space->size(), why_not);
        if (m_uffd) {
            m_space->use_userfaultfd(m_uffd.get());
            m_fault_path = usm::fault_path::userfaultfd;
        } else {
            log(log_level::warn, "userfaultfd fault path unavailable, using SIGSEGV instead: ", why_not);
        }
    }
    log(log_level::debug, "host faults served by ",
        m_fault_path == usm::fault_path::userfaultfd ? "userfaultfd" : "the SIGSEGV handler");

    std::vector<std::string> reasons;
    for (const backend_entry& entry : registered_backends()) {
        if (m_options.backend != "all" && m_options.backend != entry.name) continue;
        std::string why_not;
        std::shared_ptr<driver> drv = entry.load(why_not);
        if (!drv) {
            reasons.push_back(concat(entry.name, ": ", why_not));
            continue;
        }
        const auto& candidates = drv->candidates();
        if (candidates.empty()) reasons.push_back(concat(entry.name, ": the driver reports no device"));
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            const device_candidate& c = candidates[i];
            const std::size_t copies = device_selections(m_options.device, entry.name, i, c.name);
            if (copies == 0) {
                reasons.push_back(
                    concat(entry.name, " device ", i, " (", c.name, "): not selected by '", m_options.device, "'"));
                continue;
            }
            if (!c.rejected_because.empty()) {
                reasons.push_back(concat(entry.name, " device ", i, " (", c.name, "): ", c.rejected_because));
                continue;
            }
            for (std::size_t copy = 0; copy < copies; ++copy) open_device(*drv, entry.name, i, reasons);
        }
    }
    if (m_slots.empty() && m_options.require_device) {
        std::string text = concat("context: no usable device for backend '", m_options.backend, "'");
        for (const std::string& r : reasons) text += "\n  " + r;
        throw error(errc::no_device, text);
    }
    // Drivers (PoCL's LLVM) install SIGSEGV handlers while they load: put
    // usm's back on top now that they are loaded.
    // Stray accesses (guard pages, freed ranges) fault as SIGSEGV on both
    // paths: the handler passes them on.
    register_fault_range(m_space->view_begin(), m_space->view_end(), this);
    m_registered = true;
    ensure_fault_handler_on_top();
    if (m_uffd) m_uffd->start([this](const uffd_region::fault& f) { serve_uffd_fault(f); });
}

void context_impl::open_device(driver& drv, const char* backend_name, std::size_t index,
                               std::vector<std::string>& reasons) {
    const device_candidate& c = drv.candidates()[index];
    if (m_slots.size() + 1 >= max_locations) {
        log(log_level::warn, "context: more than ", max_locations - 1, " devices; ignoring ", c.name);
        return;
    }
    try {
        auto slot = std::make_unique<device_slot>();
        slot->owner = this;
        slot->backend = std::shared_ptr<device_backend>(drv.open(index));
        slot->where = static_cast<location>(m_slots.size() + 1);
        slot->index = m_slots.size();
        const device_properties& props = slot->backend->properties();
        const std::size_t budget = m_options.device_budget != 0 ? m_options.device_budget
                                   : props.memory_bytes != 0    ? props.memory_bytes
                                                                : std::size_t{1} << 62;
        slot->budget_pages = budget >> page_shift;
        // Segments are whole blocks, no larger than the device's largest buffer.
        const std::size_t block_bytes = m_options.block_size;
        std::size_t segment = props.max_allocation != 0 ? props.max_allocation : std::size_t{1} << 62;
        if (m_options.segment_size != 0) segment = std::min<std::size_t>(segment, m_options.segment_size);
        segment = segment >= block_bytes ? segment & ~(block_bytes - 1) : segment & ~(page_size - 1);
        slot->segment_pages = std::max<std::size_t>(segment >> page_shift, 1);
        m_by_location[slot->where] = slot.get();
        m_trace.name_track(tracer::queue_track(slot->index, 0), concat("device ", slot->index, " ", props.name));
        log(log_level::info, "device ", slot->index, ": ", props.name, " (", backend_name, ", ", props.driver,
            "), budget ", format_bytes(slot->budget_pages << page_shift), ", segments of ",
            format_bytes(slot->segment_pages << page_shift));
        m_slots.push_back(std::move(slot));
    } catch (const error& e) {
        reasons.push_back(concat(backend_name, " device ", index, " (", c.name, "): ", e.what()));
        log(log_level::warn, "cannot open ", backend_name, " device ", c.name, ": ", e.what());
    }
}

context_impl::~context_impl() {
    // Let in-flight work finish, then take the range away from the handler
    // before any state it reads is destroyed.
    std::vector<pending_wait> waits;
    {
        std::lock_guard lock(m_lock);
        waits = m_inflight.all();
    }
    for (const pending_wait& w : waits) {
        try {
            w.device->wait(w.point);
        } catch (const std::exception& e) {
            log(log_level::error, "context teardown: ", e.what());
        }
    }
    for (auto& slot : m_slots) slot->backend->wait_idle();
    if (m_trace.on()) {
        std::lock_guard lock(m_lock);
        try {
            m_inflight.retire_completed();  // the last kernels' trace events
        } catch (const std::exception& e) {
            log(log_level::error, "context teardown: ", e.what());
        }
    }
    if (m_uffd) m_uffd->stop();
    if (m_registered) unregister_fault_range(this);
    // Mirrors go with their allocations; the address space is unmapped last.
    std::lock_guard lock(m_lock);
    std::vector<allocation*> live;
    m_allocations.for_each([&](allocation& a) { live.push_back(&a); });
    for (allocation* a : live) m_allocations.remove(*a);
}

void context_impl::check_process(const char* operation) const {
    if (::getpid() != m_pid)
        throw_error(errc::wrong_process, operation, ": this context belongs to process ", m_pid,
                    "; usm memory is not inherited across fork()");
}

void context_impl::wait_unlocked(lock_type& lock, std::vector<pending_wait>& waits) {
    lock.unlock();
    context_mutex::assert_none_held();
    const double began = m_trace.now();
    try {
        for (const pending_wait& w : waits) w.device->wait(w.point);
    } catch (...) {
        lock.lock();
        throw;
    }
    if (m_trace.on())
        m_trace.complete("wait", "wait", tracer::this_thread(), began, m_trace.now(),
                         concat("\"points\": ", waits.size()));
    lock.lock();
    m_stats.kernel_waits += waits.size();
    waits.clear();
}

/* --- allocation --------------------------------------------------------- */

void* context_impl::alloc(std::size_t bytes, const placement& where) {
    check_process("alloc");
    if (bytes == 0) return nullptr;
    if (where.where() == placement::kind::device &&
        std::none_of(m_slots.begin(), m_slots.end(), [&](const auto& s) { return s.get() == where.target(); }))
        throw_error(errc::invalid_argument, "alloc(", bytes,
                    " bytes): placement::device names a device of another context");
    if (bytes > m_space->size())
        throw_error(errc::address_space_exhausted, "alloc(", format_bytes(bytes), "): larger than the context's ",
                    format_bytes(m_space->size()), " address space (USM_VA_SIZE or context_options::va_size)");

    const std::size_t pages = round_up_to_pages(bytes) >> page_shift;
    const double began = m_trace.on() ? m_trace.now() : 0;
    lock_type lock(m_lock);
    // One guard page after each allocation: an overrun faults as a stray
    // access instead of reaching the next allocation.
    auto base = m_space->carve((pages + 1) << page_shift);
    if (!base)
        throw_error(errc::address_space_exhausted, "alloc(", format_bytes(bytes), "): no free run of ",
                    format_bytes((pages + 1) << page_shift), " left in the context's ", format_bytes(m_space->size()),
                    " address space (", m_allocations.size(), " live allocations; raise USM_VA_SIZE)");

    auto a = std::make_unique<allocation>();
    a->base = *base;
    a->bytes = bytes;
    a->page_count = pages;
    a->id = m_next_id++;
    a->resident = &m_resident;
    if (m_trace.on()) a->trace = &m_trace;
    a->block_pages = m_options.block_size >> page_shift;
    a->block_versions.assign(a->block_count(), 0);
    try {
        m_space->activate(*base, pages << page_shift);
        m_coherence.init_allocation(*a);
        if (where.where() == placement::kind::host)
            for (page_state& st : a->pages) st.advice.preferred = host_location + 1;
        if (where.where() == placement::kind::device) {
            device_slot& dev = *where.target();
            for (page_state& st : a->pages) st.advice.preferred = static_cast<std::uint8_t>(dev.where + 1);
            const range_request whole{a.get(), 0, pages, true, false};
            for (;;) {
                m_inflight.retire_completed();
                auto waits = m_coherence.reserve("alloc", dev, {&whole, 1}, m_allocations, m_inflight);
                if (waits.empty()) break;
                wait_unlocked(lock, waits);
            }
            const sync_point filled = m_coherence.stage_for_launch(dev, {&whole, 1});
            m_coherence.commit_launch(dev.where, {&whole, 1}, {});
            inflight_op op{dev.where, dev.backend, filled, {{a.get(), 0, pages, false}}, nullptr};
            m_inflight.add(std::move(op));
        }
    } catch (...) {
        for (location l = 0; l < max_locations; ++l) m_resident[l] -= a->valid_pages[l];
        for (location l = 1; l < max_locations; ++l)
            if (m_by_location[l] != nullptr)
                m_by_location[l]->segment_pages_live -= m_coherence.live_segment_pages(*a, l);
        m_space->release(*base, (pages + 1) << page_shift);
        throw;
    }
    if (m_trace.on()) {
        // Stamped at the start: a device placement's first copies follow it.
        m_trace.complete("alloc", "residency", tracer::this_thread(), began, began,
                         concat("\"allocation\": ", a->id, ", \"pages\": ", a->page_count, ", \"bytes\": ", bytes));
    }
    m_allocations.insert(std::move(a));
    ++m_stats.allocations;
    m_stats.bytes_allocated += bytes;
    return *base;
}

void context_impl::free(const void* p) {
    check_process("free");
    if (p == nullptr) return;
    lock_type lock(m_lock);
    for (;;) {
        allocation* a = m_allocations.find_base(p);
        if (a == nullptr) {
            if (m_allocations.was_freed(p)) throw_error(errc::double_free, "free(", p, "): already freed");
            if (const allocation* inside = m_allocations.find(p))
                throw_error(errc::not_a_usm_pointer, "free(", p, "): points inside allocation ", inside->id, " at ",
                            static_cast<const void*>(inside->base), ", not at its start");
            throw_error(errc::not_a_usm_pointer, "free(", p, "): not an allocation of this context");
        }
        m_inflight.retire_completed();
        auto waits = m_inflight.uses_of(*a);
        if (waits.empty()) {
            free_locked(lock, *a);
            return;
        }
        wait_unlocked(lock, waits);
    }
}

void context_impl::free_locked(lock_type&, allocation& a) {
    std::unique_ptr<allocation> gone = m_allocations.remove(a);
    for (location l = 0; l < max_locations; ++l) m_resident[l] -= gone->valid_pages[l];
    for (location l = 1; l < max_locations; ++l)
        if (m_by_location[l] != nullptr)
            m_by_location[l]->segment_pages_live -= m_coherence.live_segment_pages(*gone, l);
    // Drivers let go of imported host memory before its pages are dropped.
    for (auto& import : gone->imports) import.reset();
    --m_stats.allocations;
    m_stats.bytes_allocated -= gone->bytes;
    if (m_trace.on()) {
        const double at = m_trace.now();
        m_trace.complete("free", "residency", tracer::this_thread(), at, at, concat("\"allocation\": ", gone->id));
    }
    m_space->release(gone->base, (gone->page_count + 1) << page_shift);
    // gone's mirrors are destroyed here; no pending work uses them.
}

bool context_impl::owns(const void* p) const noexcept {
    std::lock_guard lock(m_lock);
    return m_allocations.find(p) != nullptr;
}

/* --- host faults -------------------------------------------------------- */

bool context_impl::serve_host_access(void* address, host_access kind, bool count, bool map, std::uint64_t thread) {
    const double began = m_trace.now();
    lock_type lock(m_lock);
    bool waited = false;
    for (;;) {
        allocation* a = m_allocations.find(address);
        if (a == nullptr) return false;  // guard page or freed: a stray access
        const std::size_t page = a->page_of(address);
        const bool write =
            kind == host_access::write || (kind == host_access::unknown && a->pages[page].valid_at(host_location));
        m_inflight.retire_completed();
        auto outcome = m_coherence.resolve_host_fault(*a, page, kind, m_inflight);
        if (outcome.waits.empty()) {
            // A fault is counted once, when usm had to act on it.
            if (count && (outcome.changed || waited)) {
                detail::count(m_stats, write ? &usm::stats::host_write_faults : &usm::stats::host_read_faults, 1, a,
                              nullptr);
                if (m_trace.on())
                    m_trace.complete(write ? "host write fault" : "host read fault", "fault",
                                     thread != 0 ? thread : tracer::this_thread(), began, m_trace.now(),
                                     concat("\"address\": \"", address, "\", \"allocation\": ", a->id,
                                            ", \"page\": ", page, ", \"waited\": ", waited ? "true" : "false"));
            }
            if (map) map_around(*a, page);
            return true;
        }
        wait_unlocked(lock, outcome.waits);
        waited = true;
    }
}

bool context_impl::on_host_fault(void* address, host_access kind) noexcept {
    // A forked child inherits the handler but not the memory (MADV_DONTFORK):
    // its access is an ordinary stray one, passed on to end in SIGSEGV.
    if (::getpid() != m_pid) return false;
    if (m_lock.held_by_this_thread()) {
        // usm touched the application view while holding its lock: a bug
        // that would deadlock. Say so rather than hang.
        static const char text[] = "usm: internal error: host fault in usm memory while holding the context lock\n";
        [[maybe_unused]] auto written = ::write(STDERR_FILENO, text, sizeof text - 1);
        std::abort();
    }
    try {
        return serve_host_access(address, kind, true);
    } catch (const std::exception& e) {
        // The access cannot be served: report it the way the kernel reports
        // a failed page-in of a mapped file.
        log(log_level::error, "host ", kind == host_access::write ? "write" : "read", " of ", address,
            " cannot be served: ", e.what(), "; raising SIGBUS");
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        ::sigaction(SIGBUS, &dfl, nullptr);
        ::raise(SIGBUS);
        return true;
    }
}

void context_impl::map_around(const allocation& a, std::size_t page) {
    // Under the lock, so no launch revokes these pages between the decision
    // and the map. Neighbours the host may touch the same way come along
    // (within one block), so a sweep takes one fault per block, not per page.
    const protection p = a.pages[page].host_protection();
    if (p == protection::none) return;
    const std::size_t block = m_options.block_size >> page_shift;
    const std::size_t first = page & ~(block - 1), end = std::min(first + block, a.page_count);
    std::size_t lo = page, hi = page + 1;
    while (lo > first && a.pages[lo - 1].host_protection() == p) --lo;
    while (hi < end && a.pages[hi].host_protection() == p) ++hi;
    m_space->map_now(a.page_address(lo), (hi - lo) << page_shift, p);
}

void context_impl::serve_uffd_fault(const uffd_region::fault& f) noexcept {
    try {
        if (!serve_host_access(f.address, f.kind, true, true, static_cast<std::uint64_t>(f.thread))) {
            // Freed meanwhile: the range is inaccessible now, so the retry
            // faults as a stray access.
            auto* page = reinterpret_cast<std::byte*>(reinterpret_cast<std::uintptr_t>(f.address) & ~(page_size - 1));
            m_uffd->wake(page, page_size);
        }
    } catch (const std::exception& e) {
        log(log_level::error, "host ", f.kind == host_access::write ? "write" : "read", " of ", f.address, " (thread ",
            f.thread, ") cannot be served: ", e.what(), "; raising SIGBUS in that thread");
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        ::sigaction(SIGBUS, &dfl, nullptr);
        ::syscall(SYS_tgkill, ::getpid(), f.thread, SIGBUS);
        auto* page = reinterpret_cast<std::byte*>(reinterpret_cast<std::uintptr_t>(f.address) & ~(page_size - 1));
        m_uffd->wake(page, page_size);
    }
}

allocation& context_impl::locate(const char* operation, const void* p, std::size_t bytes) const {
    allocation* owner = m_allocations.find(p);
    if (owner == nullptr) {
        const fault_target* other = fault_range_owner(p);
        throw_error(errc::not_a_usm_pointer, operation, "(", p, ", ", format_bytes(bytes), "): ",
                    other != nullptr && other != this ? "belongs to another usm context"
                                                      : "not in a live allocation of this context");
    }
    const auto offset = static_cast<std::size_t>(static_cast<const std::byte*>(p) - owner->base);
    if (bytes > owner->bytes || offset > owner->bytes - bytes)
        throw_error(errc::out_of_range, operation, "(", p, ", ", format_bytes(bytes), "): runs past allocation ",
                    owner->id, " [", static_cast<const void*>(owner->base), ", +", format_bytes(owner->bytes), ")");
    return *owner;
}

void context_impl::host_access_range(const void* p, std::size_t bytes, access a) {
    check_process("host_access");
    make_host_valid("host_access", p, bytes, a != access::read);
}

void context_impl::make_host_valid(const char* operation, const void* p, std::size_t bytes, bool write) {
    if (bytes == 0) return;
    lock_type lock(m_lock);
    for (;;) {
        // Looked up again after every wait: the allocation may be gone.
        allocation& owner = locate(operation, p, bytes);
        const std::size_t first = owner.page_of(p);
        const std::size_t end = owner.page_of(static_cast<const std::byte*>(p) + bytes - 1) + 1;
        m_inflight.retire_completed();
        // Exactly the range, in one batch per device, no read-ahead. On the
        // userfaultfd path pages not mapped yet map at their first (minor)
        // fault; system calls take that fault too.
        auto outcome = m_coherence.resolve_host_range(owner, first, end, write, m_inflight);
        if (outcome.waits.empty()) return;
        wait_unlocked(lock, outcome.waits);
    }
}

/* --- advice and queries ------------------------------------------------- */

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
    const std::size_t first = a.page_of(p);
    const std::size_t end = a.page_of(static_cast<const std::byte*>(p) + bytes - 1) + 1;
    const auto preferred = static_cast<std::uint8_t>((where != nullptr ? where->where : host_location) + 1);
    for (std::size_t q = first; q < end; ++q) {
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
}

range_info context_impl::query(const void* p, std::size_t bytes) const {
    check_process("query");
    range_info info;
    info.device_pages.assign(m_slots.size(), 0);
    if (bytes == 0) return info;
    std::lock_guard lock(m_lock);
    const allocation& a = locate("query", p, bytes);
    const std::size_t first = a.page_of(p);
    const std::size_t end = a.page_of(static_cast<const std::byte*>(p) + bytes - 1) + 1;
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

std::size_t context_impl::resident_bytes(const device_slot& dev) const {
    std::lock_guard lock(m_lock);
    return m_resident[dev.where] << page_shift;
}

/* --- statistics --------------------------------------------------------- */

usm::stats context_impl::stats() const {
    std::lock_guard lock(m_lock);
    return m_stats;
}

usm::stats context_impl::allocation_stats(const void* p) const {
    std::lock_guard lock(m_lock);
    const allocation* a = m_allocations.find(p);
    if (a == nullptr) throw_error(errc::not_a_usm_pointer, "stats(", p, "): not in a live allocation of this context");
    usm::stats s = a->counters;
    s.allocations = 1;
    s.bytes_allocated = a->bytes;
    return s;
}

usm::stats context_impl::device_stats(const device_slot& dev) const {
    std::lock_guard lock(m_lock);
    return dev.counters;
}

void context_impl::reset_stats() {
    std::lock_guard lock(m_lock);
    const usm::stats live{.allocations = m_stats.allocations, .bytes_allocated = m_stats.bytes_allocated};
    m_stats = live;
    m_allocations.for_each([](allocation& a) { a.counters = {}; });
    for (auto& slot : m_slots) slot->counters = {};
}

void context_impl::check_invariants() const {
    std::lock_guard lock(m_lock);
    const mmu_snapshot mmu(m_space->view_begin(), m_space->view_begin() + m_space->size());
    std::array<std::size_t, max_locations> resident{};
    m_allocations.for_each([&](const allocation& a) {
        for (location l = 0; l < max_locations; ++l) resident[l] += a.valid_pages[l];
    });
    for (const auto& slot : m_slots) {
        std::size_t live = 0;
        m_allocations.for_each([&](const allocation& a) { live += m_coherence.live_segment_pages(a, slot->where); });
        if (live != slot->segment_pages_live)
            throw std::logic_error(concat("usm device memory count of device ", slot->index, " is out of date: ",
                                          slot->segment_pages_live, " pages counted, ", live, " in live segments"));
    }
    if (resident != m_resident)
        throw std::logic_error(concat("usm residency count is out of date: ", m_resident[1],
                                      " pages counted on device 0, ", resident[1], " found"));
    m_allocations.for_each([&](const allocation& a) {
        m_coherence.check_invariants(a);
        // Invariant 3: what the MMU allows never exceeds the host state.
        const std::byte* end = a.base + (a.page_count << page_shift);
        std::vector<protection> actual = mmu.protection_of(a.base, end);
        if (m_fault_path == usm::fault_path::userfaultfd) {
            // The VMA stays read-write; userfaultfd decides per PTE.
            const std::vector<bool> present = read_present(a.base, end);
            const std::vector<bool> protected_ = read_uffd_write_protected(a.base, end);
            for (std::size_t p = 0; p < a.page_count; ++p)
                actual[p] = !present[p]     ? protection::none
                            : protected_[p] ? std::min(actual[p], protection::read)
                                            : actual[p];
        }
        for (std::size_t p = 0; p < a.page_count; ++p) {
            if (actual[p] > a.pages[p].host_protection())
                throw std::logic_error(concat("usm invariant 3 broken: page ", p, " of allocation ", a.id, " at ",
                                              static_cast<const void*>(a.page_address(p)), " is ",
                                              actual[p] == protection::read_write ? "writable" : "readable",
                                              " by the host, but its state allows ",
                                              a.pages[p].host_protection() == protection::none ? "nothing" : "reads"));
        }
    });
}

}  // namespace usm::detail

/* --- the public context ------------------------------------------------- */

namespace usm {

context::context() : context(context_options{}) {}

context::context(const context_options& options) : m_impl(std::make_shared<detail::context_impl>(options)) {
    for (const auto& slot : m_impl->devices()) m_devices.emplace_back(slot.get());
}

context::~context() = default;

void* context::alloc_bytes(std::size_t bytes, placement where) { return m_impl->alloc(bytes, where); }
void context::free_bytes(const void* p) { m_impl->free(p); }
bool context::owns(const void* p) const noexcept { return m_impl->owns(p); }
void context::host_access_bytes(const void* p, std::size_t bytes, access a) { m_impl->host_access_range(p, bytes, a); }
event context::prefetch_bytes(const void* p, std::size_t bytes, device* to) {
    return m_impl->prefetch(p, bytes, to != nullptr ? to->slot() : nullptr);
}
void context::advise_bytes(const void* p, std::size_t bytes, advice a, device* where, bool to_host) {
    m_impl->advise(p, bytes, a, where != nullptr ? where->slot() : nullptr, to_host);
}
range_info context::query_bytes(const void* p, std::size_t bytes) const { return m_impl->query(p, bytes); }
usm::fault_path context::fault_handling() const noexcept { return m_impl->fault_handling(); }
usm::stats context::stats() const { return m_impl->stats(); }
usm::stats context::allocation_stats(const void* p) const { return m_impl->allocation_stats(p); }
void context::reset_stats() { m_impl->reset_stats(); }

void context::throw_size_overflow(std::size_t count, std::size_t size) {
    detail::throw_error(errc::address_space_exhausted, "alloc(", count, " elements of ", size,
                        " bytes): the size overflows");
}

}  // namespace usm
