// usm/policy.hpp - the decisions usm makes about where data goes, as
// interfaces a program may replace.
//
// Four decisions are policies: what a host fault brings back besides its page
// (read-ahead), which blocks leave a full device (eviction), what happens to a
// block caught bouncing (thrashing), and whether a transfer batch is copied by
// the CPU or by the device's transfer queue (copy path). Each has built-in
// policies chosen by name (context_options, USM_READ_AHEAD, USM_EVICT,
// USM_THRASH, USM_COPY_PATH) and can be replaced by an object of the
// program's own (context_options::policies).
//
// /* --- the rules every policy keeps --- */
//
// * A policy decides *what*, never *whether it is correct*: usm checks and
//   clamps every answer, so no policy can break an invariant of DESIGN.md
//   (a read-ahead range is cut to its allocation and to pages no kernel is
//   writing; an eviction order names candidates only; a copy path the device
//   cannot take is not taken).
// * Calls come with the context's lock held, on the thread doing the work: for
//   read-ahead, the faulting thread (the userfaultfd handler thread on that
//   fault path); for eviction and thrashing, the thread that launches,
//   prefetches or allocates; for the copy path, any of these and a thread
//   calling context::host_access, since downloads happen on host faults,
//   evictions and fault-log read-backs too. One context never calls one
//   policy object from two threads at once; an object shared by several
//   contexts must guard itself. What a call is given (views, spans) is valid
//   during the call only.
// * A policy must not call usm (any context, device or ptr member), must not
//   touch usm memory through a pointer (a host fault under the lock aborts
//   the process with a message), must not block on anything usm may wait for,
//   and should return in microseconds: a read-ahead decision is on the path
//   of every host fault that moves data.
// * A policy should not throw. If it does, usm logs the exception once per
//   context and takes the built-in default's decision for that call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace usm {

/// A run of pages [first, end) of one allocation, counted from its start.
struct page_range {
    std::size_t first = 0;
    std::size_t end = 0;
};

/* --- read-ahead ------------------------------------------------------------ */

/// A host fault on a page whose data is on a device: what it is, and a
/// window on the allocation's pages.
class host_fault_view {
public:
    const void* allocation = nullptr;  ///< the allocation's first byte (its usm::ptr)
    std::size_t page = 0;              ///< the faulting page
    std::size_t page_count = 0;        ///< pages of the allocation
    std::size_t block_pages = 0;       ///< pages per block (context_options::block_size)
    bool write = false;                ///< the access was a write

    /// The host holds a valid copy of `page` (< page_count).
    virtual bool host_valid(std::size_t page) const noexcept = 0;
    /// How many pages of [first, end) the host holds valid copies of (pages
    /// at or past page_count count as not held). One call for a run: a policy
    /// that looks at whole regions should not pay a virtual call per page.
    virtual std::size_t host_valid_count(std::size_t first, std::size_t end) const noexcept = 0;

protected:
    host_fault_view() = default;
    ~host_fault_view() = default;
    host_fault_view(const host_fault_view&) = default;
    host_fault_view& operator=(const host_fault_view&) = default;
};

/// What a host fault brings back besides its own page.
class read_ahead_policy {
public:
    virtual ~read_ahead_policy() = default;
    /// Shown in logs and errors.
    virtual std::string_view name() const noexcept = 0;
    /// The pages to bring to the host with `fault.page`. usm widens the
    /// answer to hold the page, cuts it to the allocation, brings only the
    /// pages in it the host lacks (one batch per device), and takes the page
    /// alone when a kernel in flight writes any page of the range.
    virtual page_range on_host_fault(const host_fault_view& fault) = 0;
};

/* --- eviction -------------------------------------------------------------- */

/// A block a device could give up now: it holds copies there, no in-flight
/// work there uses it, and the operation making room does not need it.
struct eviction_candidate {
    const void* allocation = nullptr;  ///< the allocation's first byte
    std::size_t block = 0;             ///< block index within the allocation
    std::size_t pages = 0;             ///< pages with a copy on the device
    std::size_t pages_alone = 0;       ///< of them, pages only the device holds: written back first
    std::uint64_t last_use = 0;        ///< the device's clock at the last launch or prefetch that needed it
    bool read_mostly = false;          ///< some page is advised read_mostly
    bool preferred_here = false;       ///< some page prefers this device (advice::preferred_location)
    bool preferred_elsewhere = false;  ///< every page held prefers another location
    bool pinned = false;               ///< the thrashing policy pinned it here
};

/// The device that must make room, and how much.
struct eviction_request {
    std::size_t device = 0;          ///< its index in context::devices()
    std::size_t budget_pages = 0;    ///< its budget (context_options::device_budget)
    std::size_t resident_pages = 0;  ///< pages with a copy there now
    std::size_t pages_over = 0;      ///< pages to give up before the operation fits
    std::uint64_t clock = 0;         ///< the device's clock now (see last_use)
};

