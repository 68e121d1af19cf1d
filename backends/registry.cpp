// backends/registry.cpp - the one table of backends compiled into usm.
#include "core/device_interface.hpp"

namespace usm::detail {

#if USM_HAVE_VULKAN
std::shared_ptr<driver> load_vulkan_driver(std::string& why_not);
#endif
#if USM_HAVE_OPENCL
std::shared_ptr<driver> load_opencl_driver(std::string& why_not);
#endif

std::span<const backend_entry> registered_backends() noexcept {
    static const backend_entry table[] = {
#if USM_HAVE_VULKAN
        {usm::backend::vulkan, "vulkan", &load_vulkan_driver},
#endif
#if USM_HAVE_OPENCL
        {usm::backend::opencl, "opencl", &load_opencl_driver},
#endif
        {usm::backend::vulkan, nullptr, nullptr},  // sentinel, keeps the array non-empty
    };
    return {table, std::size(table) - 1};
}

}  // namespace usm::detail
