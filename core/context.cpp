// core/context.cpp - context creation and teardown, allocation and freeing,
// statistics, and the public usm::context.
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"
#include "core/fault_injection.hpp"

namespace usm::detail {

/* --- creation and teardown --------------------------------------------- */

context_impl::context_impl(const context_options& options)
    : m_pid(::getpid()),
      m_options(resolve_options(options)),
      m_space(std::make_unique<address_space>(m_options.va_size)),
      m_trace(m_options.trace),
      m_inflight(m_trace),
      m_policies(m_options),
      m_migration(*m_space, m_stats, m_by_location, m_policies, m_trace),
      m_coherence(*m_space, m_stats, m_migration, m_policies, m_options.block_size >> page_shift),
      m_thrashing(m_stats, m_policies, m_options.block_size >> page_shift),
      m_evictor(m_stats, m_coherence, m_policies, m_options.block_size >> page_shift, m_trace),
      m_residency(m_resident, m_thrashing, m_evictor, m_options.block_size >> page_shift) {
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
        m_fault_path == usm::fault_path::userfaultfd ? "userfaultfd" : "the SIGSEGV handler", "; policies: read-ahead ",
        m_policies.read_ahead_name(), ", eviction ", m_policies.eviction_name(), ", thrashing ",
        m_policies.thrashing_name(), ", copy path ", m_policies.copy_path_name());
    open_backends();
    // Drivers (PoCL's LLVM) install SIGSEGV handlers while they load: put
    // usm's back on top now that they are loaded.
    // Stray accesses (guard pages, freed ranges) fault as SIGSEGV on both
    // paths: the handler passes them on.
    register_fault_range(m_space->view_begin(), m_space->view_end(), this);
    m_registered = true;
    ensure_fault_handler_on_top();
    if (m_uffd) m_uffd->start([this](const uffd_region::fault& f) { serve_uffd_fault(f); });
}

void context_impl::open_backends() {
    std::vector<std::string> reasons;
    for (const backend_entry& entry : available_backends()) {
        if (m_options.backend != "all" && m_options.backend != entry.name) continue;
        if (m_options.backend == "all" && entry.explicit_only) continue;
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
        if (where.where() == placement::kind::device) place_on_device(lock, *a, *where.target());
    } catch (...) {
        forget_residency(*a);
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

void context_impl::place_on_device(lock_type& lock, allocation& a, device_slot& dev) {
    for (page_state& st : a.pages) st.advice.preferred = static_cast<std::uint8_t>(dev.where + 1);
    const range_request whole{&a, 0, a.page_count, true, false};
    for (;;) {
        m_inflight.retire_completed();
        auto waits = m_residency.reserve("alloc", dev, {&whole, 1}, m_allocations, m_inflight);
        if (waits.empty()) break;
        wait_unlocked(lock, waits);
    }
    const sync_point filled = m_coherence.stage_for_launch(dev, {&whole, 1});
    m_coherence.commit_launch(dev, {&whole, 1}, {});
    m_inflight.add({dev.where, dev.backend, filled, {{&a, 0, a.page_count, false}}, nullptr});
}

void context_impl::forget_residency(const allocation& a) {
    for (location l = 0; l < max_locations; ++l) m_resident[l] -= a.valid_pages[l];
    for (location l = 1; l < max_locations; ++l)
        if (m_by_location[l] != nullptr)
            m_by_location[l]->segment_pages_live -= live_segment_pages(a, *m_by_location[l]);
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
            free_locked(*a);
            return;
        }
        wait_unlocked(lock, waits);
    }
}

void context_impl::free_locked(allocation& a) {
    std::unique_ptr<allocation> gone = m_allocations.remove(a);
    forget_residency(*gone);
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
