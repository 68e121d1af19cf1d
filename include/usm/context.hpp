// usm/context.hpp - the context: one address space, its devices, its allocations.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "device.hpp"
#include "error.hpp"
#include "event.hpp"
#include "policy.hpp"
#include "ptr.hpp"
#include "stats.hpp"

namespace usm {

namespace detail {
class context_impl;
}

/// Where a new allocation's pages start out.
class placement {
public:
    enum class kind { shared, host, device };

    /// Migratable memory that starts on the host (the default).
    static placement shared() noexcept { return placement(kind::shared, nullptr); }
    /// Memory that starts on the host and prefers to live there: shared()
    /// with advice::preferred_location set to the host.
    static placement host() noexcept { return placement(kind::host, nullptr); }
    /// Memory that starts valid (zero) on `d`, and invalid on the host, with
    /// advice::preferred_location set to `d`.
    static placement device(const usm::device& d) noexcept { return placement(kind::device, d.slot()); }

    kind where() const noexcept { return m_kind; }
    detail::device_slot* target() const noexcept { return m_device; }

private:
    placement(kind k, detail::device_slot* d) noexcept : m_kind(k), m_device(d) {}
    kind m_kind;
    detail::device_slot* m_device;
};

/// How host accesses to pages the host may not touch are caught.
enum class fault_path {
    automatic,    ///< the measured default (docs/fault-paths.md)
    signal,       ///< SIGSEGV and mprotect; system calls on such pages fail (see context::host_access)
    userfaultfd,  ///< a userfaultfd handler thread; system calls on such pages are served too
};

/// How a context is made. Environment variables (USM_BACKEND, USM_DEVICE,
/// USM_VA_SIZE, USM_BLOCK, USM_FAULT, USM_DEVICE_BUDGET, USM_SEGMENT,
/// USM_READ_AHEAD, USM_EVICT, USM_THRASH, USM_COPY_PATH, USM_CPU_COPY_MAX,
/// USM_TRACE, USM_CHECK, USM_LOG) override these, so existing programs can be
/// steered without rebuilding.
struct context_options {
    /// "vulkan", "opencl" or "all" (every backend that has a device).
    std::string backend = "all";
    /// Empty for every device; otherwise a comma-separated list of items, each
    /// a device index within its backend ("0"), a case-insensitive substring
    /// of the device name ("llvmpipe"), or either after "vulkan:" or "opencl:"
    /// to apply to one backend only ("opencl:0").
    std::string device;
    /// Bytes of virtual address space reserved for allocations.
    std::size_t va_size = std::size_t{64} << 30;
    /// The block: the largest aligned run one host fault acts on (the fresh
    /// pages a first write opens at once, and the most a read of
    /// device-resident data brings back when the pages around it are dense
    /// on the host), and the unit devices keep or evict (a power of two from
    /// 4 KiB, which turns read-ahead off, to 2 MiB; USM_BLOCK).
    std::size_t block_size = std::size_t{2} << 20;
    /// How host faults are caught (USM_FAULT=signal|uffd). A userfaultfd that
    /// the process may not open falls back to signal, with one log line.
    usm::fault_path fault = usm::fault_path::automatic;
    /// Throw errc::no_device when no device is found (else a host-only context).
    bool require_device = true;
    /// Most bytes of usm memory each device holds at once (USM_DEVICE_BUDGET);
    /// 0 means the device's memory size. A launch or prefetch that needs more
    /// evicts the least recently used blocks no in-flight work uses, writing
    /// back only pages the device holds alone (docs/eviction.md). At least
    /// one block.
    std::size_t device_budget = 0;
    /// Largest piece of device memory one allocation's device copy is made of
    /// (USM_SEGMENT); 0 means the device's largest buffer. An allocation may
    /// be larger than that: its copy is then several buffers, created as its
    /// pages first arrive, and each kernel argument must lie within one
    /// aligned segment. A multiple of the block size.
    std::size_t segment_size = 0;
    /// The policies (include/usm/policy.hpp), by built-in name. What a host
    /// fault on device-resident data brings back besides its page:
    /// "density" (the aligned region around it once more than half of it is
    /// on the host, and a growing window ahead of a sweep) or "off"
    /// (USM_READ_AHEAD).
    std::string read_ahead = "density";
    /// Which blocks leave a device over its budget: "lru" (advice first:
    /// blocks preferring another place go first, read-mostly and preferring
    /// this device last; then least recently used) (USM_EVICT).
    std::string eviction = "lru";
    /// What happens to a block caught bouncing in and out of a device
    /// (evicted and needed again soon, over and over): "in_place" uses it in
    /// host memory from then on, as if advised accessed_by, on a device that
    /// can reach host memory (device_properties::host_memory_in_place), and
    /// pins it elsewhere; "pin" pins it on the device for a while; "off" lets
    /// eviction alone decide. A block that host and device keep handing over
    /// turns to in-place access under in_place and pin (USM_THRASH).
    std::string thrashing = "in_place";
    /// Whether a transfer batch is copied by the CPU (memcpy into device
    /// memory the host addresses, on devices with device_properties::
    /// cpu_copies) or on the transfer queue: "auto" copies batches of at most
    /// cpu_copy_max_to_device bytes towards a device, and of at most
    /// cpu_copy_max_to_host towards the host, with the CPU; "queue" never;
    /// "cpu" at every size (USM_COPY_PATH).
    std::string copy_path = "auto";
    /// "auto"'s limits (USM_CPU_COPY_MAX=<to device>[,<to host>]; 0 alone
    /// turns CPU copies off both ways). A queued upload costs a submission
    /// and a fence, ~50 us on lavapipe; a download is synchronous anyway, so
    /// towards the host every size is cheaper by CPU (docs/backends.md).
    std::size_t cpu_copy_max_to_device = std::size_t{1} << 20;
    std::size_t cpu_copy_max_to_host = ~std::size_t{0};
    /// Policy objects of the program's own, used instead of the names above
    /// (each null member leaves its built-in).
    usm::policies policies;
    /// Where to write a Chrome trace-event JSON file of what usm did (host
    /// faults, migrations, kernels, evictions, waits) when the context is
    /// destroyed; empty for none (USM_TRACE). Opens in Perfetto.
    std::string trace;
    /// Checked mode (USM_CHECK=1): a kernel that takes the page table
    /// (usm::declared) may touch only its declared ranges, to the byte, with
    /// their declared access; anything else is reported as
    /// errc::device_fault, the way a GPU MMU reports a fault, and touches no
    /// memory (docs/device-faults.md).
    bool check = false;
};

/// How a range is expected to be used (cudaMemAdvise, SYCL's mem_advise).
/// Advice changes where copies stay, never what a read returns.
enum class advice {
    /// Mostly read: copies made by reads stay on every device that read them,
    /// and eviction takes them last (they are written back only if written).
    read_mostly,
    unset_read_mostly,
    /// The pages should live at one place (a device, or the host): eviction
    /// on that device takes them last and elsewhere first, and when the place
    /// is the host, a host read moves them home instead of sharing them.
    preferred_location,
    unset_preferred_location,
    /// A device reads and writes the pages where they are, in host memory,
    /// instead of migrating them (where device_properties::host_memory_in_place;
    /// elsewhere launches migrate as usual). A launch on that device whose
    /// pages of an allocation all carry it takes them in place: no upload, no
    /// device memory, no eviction; the host waits for such a kernel as for any.
    accessed_by,
    unset_accessed_by,
};

/// What context::query reports about a range.
struct range_info {
    std::size_t pages = 0;       ///< pages the range covers
    std::size_t host_pages = 0;  ///< of them, valid on the host
    /// Per device, in context::devices() order: pages with a copy in its
    /// memory (pages it accesses in place, in host memory, are not counted).
    std::vector<std::size_t> device_pages;
    std::size_t zero_pages = 0;  ///< never written since allocation
    bool read_mostly = false;    ///< every page is advised read_mostly
    /// The preferred location every page shares, if any: the host, or a
    /// device by its index. Both empty when none is set or pages differ.
    bool preferred_host = false;
    std::optional<std::size_t> preferred_device;
    /// Devices (by index) every page is advised accessed_by.
    std::vector<std::size_t> accessed_by;
};

/// The host as a destination: `ctx.prefetch(p, n, usm::host)`.
struct host_t {
    explicit host_t() = default;
};
inline constexpr host_t host{};

class context;

namespace detail {
template <class T>
struct deleter {
    using pointer = ptr<std::remove_extent_t<T>>;
    usm::context* owner = nullptr;
    void operator()(pointer p) const;
};
}  // namespace detail

/// Owning handle of an allocation: frees it when destroyed. Must not outlive
/// its context. `usm::unique_ptr<float[]> a = ctx.alloc_unique<float>(n);`
template <class T>
using unique_ptr = std::unique_ptr<T, detail::deleter<T>>;

/// One address space shared by the host and the devices.
///
/// Thread-safe: every member may be called from any thread. Host faults on
/// its memory are resolved on the faulting thread. Destroying the context
/// waits for its in-flight kernels and frees all its memory; ptr values into
/// it become dangling. A context belongs to the process that made it: after
/// fork(), the child sees no usm memory and its calls throw wrong_process.
class context {
public:
    /// Opens every device allowed by `options` and the environment. Throws
    /// usm::error: no_device (with the reason each candidate was rejected),
    /// out_of_memory or address_space_exhausted (the reservation failed).
    context();
    explicit context(const context_options& options);
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;

