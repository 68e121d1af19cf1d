// core/device_interface.hpp - the contract every backend implements.
//
// The core decides *what* moves and when; a backend only knows *how*: device
// memory (mirrors), copies on a transfer queue, kernels, and timelines. This
// file is the whole contract. It includes no driver header.
//
// /* --- threading and locking --- */
//
// Every operation, who calls it, what is held, and whether a backend must
// implement it ("context" is the owning context's lock, core/lock_order.hpp
// level 2; "table" the device's page-table launch guard, level 0):
//
//   operation        called from                       held                 required
//   properties       any thread                        anything or nothing  yes (constant after open)
//   create_mirror    launching, prefetching or         context              yes
//                    allocating thread
//   import_host      launching thread                  context              no: default throws unsupported
//   device_address   launching thread                  context (+ table)    yes
//   upload           launching, prefetching or         context (+ table)    yes, both paths where
//                    allocating thread                                      properties().cpu_copies
//   download         faulting thread (SIGSEGV path),   context (+ table)    yes, both paths where
//                    userfaultfd handler thread,                            properties().cpu_copies
//                    launching or evicting thread
//   build_spirv      loading thread                    nothing              yes (may throw unsupported)
//   build_opencl_c   loading thread                    nothing              yes (may throw unsupported)
//   launch           launching thread                  context (+ table)    yes
//   reached          any thread                        context or nothing   yes; never blocks
//   wait             any thread                        nothing (+ table)    yes
//   wait_idle        the thread destroying a context   nothing              yes; never throws
//
// * Submitting calls (create_mirror, import_host, upload, download, launch)
//   hold the context lock, so the core never makes two of them on one device
//   at once.
// * Waiting and build calls come without the context lock, from any thread,
//   possibly concurrently with each other and with one submitting call. A
//   backend protects its own queues and timelines (its locks rank below
//   "context": it must never call back into the core).
// * The core lists, in a download's wait_for, the launch that last wrote the
//   mirror, even when it has already waited for it on the host: the backend
//   may rely on wait_for as the memory dependency.
// * Destruction of a mirror, kernel or device happens only after every sync
//   point that used it has been reached (the core waits first).

// /* --- lifetimes --- */
//
// Mirrors and compiled kernels keep their device's driver objects alive: they
// may be destroyed after the device_backend that made them (a usm::kernel may
// outlive its context). A sync_point never returned by this device is
// rejected with invalid_argument, never waited on forever.
//
// /* --- failure --- */
//
// Every call reports failure by throwing usm::error naming the driver call,
// the device and the sizes (see backends' check_vk / check_cl). No call
// aborts the process. What a failed call leaves behind is given per call; the
// core relies on it to keep "nothing is lost" (DESIGN.md invariant 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "usm/device.hpp"
#include "usm/error.hpp"
#include "usm/launch.hpp"
#include "usm/policy.hpp"

namespace usm::detail {

/// A point on one of a device's queue timelines. Value 0 means "nothing":
/// it is always reached. Only the backend that made a sync point interprets
/// it; the core stores and passes it back.
struct sync_point {
    std::uint32_t queue = 0;
    std::uint64_t value = 0;
    bool empty() const noexcept { return value == 0; }
};

/// Device memory holding one allocation's bytes on one device, byte for byte
/// at the same offsets. Separate from the host backing even where the device
/// could address host memory, so migrate mode really copies.
class device_mirror {
public:
    explicit device_mirror(std::size_t bytes) noexcept : m_bytes(bytes) {}
    virtual ~device_mirror() = default;
    device_mirror(const device_mirror&) = delete;
    device_mirror& operator=(const device_mirror&) = delete;

    std::size_t bytes() const noexcept { return m_bytes; }

private:
    std::size_t m_bytes;
};

/// Copy `bytes` from host memory at `source` into `mirror` at `offset`.
struct upload_op {
    device_mirror* mirror = nullptr;
    std::size_t offset = 0;
    const std::byte* source = nullptr;
    std::size_t bytes = 0;
};

/// Copy `bytes` of `mirror` at `offset` into host memory at `destination`.
struct download_op {
    device_mirror* mirror = nullptr;
    std::size_t offset = 0;
    std::byte* destination = nullptr;
    std::size_t bytes = 0;
};

/// Set `bytes` of `mirror` at `offset` to zero.
struct fill_op {
    device_mirror* mirror = nullptr;
    std::size_t offset = 0;
    std::size_t bytes = 0;
};

/// A kernel compiled for one device.
class compiled_kernel {
public:
    explicit compiled_kernel(std::string entry) : m_entry(std::move(entry)) {}
    virtual ~compiled_kernel() = default;
    compiled_kernel(const compiled_kernel&) = delete;
    compiled_kernel& operator=(const compiled_kernel&) = delete;

