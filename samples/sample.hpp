// samples/sample.hpp - loading a kernel in the form a device takes, and
// printing one line of results per device.
#pragma once

#include <cstdio>
#include <span>
#include <string>
#include <string_view>

#include "usm/usm.hpp"

namespace sample {

/// Loads `spirv` on Vulkan devices and the OpenCL C `source`'s `entry`
/// elsewhere.
inline usm::kernel load(usm::device& d, std::span<const std::uint32_t> spirv, std::string_view source,
                        std::string_view entry) {
    return d.backend() == usm::backend::vulkan ? d.load_kernel(usm::spirv(spirv), "main")
                                               : d.load_kernel(usm::opencl_c(source), entry);
}

inline void report(const char* name, usm::device& d, const std::string& what, bool verified, const usm::stats& s) {
    std::printf("%-7s %-7s %-40.40s %s: %s\n", name, usm::to_string(d.backend()), d.name().c_str(), what.c_str(),
                verified ? "VERIFIED" : "WRONG");
    std::printf(
        "        host faults %llu read / %llu write; to device %llu pages (%.1f MiB), to host %llu pages "
        "(%.1f MiB), zero-filled %llu pages, %llu transfer batches, %llu launches, %llu kernel waits\n",
        static_cast<unsigned long long>(s.host_read_faults), static_cast<unsigned long long>(s.host_write_faults),
        static_cast<unsigned long long>(s.pages_to_device), static_cast<double>(s.bytes_to_device) / 1048576.0,
        static_cast<unsigned long long>(s.pages_to_host), static_cast<double>(s.bytes_to_host) / 1048576.0,
        static_cast<unsigned long long>(s.pages_zero_filled), static_cast<unsigned long long>(s.transfer_batches),
        static_cast<unsigned long long>(s.launches), static_cast<unsigned long long>(s.kernel_waits));
}

}  // namespace sample
