// backends/vulkan/vulkan_debug.hpp - what the Khronos validation layer said.
//
// With USM_VK_VALIDATION=1 in the environment when the Vulkan driver loads,
// usm enables VK_LAYER_KHRONOS_validation (when installed) and a
// VK_EXT_debug_utils messenger that logs every message through usm's log and
// counts the error-severity ones. USM_VK_VALIDATION=sync adds synchronization
// validation. Tests assert that the count stays 0. No Vulkan types here.
#pragma once

#include <cstdint>

namespace usm::detail {

/// Error-severity validation messages reported so far in this process, over
/// every Vulkan instance usm created. 0 when validation is off.
std::uint64_t vulkan_validation_errors() noexcept;

/// True once a Vulkan instance of this process was created with the
/// validation layer enabled.
bool vulkan_validation_active() noexcept;

}  // namespace usm::detail