    const std::string& entry() const noexcept { return m_entry; }

private:
    std::string m_entry;
};

/// One kernel argument after translation, in declaration order.
struct bound_arg {
    launch_arg::kind what = launch_arg::kind::value;
    // kind::memory: the argument is the device address of mirror + offset;
    // the kernel may touch `bytes` from there with `mode`.
    device_mirror* mirror = nullptr;
    std::size_t offset = 0;
    std::size_t bytes = 0;
    access mode = access::read;
    // Other mirrors the kernel may reach through addresses stored in this
    // argument's memory (the page table behind usm::any): valid during the
    // call. OpenCL names them to the driver (CL_KERNEL_EXEC_INFO_SVM_PTRS).
    std::span<const device_mirror* const> reaches{};
    // kind::value: `size` bytes at `value` (valid during the call), whose C++
    // alignment is `align`.
    const void* value = nullptr;
    std::size_t size = 0;
    std::size_t align = 1;
};

/// Launch geometry, already checked to be non-zero and within device limits
/// by the backend's launch (which throws invalid_argument otherwise).
struct dims {
    std::uint32_t x = 1, y = 1, z = 1;
};

/// One device, as the core drives it.
class device_backend {
public:
    virtual ~device_backend() = default;

    /// What the device is. Filled at open(); constant afterwards.
    virtual const device_properties& properties() const noexcept = 0;

    /// Allocates device memory for `bytes` (a non-zero multiple of 4096; zero
    /// is invalid_argument). Contents are
    /// unspecified: the core never reads a page it has not made valid.
    /// Throws out_of_memory (naming the device and size) or unsupported
    /// (larger than the device's largest buffer); nothing is left allocated.
    virtual std::unique_ptr<device_mirror> create_mirror(std::size_t bytes) = 0;

    /// A device_mirror whose bytes ARE the host memory [host, host + bytes)
    /// (page-aligned, a non-zero multiple of 4096): kernels bound to it read
    /// and write that memory in place, with no copy (advice::accessed_by).
    /// The core keeps the memory mapped while the mirror lives, never passes
    /// the mirror to upload, download or fill, and orders host access around
    /// the launches that use it (so writes the host made before a launch are
    /// seen by it, and a kernel's writes are seen by the host once its point
    /// is reached). Only where properties().host_memory_in_place is true;
    /// elsewhere, or when the driver refuses this range, throws unsupported
    /// naming the device, address, size and driver call (the core then
    /// migrates instead). Made with the context lock held.
    virtual std::unique_ptr<device_mirror> import_host(std::byte* host, std::size_t bytes) {
        (void)host;
        (void)bytes;
        throw error(errc::unsupported, properties().name + ": kernels cannot access host memory in place");
    }

    /// The address a kernel uses for byte 0 of `mirror` (a buffer device
    /// address, an SVM pointer, or the host address of an import), as the
    /// device page table stores it. `mirror` must be this device's.
    virtual std::uint64_t device_address(const device_mirror& mirror) const = 0;

    /// One transfer batch towards the device, after every sync point in
    /// `wait_for` (which may belong to this device's queues) and after
    /// earlier transfers on this device. The targeted ranges of one batch are
    /// disjoint. `path` is the core's choice (core/migration.cpp asks the
    /// copy-path policy):
    ///   * queue: every copy and fill in one submission where the backend can
    ///     (copies of one mirror merged into one command with many regions
    ///     where the API allows), on the transfer queue. Returns the point at
    ///     which all of it is complete and visible to later launches on this
    ///     device that wait for it; that point also covers `wait_for`. The
    ///     source bytes may be read at any time until the returned point is
    ///     reached; the core keeps them unchanged until then.
    ///   * cpu: every mirror the batch touches must be one the host
    ///     addresses (on the devices with properties().cpu_copies, all of
    ///     them; else invalid_argument, nothing done). Blocks until
    ///     `wait_for` and every earlier transfer are complete, then copies and
    ///     fills with the CPU on the calling thread, fills first, and returns
    ///     the empty point: the bytes are in the mirror and visible to every
    ///     later submission. A kernel in flight that is not in `wait_for` is
    ///     not waited for, exactly as the queue would not.
    /// An empty batch, on either path, blocks on nothing and returns a point
    /// covering `wait_for`: the empty point when `wait_for` is empty or
    /// already reached.
    /// On throw, the targeted mirror ranges are unspecified, nothing else
    /// changed, and no part of the batch still reads host memory (what was
    /// submitted has finished); the core still holds the valid copy elsewhere.
    /// Submitting call; required.
    virtual sync_point upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                              std::span<const sync_point> wait_for, transfer_path path) = 0;