/// Which blocks leave a device that is over its budget.
class eviction_policy {
public:
    virtual ~eviction_policy() = default;
    virtual std::string_view name() const noexcept = 0;
    /// Appends to `order` the indices into `candidates` to evict, first
    /// first. usm evicts them in that order until `request.pages_over`
    /// pages are gone; an index out of range or given twice is ignored.
    /// Leaving candidates out keeps them: the device then stays over its
    /// budget by what they hold (device memory is not exhausted by that
    /// alone; the driver reports out_of_memory if it is). Blocks in use by
    /// in-flight work at the device are not candidates; when the device is
    /// still over budget and such blocks exist, usm waits for that work and
    /// asks again, with them among the candidates.
    virtual void choose(const eviction_request& request, std::span<const eviction_candidate> candidates,
                        std::vector<std::size_t>& order) = 0;
};

/* --- thrashing ------------------------------------------------------------- */

/// Why a block is coming back to a device.
enum class return_cause {
    evicted,            ///< eviction took it, and it is needed again soon after
    written_elsewhere,  ///< a write by the host or another device took it
};

/// A block coming back to a device that recently lost it.
struct block_return {
    const void* allocation = nullptr;  ///< the allocation's first byte
    std::size_t block = 0;
    std::size_t device = 0;  ///< index in context::devices()
    return_cause cause = return_cause::evicted;
    /// Times it came back for this cause since the policy last acted on it,
    /// this one included. Returns after eviction count only when they come
    /// "soon": within four budgets' worth of evictions on the device.
    std::uint32_t times = 0;
    bool device_reaches_host = false;  ///< the device can use host memory in place
    std::size_t budget_blocks = 0;     ///< the device's budget, in blocks
    std::size_t pinned_blocks = 0;     ///< blocks pinned on the device now
};

enum class thrash_action {
    none,      ///< keep counting
    in_place,  ///< the device uses the block in host memory from now on (as advice::accessed_by); needs
               ///< device_reaches_host
    pin,       ///< keep the block on the device: eviction takes it last, for eight budgets' worth of evictions
};

/// What to do with a block that keeps coming back.
class thrashing_policy {
public:
    virtual ~thrashing_policy() = default;
    virtual std::string_view name() const noexcept = 0;
    /// in_place on a device that cannot reach host memory is taken as none.
    virtual thrash_action on_return(const block_return& block) = 0;
};

/* --- copy path ------------------------------------------------------------- */

enum class transfer_direction { to_device, to_host };

/// How a transfer batch is carried out.
enum class transfer_path {
    queue,  ///< commands on the device's transfer queue
    cpu,    ///< memcpy and memset by the calling thread into device memory the host addresses
};

/// One transfer batch about to be issued.
struct transfer_request {
    std::size_t device = 0;  ///< index in context::devices()
    transfer_direction direction = transfer_direction::to_device;
    std::size_t bytes = 0;  ///< copied and zero-filled bytes
    /// The device's memory is addressable by the host, so the CPU may copy
    /// (device_properties::cpu_copies). When false, only queue is taken.
    bool cpu_possible = false;
};

/// CPU copy or transfer queue, per batch.
class copy_path_policy {
public:
    virtual ~copy_path_policy() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual transfer_path choose(const transfer_request& batch) = 0;
};

/* --- installing policies --------------------------------------------------- */

/// Policy objects a context uses instead of the built-ins that
/// context_options names. Null members leave the named built-in. The context
/// shares ownership; the environment's USM_* variables still win (they name a
/// built-in), so existing programs stay steerable.
struct policies {
    std::shared_ptr<read_ahead_policy> read_ahead;
    std::shared_ptr<eviction_policy> eviction;
    std::shared_ptr<thrashing_policy> thrashing;
    std::shared_ptr<copy_path_policy> copy_path;
};

/// The built-in policies, by the names context_options and USM_* take, for a
/// program's policy to delegate to. Throw usm::error invalid_argument naming
/// the known ones for an unknown name.
///   read-ahead: "density" (UVM's density rule, with a ramp for sweeps), "off"
///   eviction:   "lru" (advice ranks, then least recently used)
///   thrashing:  "in_place" (in place where the device reaches host memory,
///               else pin), "pin", "off"
///   copy path:  "auto" (CPU copies where possible, up to a size per
///               direction), "queue", "cpu" (CPU copies wherever possible)
std::shared_ptr<read_ahead_policy> make_read_ahead_policy(std::string_view name);
std::shared_ptr<eviction_policy> make_eviction_policy(std::string_view name);
std::shared_ptr<thrashing_policy> make_thrashing_policy(std::string_view name);
/// "auto" copies up to `max_to_device` bytes towards a device and
/// `max_to_host` towards the host with the CPU; the others ignore them.
std::shared_ptr<copy_path_policy> make_copy_path_policy(std::string_view name, std::size_t max_to_device,
                                                        std::size_t max_to_host);

}  // namespace usm
