// backends/opencl/opencl_device.hpp - one opened OpenCL device.
//
// Per device: its own cl_context, an in-order compute queue (launches) and a
// separate in-order transfer queue (uploads, downloads), each with a timeline
// of sync points (sync_point::queue 0 = compute, 1 = transfer). Mirrors are
// SVM allocations (fine-grained on a CPU device that offers it, so the host
// may copy them itself: "CPU copies" in opencl_transfer.cpp), or host memory
// imported in place.
//
// /* --- locks, in the order they are taken --- */
//
//   1. opencl_kernel::arguments_lock  - a cl_kernel's arguments are state shared
//      by every launch of it: held from the first clSetKernelArg* to the
//      clEnqueueNDRangeKernel that consumes them.
//   2. queue::submit_lock             - serialises enqueue + timeline::record on
//      one queue so serials follow the queue's order. The core already makes
//      one submitting call at a time; the lock keeps the backend correct
//      without relying on that. The transfer queue's is also held across a
//      CPU copy (its host waits and memcpy), which thereby stays ordered with
//      the transfers enqueued before and after it.
//   3. timeline's mutex               - counters and pending events; never held
//      across a blocking driver call.
//
// Waiting calls (reached, wait, wait_idle) take only 3; builds take none.
// Nothing here calls back into the core, so all of these rank below the
// core's "context" lock.
#pragma once

#include <CL/cl.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "backends/opencl/opencl_handle.hpp"
#include "backends/opencl/opencl_timeline.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::opencl {

class opencl_device;
class opencl_kernel;
struct transfer_region;  // one command of a transfer batch (opencl_transfer.cpp)

/// What a launch binds: device memory whose byte 0 has the device address
/// base(). A launch passes base() + offset with clSetKernelArgSVMPointer,
/// whichever kind of mirror it is (see svm_mirror for why pointers, not
/// cl_mem arguments).
class opencl_mirror : public device_mirror {
public:
    /// The device address of byte 0 (also the kernel argument for offset 0).
    std::byte* base() const noexcept { return m_base; }
    /// The device that made it; compared, never dereferenced.
    const opencl_device* owner() const noexcept { return m_owner; }

protected:
    opencl_mirror(const opencl_device& owner, std::byte* base, std::size_t bytes) noexcept
        : device_mirror(bytes), m_owner(&owner), m_base(base) {}

private:
    const opencl_device* m_owner;
    std::byte* m_base;
};

/// A mirror: one SVM allocation (clSVMAlloc) of the device's context,
/// coarse-grained, or fine-grained where the host may copy it itself
/// (host_accessible()). SVM rather than cl_mem buffers because a launch
/// passes a pointer into the middle of a mirror: clSetKernelArgSVMPointer
/// takes any address inside an SVM allocation, whereas a cl_mem argument can
/// only be offset by a sub-buffer whose origin is a multiple of
/// CL_DEVICE_MEM_BASE_ADDR_ALIGN (128 bytes on PoCL, up to 4 KiB on GPUs),
/// and a float array may start at any multiple of 4.
class svm_mirror final : public opencl_mirror {
public:
    /// Takes ownership of `base` (allocated by clSVMAlloc in `context`, of
    /// `bytes` bytes) and of the `context` reference, which keeps the context
    /// alive for clSVMFree even if the device is closed first.
    /// `host_accessible`: allocated with CL_MEM_SVM_FINE_GRAIN_BUFFER on a
    /// CPU device, so the host may read and write base() directly, without
    /// clEnqueueSVMMap, between the commands that use it.
    svm_mirror(const opencl_device& owner, context_handle context, void* base, std::size_t bytes,
               bool host_accessible) noexcept
        : opencl_mirror(owner, static_cast<std::byte*>(base), bytes),
          m_context(std::move(context)),
          m_host_accessible(host_accessible) {}
    /// clSVMFree. The core destroys a mirror only after every sync point that
    /// used it is reached (device_interface.hpp), and clSVMFree does not wait.
    ~svm_mirror() override;

    /// Whether the CPU copies to and from it with memcpy (see the constructor).
    bool host_accessible() const noexcept { return m_host_accessible; }

private:
    context_handle m_context;
    bool m_host_accessible;
};

/// Host memory that kernels use in place (device_backend::import_host): a
/// CL_MEM_USE_HOST_PTR buffer over it, on a device whose address for that
/// buffer is the host pointer itself (properties().host_memory_in_place), so
/// base() is the host address. Never a transfer's source or target: upload
/// and download reject it with invalid_argument.
class host_mirror final : public opencl_mirror {
public:
    /// Takes ownership of `buffer`, made with CL_MEM_USE_HOST_PTR over
    /// [host, host + bytes). The host memory stays the caller's.
    host_mirror(const opencl_device& owner, mem_handle buffer, std::byte* host, std::size_t bytes) noexcept
        : opencl_mirror(owner, host, bytes), m_buffer(std::move(buffer)) {}

private:
    // Holds the range registered with the driver while the mirror lives; no
    // command names it (launches bind base() + offset), so the driver never
    // has a reason to migrate or cache it. Releasing it leaves the host
    // memory untouched (the buffer keeps its context alive by itself).
    mem_handle m_buffer;
};

/// One opened device; see the file comment for queues and locks.
class opencl_device final : public device_backend {
public:
    /// Opens `device` of `platform`: a context and two in-order queues.
    /// `driver` is kept alive as long as the device. Throws usm::error naming
    /// the failed call (out_of_memory, unsupported, device_lost); on throw
    /// nothing is left allocated.
    opencl_device(std::shared_ptr<const driver> driver, cl_platform_id platform, cl_device_id device);
    /// Waits for both queues (clFinish), then releases the queues and the
    /// context. Mirrors still alive keep the context until they are freed.
    ~opencl_device() override;

