// backends/opencl/opencl_driver.cpp - platforms, candidates, opening a device.
#include "backends/opencl/opencl_driver.hpp"

#include <CL/cl_ext.h>

#include "backends/driver_candidates.hpp"
#include "backends/opencl/opencl_check.hpp"
#include "backends/opencl/opencl_device.hpp"
#include "backends/opencl/opencl_info.hpp"
#include "backends/opencl/opencl_requirements.hpp"

namespace usm::detail::opencl {

namespace {

// Every device type: PoCL is a CPU device, and usm runs on whatever a
// platform offers as long as it meets opencl_requirements.hpp.
constexpr cl_device_type all_devices = CL_DEVICE_TYPE_ALL;

std::vector<cl_platform_id> list_platforms(cl_int& status) {
    cl_uint count = 0;
    status = clGetPlatformIDs(0, nullptr, &count);
    if (status != CL_SUCCESS || count == 0) return {};
    std::vector<cl_platform_id> platforms(count);
    status = clGetPlatformIDs(count, platforms.data(), &count);
    platforms.resize(status == CL_SUCCESS ? count : 0);
    return platforms;
}

std::vector<cl_device_id> list_devices(cl_platform_id platform, cl_int& status) {
    cl_uint count = 0;
    status = clGetDeviceIDs(platform, all_devices, 0, nullptr, &count);
    if (status != CL_SUCCESS || count == 0) return {};
    std::vector<cl_device_id> devices(count);
    status = clGetDeviceIDs(platform, all_devices, count, devices.data(), &count);
    devices.resize(status == CL_SUCCESS ? count : 0);
    return devices;
}

// The candidate for one device: its name and, if usm cannot use it, why.
// A device whose queries fail is offered as rejected with the failure, so
// one broken device does not hide the others.
device_candidate describe(cl_device_id device, const std::string& fallback_name) {
    device_candidate candidate{fallback_name, {}};
    try {
        candidate.name = device_string(device, USM_CL_INFO(CL_DEVICE_NAME), fallback_name);
        device_facts facts;
        facts.version = device_string(device, USM_CL_INFO(CL_DEVICE_VERSION), candidate.name);
        if (parse_opencl_version(facts.version) >= 200) {
            // CL_DEVICE_SVM_CAPABILITIES exists from OpenCL 2.0 on; older
            // devices reject the query, and are rejected for their version.
            const auto svm = device_value<cl_device_svm_capabilities>(device, USM_CL_INFO(CL_DEVICE_SVM_CAPABILITIES),
                                                                      candidate.name);
            facts.coarse_grain_svm = (svm & CL_DEVICE_SVM_COARSE_GRAIN_BUFFER) != 0;
        }
        facts.available = device_value<cl_bool>(device, USM_CL_INFO(CL_DEVICE_AVAILABLE), candidate.name) != CL_FALSE;
        facts.compiler_available =
            device_value<cl_bool>(device, USM_CL_INFO(CL_DEVICE_COMPILER_AVAILABLE), candidate.name) != CL_FALSE;
        candidate.rejected_because = rejection_reason(facts);
    } catch (const error& e) {
        candidate.rejected_because = e.what();
    }
    return candidate;
}

}  // namespace

std::unique_ptr<device_backend> opencl_driver::open(std::size_t index) {
    candidate_to_open(m_candidates, index, "OpenCL");
    return std::make_unique<opencl_device>(shared_from_this(), m_devices[index].platform, m_devices[index].device);
}

}  // namespace usm::detail::opencl

namespace usm::detail {

std::shared_ptr<driver> load_opencl_driver(std::string& why_not) {
    using namespace opencl;
    cl_int status = CL_SUCCESS;
    const std::vector<cl_platform_id> platforms = list_platforms(status);
    if (status == CL_PLATFORM_NOT_FOUND_KHR || (status == CL_SUCCESS && platforms.empty())) {
        why_not =
            "no OpenCL platform is installed (the ICD loader found no driver in /etc/OpenCL/vendors; "
            "on Debian, install pocl-opencl-icd or a GPU vendor's ICD)";
        return nullptr;
    }
    if (status != CL_SUCCESS) {
        why_not = concat("clGetPlatformIDs failed with ", cl_status_name(status), " (", status, ")");
        return nullptr;
    }

    std::vector<device_candidate> candidates;
    std::vector<opencl_driver::located> located;
    std::string empty_platforms;
    for (std::size_t p = 0; p < platforms.size(); ++p) {
        std::string platform_name = concat("OpenCL platform ", p);
        try {
            platform_name = platform_string(platforms[p], USM_CL_INFO(CL_PLATFORM_NAME), platform_name);
        } catch (const error& e) {
            log(log_level::warn, e.what());
        }
        const std::vector<cl_device_id> devices = list_devices(platforms[p], status);
        if (status != CL_SUCCESS && status != CL_DEVICE_NOT_FOUND)
            log(log_level::warn, "clGetDeviceIDs failed on ", platform_name, " with ", cl_status_name(status), " (",
                status, "); skipping the platform");
        if (devices.empty()) {
            empty_platforms += (empty_platforms.empty() ? "" : ", ") + platform_name;
            continue;
        }
        for (std::size_t d = 0; d < devices.size(); ++d) {
            candidates.push_back(describe(devices[d], concat(platform_name, " device ", d)));
            located.push_back({platforms[p], devices[d]});
            if (!candidates.back().rejected_because.empty())
                log(log_level::info, "OpenCL device ", candidates.back().name,
                    " is not usable: ", candidates.back().rejected_because);
        }
    }
    if (candidates.empty()) {
        why_not = concat("no OpenCL platform offers a device (", empty_platforms, ")");
        return nullptr;
    }
    return std::make_shared<opencl_driver>(std::move(candidates), std::move(located));
}

}  // namespace usm::detail
