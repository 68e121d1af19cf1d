// backends/vulkan/vulkan_kernel.hpp - compute pipelines from SPIR-V, and
// launches (push-constant packing, validation, recording).
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "backends/vulkan/vulkan_locks.hpp"
#include "backends/vulkan/vulkan_logical_device.hpp"
#include "backends/vulkan/vulkan_queues.hpp"
#include "backends/vulkan/vulkan_spirv.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::vulkan {

/// A SPIR-V compute kernel on one device: its shader module, a pipeline
/// layout with no descriptor sets and one push-constant range (the whole
/// maxPushConstantsSize, compute stage), and one pipeline per work-group size,
/// created on first use with the group size in specialization constants 0-2.
class kernel final : public compiled_kernel {
public:
    /// Validates and builds. Throws kernel_build_failed (validator messages,
    /// missing entry point, or the driver refusing the module or pipeline),
    /// out_of_memory; nothing is left created on throw.
    kernel(std::shared_ptr<const logical_device> device, std::span<const std::uint32_t> words, std::string_view entry);

    const logical_device& device() const noexcept { return *m_device; }
    vk::PipelineLayout layout() const noexcept { return *m_layout; }

    /// Throws invalid_argument when the module fixes a work-group size other
    /// than `group` (a literal local_size).
    void check_group(const dims& group) const;

    /// The pipeline for `group` (already checked), created on first use.
    /// Thread-safe: builds and launches may run concurrently. Owned by this
    /// kernel. Throws kernel_build_failed or out_of_memory.
    vk::Pipeline pipeline_for(const dims& group);

private:
    std::shared_ptr<const logical_device> m_device;  // outlives the handles below
    spirv_kernel_info m_info;
    vk::UniqueShaderModule m_module;
    vk::UniquePipelineLayout m_layout;
    ranked_mutex<rank_kernel> m_lock;  // guards m_pipelines
    std::map<std::array<std::uint32_t, 3>, vk::UniquePipeline> m_pipelines;
};

/// Packs `args` into push-constant bytes (docs/kernel-abi.md): a memory
/// argument is the 8-byte aligned uint64 device address of its mirror plus
/// offset; a value argument is its bytes at its alignof. Throws
/// invalid_argument (a bad argument, or more than maxPushConstantsSize bytes)
/// or out_of_range (a range past its mirror's end). The result's size is a
/// multiple of 4, as vkCmdPushConstants needs.
std::vector<std::byte> pack_arguments(const logical_device& device, std::string_view kernel_name,
                                      std::span<const bound_arg> args);

/// The contract's launch(): validates grid and group against the device's
/// limits (invalid_argument naming the numbers), then records a barrier
/// after earlier launches, the pipeline, the push constants, the dispatch
/// and a shader-write -> host barrier into one compute submission after
/// `wait_for`. On throw nothing was submitted.
sync_point launch_kernel(queue_set& queues, kernel& k, const dims& grid, const dims& group,
                         std::span<const bound_arg> args, std::span<const sync_point> wait_for);

}  // namespace usm::detail::vulkan
