// usm/device.hpp - one GPU (or CPU device) of a context.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "event.hpp"
#include "kernel.hpp"
#include "launch.hpp"
#include "stats.hpp"

namespace usm {

namespace detail {
struct device_slot;
}

/// Which driver API a device is reached through.
enum class backend { vulkan, opencl };

/// "vulkan" or "opencl".
const char* to_string(backend b) noexcept;

/// What a device is and what it can do, as found at context creation.
struct device_properties {
    std::string name;  ///< the driver's device name
    usm::backend backend = backend::vulkan;
    std::string driver;                     ///< driver name and version
    std::uint64_t memory_bytes = 0;         ///< device-local memory (heap size)
    std::uint64_t max_allocation = 0;       ///< largest single device buffer
    bool dedicated_transfer_queue = false;  ///< migrations run on their own hardware queue
    bool host_addressable = false;          ///< device memory is also CPU memory (software and integrated devices)
    /// The CPU can copy migration batches into and out of this device's
    /// memory itself (a CPU device's mapped or fine-grained memory);
    /// context_options::copy_path decides when it does.
    bool cpu_copies = false;
    /// Kernels can read and write host memory in place (advice::accessed_by
    /// takes effect): Vulkan with VK_EXT_external_memory_host, OpenCL
    /// devices that share the host's memory (CL_MEM_USE_HOST_PTR without a copy).
    bool host_memory_in_place = false;
};

/// A device of a context. A cheap handle: copies refer to the same device,
/// and stay valid as long as the context does.
class device {
public:
    explicit device(detail::device_slot* slot) noexcept : m_slot(slot) {}

    const device_properties& properties() const noexcept;
    const std::string& name() const noexcept { return properties().name; }
    usm::backend backend() const noexcept { return properties().backend; }
    /// Position in context::devices().
    std::size_t index() const noexcept;
    /// Most bytes of usm memory this device holds at once
    /// (context_options::device_budget).
    std::uint64_t budget() const noexcept;
    /// Bytes of usm memory valid on this device now (whole pages).
    std::uint64_t resident_bytes() const;
    /// What usm did on this device (context::stats, narrowed): pages moved
    /// to and from it, transfer batches, launches, device faults, replays,
    /// evictions, pinned and in-place blocks. Host faults, read-ahead,
    /// kernel waits, `allocations` and `bytes_allocated` belong to the
    /// context (and the allocations) and stay 0 here.
    usm::stats stats() const;

    /// Loads a Vulkan compute kernel. Throws usm::error: kernel_build_failed
    /// (with the validator's or driver's log) or unsupported (wrong backend).
    kernel load_kernel(const spirv& code, std::string_view entry = "main");
    /// Compiles an OpenCL C kernel. Throws usm::error: kernel_build_failed
    /// with the build log, or unsupported (wrong backend).
    kernel load_kernel(const opencl_c& code, std::string_view entry);

    /// Launches `k` over `g` work-groups of `l` work-items. Arguments follow
    /// the kernel's in declaration order: usm::read/write/read_write(p, n) for
    /// memory, any trivially copyable value otherwise. Before the kernel runs,
    /// every declared page is made valid on this device; the host loses write
    /// access to pages read and all access to pages written until it touches
    /// them again (which waits for the kernel). Returns without waiting.
    /// Throws usm::error and leaves every allocation as it was when an
    /// argument is bad (not_a_usm_pointer, out_of_range, invalid_argument) or
    /// a migration or submission fails.
    template <class... Args>
    event launch(const kernel& k, grid g, group l, const Args&... args) {
        const std::array<detail::launch_arg, sizeof...(Args)> list{detail::make_launch_arg(args)...};
        return launch_args(k, g, l, list);
    }

    /// launch() with the arguments already converted.
    event launch_args(const kernel& k, grid g, group l, std::span<const detail::launch_arg> args);

    detail::device_slot* slot() const noexcept { return m_slot; }
    friend bool operator==(const device& a, const device& b) noexcept { return a.m_slot == b.m_slot; }

private:
    detail::device_slot* m_slot;
};

}  // namespace usm