    const device_properties& properties() const noexcept override { return m_properties; }
    std::unique_ptr<device_mirror> create_mirror(std::size_t bytes) override;
    std::unique_ptr<device_mirror> import_host(std::byte* host, std::size_t bytes) override;
    std::uint64_t device_address(const device_mirror& mirror) const override;
    sync_point upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                      std::span<const sync_point> wait_for, transfer_path path) override;
    void download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                  transfer_path path) override;
    std::unique_ptr<compiled_kernel> build_spirv(std::span<const std::uint32_t> words, std::string_view entry) override;
    std::unique_ptr<compiled_kernel> build_opencl_c(std::string_view source, std::string_view options,
                                                    std::string_view entry) override;
    sync_point launch(compiled_kernel& kernel, dims grid, dims group, std::span<const bound_arg> args,
                      std::span<const sync_point> wait_for) override;
    bool reached(sync_point point) override;
    void wait(sync_point point) override;
    void wait_idle() noexcept override;

    const std::string& name() const noexcept { return m_properties.name; }

private:
    /// sync_point::queue values.
    static constexpr std::uint32_t compute_queue = 0;
    static constexpr std::uint32_t transfer_queue = 1;

    struct queue {
        queue(const char* queue_name, device_health& health) noexcept : points(queue_name, health) {}
        queue_handle handle;
        std::mutex submit_lock;
        timeline points;
    };

    // The queue a sync point belongs to; invalid_argument for an unknown one.
    queue& queue_of(sync_point point);
    // Event references for `wait_for`, for a command about to be enqueued on
    // `target`. Points of `target` itself are left out: the queue is in order.
    std::vector<event_handle> wait_events(std::span<const sync_point> wait_for, std::uint32_t target);
    // The mirror as one of this device's, or invalid_argument.
    opencl_mirror& own_mirror(device_mirror* mirror, const char* operation) const;
    // The mirror as one of this device's SVM mirrors, which transfers copy
    // to and from; invalid_argument for another device's or an imported one.
    svm_mirror& copyable_mirror(device_mirror* mirror, const char* operation) const;
    // The ops of a `what` batch ("upload", "download") as commands: each
    // checked (invalid_argument, out_of_range, naming it as `kind` #i), then
    // merged where they continue one another. Op is upload_op, fill_op or
    // download_op.
    template <class Op>
    std::vector<transfer_region> plan_regions(std::span<const Op> ops, const char* what, const char* kind) const;
    // Enqueues command `index` of a run on the transfer queue, waiting for
    // `wait_count` events at `waits` and setting `event` (either may be null).
    using enqueue_step =
        std::function<void(std::size_t index, cl_uint wait_count, const cl_event* waits, cl_event* event)>;
    // `commands` (> 0) commands on the transfer queue through `enqueue`:
    // the first waits for `wait_list`, the last one's event is returned. On
    // throw, what was enqueued has finished (it may read or write host memory
    // the core reuses). Caller holds m_transfer.submit_lock.
    event_handle enqueue_in_order(std::size_t commands, std::span<const cl_event> wait_list, const char* what,
                                  const enqueue_step& enqueue);
    // Records `done` on the transfer timeline and flushes the queue; its point.
    // device_lost when the flush fails. Caller holds m_transfer.submit_lock.
    sync_point record_transfer(event_handle done, std::size_t commands);
    // For a CPU copy: blocks until every point in `wait_for` and every
    // transfer enqueued so far is complete (what the queue would have waited
    // for). Caller holds m_transfer.submit_lock. Throws device_lost or
    // invalid_argument as wait() does.
    void wait_before_cpu_copy(std::span<const sync_point> wait_for);
    // The device address of every memory argument (null for values), after
    // checking each against the kernel's declaration (invalid_argument,
    // out_of_range). Touches no kernel state.
    std::vector<std::byte*> argument_addresses(const opencl_kernel& kernel, std::span<const bound_arg> args) const;
    // Names to the driver the SVM allocations `kernel` may reach
    // (CL_KERNEL_EXEC_INFO_SVM_PTRS). Caller holds kernel.arguments_lock().
    void name_svm_allocations(opencl_kernel& kernel, std::span<const bound_arg> args);
    // clSetKernelArg* for every argument. Caller holds kernel.arguments_lock().
    void set_arguments(opencl_kernel& kernel, std::span<const bound_arg> args, std::span<std::byte* const> addresses);
    // Enqueues `kernel` with the arguments set on the compute queue after
    // `wait_for`, records and flushes it; its point. Caller holds
    // kernel.arguments_lock() (the enqueue consumes the arguments).
    sync_point enqueue_kernel(opencl_kernel& kernel, dims grid, dims group, std::span<const sync_point> wait_for);
    // invalid_argument unless grid and group are non-zero and `group` fits
    // the device and `kernel`. (grid * group, two 32-bit factors, always
    // fits in a 64-bit size_t.)
    void check_geometry(const opencl_kernel& kernel, dims grid, dims group) const;

    std::shared_ptr<const driver> m_driver;
    cl_device_id m_device;
    device_properties m_properties;
    std::size_t m_max_group_size = 0;             // CL_DEVICE_MAX_WORK_GROUP_SIZE
    std::size_t m_base_alignment = 0;             // CL_DEVICE_MEM_BASE_ADDR_ALIGN, in bytes
    bool m_host_mirrors = false;                  // mirrors are fine-grained SVM the host may copy
    std::vector<std::size_t> m_max_group_extent;  // CL_DEVICE_MAX_WORK_ITEM_SIZES
    device_health m_health;
    context_handle m_context;
    queue m_compute;
    queue m_transfer;
};

}  // namespace usm::detail::opencl