    /// One transfer batch towards the host, after `wait_for` and earlier
    /// transfers, on `path` (as upload). Synchronous: returns once every
    /// destination byte holds the mirror's contents.
    /// On throw, the destination ranges are unspecified and the mirror is
    /// unchanged; the core has not yet opened those pages to the application.
    /// Submitting call; required.
    virtual void download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                          transfer_path path) = 0;

    /// Builds a Vulkan compute kernel from SPIR-V. Throws kernel_build_failed
    /// with the validator's or driver's messages, or unsupported on a backend
    /// that does not take SPIR-V. Called without the context lock.
    virtual std::unique_ptr<compiled_kernel> build_spirv(std::span<const std::uint32_t> words,
                                                         std::string_view entry) = 0;

    /// Builds an OpenCL C kernel. Throws kernel_build_failed with the build
    /// log, or unsupported on a backend that does not take OpenCL C. Called
    /// without the context lock.
    virtual std::unique_ptr<compiled_kernel> build_opencl_c(std::string_view source, std::string_view options,
                                                            std::string_view entry) = 0;

    /// Enqueues `kernel` over `grid` groups of `group` items on the compute
    /// queue, after every point in `wait_for` and after every earlier launch
    /// on this device (their writes are visible to it). `args` follow the
    /// kernel's declaration order (see docs/kernel-abi.md). Returns its
    /// completion point. Geometry beyond the device's limits, arguments that
    /// do not match the kernel, or too many argument bytes throw
    /// invalid_argument with nothing enqueued; a failure after the enqueue
    /// (a lost flush) throws device_lost.
    virtual sync_point launch(compiled_kernel& kernel, dims grid, dims group, std::span<const bound_arg> args,
                              std::span<const sync_point> wait_for) = 0;

    /// True once `point` is complete. Never blocks. Throws device_lost if the
    /// device failed before completing it (points completed earlier stay
    /// reached).
    virtual bool reached(sync_point point) = 0;

    /// Blocks until `point` is complete. Throws device_lost if the device
    /// failed.
    virtual void wait(sync_point point) = 0;

    /// Blocks until every submitted piece of work is complete. Does not throw
    /// (used on teardown); a failure is logged.
    virtual void wait_idle() noexcept = 0;
};

/// A device a driver offers, before it is opened.
struct device_candidate {
    std::string name;
    /// Empty when usable; otherwise why usm cannot use it (e.g. "no
    /// bufferDeviceAddress"). Shown in errc::no_device messages.
    std::string rejected_because;
};

/// One loaded driver API: a Vulkan instance, or the OpenCL platforms.
/// Devices opened from it keep it alive.
class driver {
public:
    virtual ~driver() = default;
    /// Every device this driver offers, usable or not, in driver order.
    virtual const std::vector<device_candidate>& candidates() const noexcept = 0;
    /// Opens candidate `index` (which must be usable). Throws usm::error.
    virtual std::unique_ptr<device_backend> open(std::size_t index) = 0;
};

/// One row of the backend table (backends/registry.cpp).
struct backend_entry {
    usm::backend kind;
    const char* name;
    /// Loads the driver API. Returns null and sets `why_not` when the loader
    /// or every platform is missing; never throws for a missing driver.
    std::shared_ptr<driver> (*load)(std::string& why_not);
    /// Opened only when context_options::backend names it, never for "all"
    /// (a test's backend: core/fault_injection.hpp, testing::install_backend).
    bool explicit_only = false;
};

/// Every backend compiled into this build, in preference order. Defined in
/// backends/registry.cpp: the one place that names the backends.
std::span<const backend_entry> registered_backends() noexcept;

/// registered_backends(), then the ones tests installed
/// (testing::install_backend). Contexts open devices from these.
std::vector<backend_entry> available_backends();

}  // namespace usm::detail