    /// The devices, in backend order (Vulkan first), then driver order.
    std::span<device> devices() noexcept { return m_devices; }

    /// Allocates `count` zero-filled elements of T. Throws usm::error:
    /// address_space_exhausted, out_of_memory, invalid_argument. A count of
    /// zero returns a null ptr.
    template <class T>
    ptr<T> alloc(std::size_t count, placement where = placement::shared()) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "usm memory holds trivially copyable types: it is moved with memcpy");
        std::size_t bytes = 0;
        if (__builtin_mul_overflow(count, sizeof(T), &bytes)) throw_size_overflow(count, sizeof(T));
        return ptr<T>(static_cast<T*>(alloc_bytes(bytes, where)));
    }
    /// alloc() wrapped in a usm::unique_ptr<T[]>.
    template <class T>
    unique_ptr<T[]> alloc_unique(std::size_t count, placement where = placement::shared()) {
        return unique_ptr<T[]>(alloc<T>(count, where), detail::deleter<T[]>{this});
    }
    /// Allocates `bytes` zero-filled bytes starting on a page boundary.
    void* alloc_bytes(std::size_t bytes, placement where = placement::shared());

    /// Frees an allocation, waiting first for in-flight kernels that use it.
    /// Throws usm::error: double_free, not_a_usm_pointer (not the start of a
    /// live allocation of this context). Freeing null does nothing.
    template <class T>
    void free(ptr<T> p) {
        free_bytes(p.get());
    }
    void free_bytes(const void* p);

    /// Makes `count` elements from `p` accessible to the host as `a` now:
    /// valid (read) or exclusive (write, read_write), waiting for kernels that
    /// conflict. Host code never needs it; system calls do on the signal fault
    /// path, where the kernel answers EFAULT instead of faulting into usm
    /// (read(2) into device-resident memory, for example). Throws usm::error:
    /// not_a_usm_pointer, out_of_range, transfer_failed (nothing is lost).
    template <class T>
    void host_access(ptr<T> p, std::size_t count, access a) {
        host_access_bytes(p.get(), count * sizeof(T), a);
    }
    void host_access_bytes(const void* p, std::size_t bytes, access a);

    /// Starts moving `count` elements from `p` to device `to` ahead of the
    /// launches that use them: the pages not valid there are copied (fresh
    /// ones zero-filled) in one transfer batch on its transfer queue. The host
    /// keeps its copy, read-only until it writes again (which waits for the
    /// copy). Returns the batch's event, ready at once when nothing had to
    /// move; a later launch on `to` orders itself after it without a host
    /// wait. Blocks first only for kernels on other devices that write the
    /// range. Throws usm::error: not_a_usm_pointer, out_of_range,
    /// invalid_argument (a device of another context), out_of_memory or
    /// transfer_failed (nothing is lost).
    template <class T>
    event prefetch(ptr<T> p, std::size_t count, device& to) {
        return prefetch_bytes(p.get(), count * sizeof(T), &to);
    }
    /// Brings `count` elements from `p` back to the host (read-valid) before
    /// returning, as host_access(p, count, access::read) does; the event is
    /// complete. Same errors.
    template <class T>
    event prefetch(ptr<T> p, std::size_t count, host_t) {
        return prefetch_bytes(p.get(), count * sizeof(T), nullptr);
    }
    /// prefetch() in bytes; `to` null means the host.
    event prefetch_bytes(const void* p, std::size_t bytes, device* to);

    /// Advises usm how `count` elements from `p` will be used (see
    /// usm::advice). read_mostly and the unset_ advice take no location
    /// (unset_accessed_by takes the device); preferred_location takes a
    /// device or usm::host; accessed_by takes a device. Advice is per page:
    /// every page the range touches gets it. Throws usm::error:
    /// not_a_usm_pointer, out_of_range, invalid_argument (a missing or
    /// unexpected location, or a device of another context).
    template <class T>
    void advise(ptr<T> p, std::size_t count, advice a) {
        advise_bytes(p.get(), count * sizeof(T), a, nullptr, false);
    }
    template <class T>
    void advise(ptr<T> p, std::size_t count, advice a, device& where) {
        advise_bytes(p.get(), count * sizeof(T), a, &where, false);
    }
    template <class T>
    void advise(ptr<T> p, std::size_t count, advice a, host_t) {
        advise_bytes(p.get(), count * sizeof(T), a, nullptr, true);
    }
    /// advise() in bytes: the location is `where`, or the host when `to_host`.
    void advise_bytes(const void* p, std::size_t bytes, advice a, device* where, bool to_host);

    /// Where the pages of `count` elements from `p` are valid now, and their
    /// advice. Throws usm::error: not_a_usm_pointer, out_of_range.
    template <class T>
    range_info query(ptr<T> p, std::size_t count) const {
        return query_bytes(p.get(), count * sizeof(T));
    }
    range_info query_bytes(const void* p, std::size_t bytes) const;

    /// The fault path this context uses (after options, USM_FAULT and fallback).
    usm::fault_path fault_handling() const noexcept;

    /// True when `p` lies inside a live allocation of this context.
    bool owns(const void* p) const noexcept;

    /// A snapshot of the counters.
    usm::stats stats() const;
    /// The counters of the allocation holding `p` alone, since it was made
    /// (or the last reset_stats): its faults, the pages it moved each way,
    /// its evictions, the device faults on it. `allocations` is 1 and
    /// `bytes_allocated` its size; launches, replays and transfer batches
    /// are counted per device instead (device::stats). Throws usm::error
    /// not_a_usm_pointer.
    template <class T>
    usm::stats stats(ptr<T> p) const {
        return allocation_stats(p.get());
    }
    usm::stats allocation_stats(const void* p) const;
    /// Zeroes every counter: the context's, each allocation's and each
    /// device's.
    void reset_stats();

    detail::context_impl& impl() noexcept { return *m_impl; }

private:
    [[noreturn]] static void throw_size_overflow(std::size_t count, std::size_t size);

    std::shared_ptr<detail::context_impl> m_impl;
    std::vector<device> m_devices;
};

template <class T>
void detail::deleter<T>::operator()(pointer p) const {
    if (owner != nullptr && p) owner->free(p);
}

}  // namespace usm
