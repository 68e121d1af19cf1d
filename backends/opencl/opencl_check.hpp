// backends/opencl/opencl_check.hpp - turning OpenCL statuses into usm::error.
//
// Every cl call in this backend is checked; a failure becomes a usm::error
// whose message names the call, the device and the sizes involved, and whose
// driver_result() is the raw cl_int. The backend never aborts on a driver error.
#pragma once

#include <CL/cl.h>

#include <string>
#include <string_view>

#include "core/diagnostics.hpp"

namespace usm::detail::opencl {

/// "CL_OUT_OF_RESOURCES" for a known status, "unknown OpenCL status" otherwise.
const char* cl_status_name(cl_int status) noexcept;

/// The usm::errc a failed cl call reports. Statuses that mean the same thing
/// wherever they occur are fixed: the allocation failures (CL_OUT_OF_RESOURCES,
/// CL_OUT_OF_HOST_MEMORY, CL_MEM_OBJECT_ALLOCATION_FAILURE) -> out_of_memory;
/// bad launch geometry or kernel arguments -> invalid_argument; an unavailable
/// device or a failed event -> device_lost; compiler and linker failures ->
/// kernel_build_failed. Every other status reports `fallback`, which the caller
/// picks for what the call was doing (device_lost for a submission,
/// transfer_failed for a copy, unsupported for a query at open).
errc classify_cl_status(cl_int status, errc fallback) noexcept;

/// Throws the usm::error for `status` returned by `call` on `device`; `parts`
/// describe the operation (sizes, offsets, names) and are appended.
template <class... Parts>
[[noreturn]] void throw_cl(errc fallback, cl_int status, std::string_view call, std::string_view device,
                           const Parts&... parts) {
    throw_driver_error(classify_cl_status(status, fallback), status, call, " failed on ", device, " with ",
                       cl_status_name(status), " (", status, ")", (sizeof...(Parts) > 0 ? ": " : ""), parts...);
}

/// Checks a cl_int status; a failure is reported as `fallback` unless the
/// status itself says more (see classify_cl_status).
template <class... Parts>
void check_cl_as(errc fallback, cl_int status, std::string_view call, std::string_view device, const Parts&... parts) {
    if (status != CL_SUCCESS) [[unlikely]]
        throw_cl(fallback, status, call, device, parts...);
}

/// check_cl_as for a submission: an unexplained failure means the device can
/// no longer be trusted, so it reports device_lost.
template <class... Parts>
void check_cl(cl_int status, std::string_view call, std::string_view device, const Parts&... parts) {
    check_cl_as(errc::device_lost, status, call, device, parts...);
}

/// "4 KiB (4096 bytes)": sizes in messages, readable and exact.
std::string describe_bytes(unsigned long long bytes);

}  // namespace usm::detail::opencl
