// backends/vulkan/vulkan_check.hpp - how the Vulkan backend includes Vulkan,
// and the one helper that turns a VkResult into a usm::error.
//
// Every file of this backend includes Vulkan through this header, so all of
// them see the same Vulkan-Hpp configuration (the ODR needs that):
//   * VULKAN_HPP_NO_EXCEPTIONS: calls return vk::Result / vk::ResultValue and
//     this backend checks every one with check_vk or take_vk below, so each
//     error names the call, the device and the sizes involved;
//   * VULKAN_HPP_ASSERT_ON_RESULT is empty: Vulkan-Hpp would otherwise assert()
//     on a failed result in debug builds, and usm never aborts on a driver
//     error (STYLE.md, habit 5).
#pragma once

#define VULKAN_HPP_NO_EXCEPTIONS 1
#define VULKAN_HPP_ASSERT_ON_RESULT(condition) static_cast<void>(0)
#include <vulkan/vulkan.hpp>

#include <string>
#include <string_view>
#include <utility>

#include "core/diagnostics.hpp"

namespace usm::detail::vulkan {

/// "VK_ERROR_OUT_OF_DEVICE_MEMORY" and the like; never null.
const char* result_name(vk::Result result) noexcept;

/// The usm error code for a failed VkResult: out-of-memory results become
/// errc::out_of_memory, VK_ERROR_DEVICE_LOST errc::device_lost, anything
/// else `otherwise`.
errc error_code_for(vk::Result result, errc otherwise) noexcept;

/// Throws usm::error for a failed (negative) `result` of Vulkan call `call`
/// on device `device`. `context` parts say what was being done ("a 16 MiB
/// mirror", ...). The raw VkResult goes into error::driver_result().
/// Success and positive status codes (VK_TIMEOUT, ...) return normally.
template <class... Parts>
void check_vk(vk::Result result, errc otherwise, const char* call, std::string_view device, const Parts&... context) {
    if (static_cast<int>(result) >= 0) return;
    std::string what = concat(call, " failed on ", device);
    if constexpr (sizeof...(Parts) > 0) what += concat(" (", context..., ")");
    throw_driver_error(error_code_for(result, otherwise), static_cast<long long>(result), what, ": ",
                       result_name(result), " (", static_cast<int>(result), ")");
}

/// check_vk for calls that return a value: returns it on success.
template <class T, class... Parts>
T take_vk(vk::ResultValue<T>&& returned, errc otherwise, const char* call, std::string_view device,
          const Parts&... context) {
    check_vk(returned.result, otherwise, call, device, context...);
    return std::move(returned.value);
}

}  // namespace usm::detail::vulkan
