// backends/opencl/opencl_info.hpp - typed clGet*Info queries.
//
// Each query names the parameter and the object it asked about, so a driver
// that fails a query yields "clGetDeviceInfo(CL_DEVICE_SVM_CAPABILITIES)
// failed on <device> ...". Write USM_CL_INFO(CL_DEVICE_NAME) for the
// (parameter, name) pair.
#pragma once

#include <CL/cl.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "backends/opencl/opencl_check.hpp"

#define USM_CL_INFO(param) param, #param

namespace usm::detail::opencl {

/// A string property of a device, without the terminating NUL. Throws
/// usm::error (unsupported, or what the status says) naming the parameter
/// and `who` (the device as far as it is known).
std::string device_string(cl_device_id device, cl_device_info param, const char* param_name, std::string_view who);

/// A string property of a platform; failure as for device_string.
std::string platform_string(cl_platform_id platform, cl_platform_info param, const char* param_name,
                            std::string_view who);

/// An array property of size_t (CL_DEVICE_MAX_WORK_ITEM_SIZES).
std::vector<std::size_t> device_sizes(cl_device_id device, cl_device_info param, const char* param_name,
                                      std::string_view who);

/// A scalar property of a device (cl_uint, cl_ulong, size_t, cl_bool, bitfields).
template <class T>
T device_value(cl_device_id device, cl_device_info param, const char* param_name, std::string_view who) {
    T value{};
    check_cl_as(errc::unsupported, clGetDeviceInfo(device, param, sizeof value, &value, nullptr), "clGetDeviceInfo",
                who, param_name);
    return value;
}

}  // namespace usm::detail::opencl
