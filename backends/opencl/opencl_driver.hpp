// backends/opencl/opencl_driver.hpp - the OpenCL platforms and their devices.
#pragma once

#include <CL/cl.h>

#include <memory>
#include <string>
#include <vector>

#include "core/device_interface.hpp"

namespace usm::detail {

/// Loads the OpenCL driver: every device of every platform (the registry's
/// row, backends/registry.cpp). Returns null and sets `why_not` when there is
/// no ICD loader platform or no platform offers a device; never throws for a
/// missing driver.
std::shared_ptr<driver> load_opencl_driver(std::string& why_not);

}  // namespace usm::detail

namespace usm::detail::opencl {

/// Every device of every OpenCL platform, in platform then device order,
/// usable or not (device_candidate::rejected_because says why not).
class opencl_driver final : public driver, public std::enable_shared_from_this<opencl_driver> {
public:
    struct located {
        cl_platform_id platform;
        cl_device_id device;
    };

    opencl_driver(std::vector<device_candidate> candidates, std::vector<located> devices)
        : m_candidates(std::move(candidates)), m_devices(std::move(devices)) {}

    const std::vector<device_candidate>& candidates() const noexcept override { return m_candidates; }
    /// Opens candidate `index`. Throws usm::error: invalid_argument (no such
    /// candidate), unsupported (a rejected one, with the reason), or what
    /// opening the device reports. The device keeps this driver alive.
    std::unique_ptr<device_backend> open(std::size_t index) override;

private:
    std::vector<device_candidate> m_candidates;
    std::vector<located> m_devices;  // parallel to m_candidates
};

}  // namespace usm::detail::opencl
