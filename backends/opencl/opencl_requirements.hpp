// backends/opencl/opencl_requirements.hpp - which OpenCL devices usm can use.
//
// Kept free of OpenCL headers and inline, so the rules can be tested on
// devices no test machine has (PoCL passes all of them).
#pragma once

#include <charconv>
#include <string>
#include <string_view>

namespace usm::detail::opencl {

/// "OpenCL 2.0 <vendor text>" (CL_DEVICE_VERSION, CL_PLATFORM_VERSION) as
/// major * 100 + minor (200); 0 when the text does not follow the format the
/// specification fixes ("OpenCL<space><major>.<minor><space>...").
inline int parse_opencl_version(std::string_view text) noexcept {
    constexpr std::string_view prefix = "OpenCL ";
    if (!text.starts_with(prefix)) return 0;
    text.remove_prefix(prefix.size());
    const char* const end = text.data() + text.size();
    int major = 0;
    int minor = 0;
    auto [after_major, major_error] = std::from_chars(text.data(), end, major);
    if (major_error != std::errc{} || after_major == end || *after_major != '.') return 0;
    auto [after_minor, minor_error] = std::from_chars(after_major + 1, end, minor);
    if (minor_error != std::errc{} || minor < 0 || minor > 99) return 0;
    return major * 100 + minor;
}

/// What decides whether usm can use a device, as the driver reports it.
struct device_facts {
    std::string version;              ///< CL_DEVICE_VERSION
    bool coarse_grain_svm = false;    ///< CL_DEVICE_SVM_COARSE_GRAIN_BUFFER in CL_DEVICE_SVM_CAPABILITIES
    bool available = false;           ///< CL_DEVICE_AVAILABLE
    bool compiler_available = false;  ///< CL_DEVICE_COMPILER_AVAILABLE
};

/// Empty when usm can use the device; otherwise why not, for
/// device_candidate::rejected_because (shown in errc::no_device messages).
inline std::string rejection_reason(const device_facts& facts) {
    const int version = parse_opencl_version(facts.version);
    // Mirrors are coarse-grained SVM allocations (clSVMAlloc, OpenCL 2.0) so
    // that a launch can pass a pointer into the middle of one.
    if (version < 200)
        return "OpenCL 2.0 or later is needed for shared virtual memory; the device reports \"" + facts.version + "\"";
    if (!facts.coarse_grain_svm)
        return "no coarse-grained SVM buffers (CL_DEVICE_SVM_COARSE_GRAIN_BUFFER is not in "
               "CL_DEVICE_SVM_CAPABILITIES)";
    if (!facts.available) return "the driver reports the device unavailable (CL_DEVICE_AVAILABLE is false)";
    // Kernels reach usm as OpenCL C source (usm::opencl_c).
    if (!facts.compiler_available) return "no OpenCL C compiler (CL_DEVICE_COMPILER_AVAILABLE is false)";
    return {};
}

}  // namespace usm::detail::opencl
