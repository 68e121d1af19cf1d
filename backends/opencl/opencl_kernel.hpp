// backends/opencl/opencl_kernel.hpp - a kernel built from OpenCL C for one device.
#pragma once

#include <CL/cl.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "backends/opencl/opencl_handle.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::opencl {

class opencl_device;

/// One __kernel of a built program. Owns a reference to the cl_kernel (which
/// holds its program and context), so it stays valid if the device is closed
/// first. Launched only on the device that built it.
class opencl_kernel final : public compiled_kernel {
public:
    /// How a kernel parameter is declared, from CL_KERNEL_ARG_ADDRESS_QUALIFIER
    /// (usm builds with -cl-kernel-arg-info; `unknown` if the driver still
    /// does not say).
    enum class parameter : std::uint8_t {
        value,           ///< __private: a usm value argument
        global_pointer,  ///< __global or __constant: a usm memory argument
        local_pointer,   ///< __local: sized at launch, which usm does not offer
        unknown,
    };

    opencl_kernel(const opencl_device& owner, std::string entry, kernel_handle kernel,
                  std::vector<parameter> parameters, std::size_t max_group_size)
        : compiled_kernel(std::move(entry)),
          m_owner(&owner),
          m_kernel(std::move(kernel)),
          m_parameters(std::move(parameters)),
          m_max_group_size(max_group_size) {}

    /// The device that built it; compared, never dereferenced.
    const opencl_device* owner() const noexcept { return m_owner; }
    cl_kernel handle() const noexcept { return m_kernel.get(); }
    /// CL_KERNEL_NUM_ARGS, one entry per parameter.
    const std::vector<parameter>& parameters() const noexcept { return m_parameters; }
    /// CL_KERNEL_WORK_GROUP_SIZE for its device: may be below the device's limit.
    std::size_t max_group_size() const noexcept { return m_max_group_size; }
    /// A cl_kernel's arguments are state shared by every launch: hold this
    /// from the first clSetKernelArg* to the enqueue that consumes them.
    std::mutex& arguments_lock() noexcept { return m_arguments_lock; }
    /// Whether the last launch named SVM allocations the kernel reaches
    /// indirectly (clSetKernelExecInfo): kernel state like its arguments,
    /// cleared by the next launch that names none. Under arguments_lock().
    bool names_indirect() const noexcept { return m_names_indirect; }
    void set_names_indirect(bool on) noexcept { m_names_indirect = on; }

private:
    const opencl_device* m_owner;
    kernel_handle m_kernel;
    std::vector<parameter> m_parameters;
    std::size_t m_max_group_size;
    std::mutex m_arguments_lock;
    bool m_names_indirect = false;
};

}  // namespace usm::detail::opencl
