// backends/vulkan/vulkan_spirv.hpp - validating a SPIR-V module and reading
// what usm needs from it: the compute entry point and its work-group size.
// No Vulkan types: testable without a device.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/device_interface.hpp"

namespace usm::detail::vulkan {

/// Where one dimension of a kernel's work-group size comes from.
struct group_dim {
    enum class source : std::uint8_t {
        group,    ///< specialization constant `value` (0, 1 or 2), which usm sets from usm::group
        literal,  ///< fixed at `value` in the module
        unknown,  ///< computed in a way usm does not follow: not checked
    };
    source from = source::literal;
    std::uint32_t value = 1;
};

/// What usm learned from a module about one entry point.
struct spirv_kernel_info {
    std::array<group_dim, 3> group_size{};
    /// The module declares specialization constant 0, 1, 2 (only those get
    /// a map entry, so a module without them is not handed unknown ids).
    std::array<bool, 3> has_spec_id{};
};

/// Validates `words` with spirv-val under Vulkan 1.2 rules and finds the
/// GLCompute entry point named `entry`. Throws errc::kernel_build_failed
/// naming `device`: with the validator's messages when the module is
/// invalid; naming `entry` and listing the module's entry points when there
/// is no such GLCompute entry point. `scalar_block_layout` tells the
/// validator that the device enabled that feature.
spirv_kernel_info inspect_spirv(std::span<const std::uint32_t> words, std::string_view entry, std::string_view device,
                                bool scalar_block_layout);

/// The size each dimension of a work-group will have when the kernel runs
/// with launch group `group` (a literal dimension keeps its literal).
std::array<std::uint32_t, 3> effective_group(const spirv_kernel_info& info, const dims& group) noexcept;

/// "64 x 1 x 1".
std::string group_text(const std::array<std::uint32_t, 3>& size);

}  // namespace usm::detail::vulkan
