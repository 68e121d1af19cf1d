// backends/vulkan/vulkan_kernel.cpp - shader modules, pipelines per group
// size, push-constant packing and launches.
#include "backends/vulkan/vulkan_kernel.hpp"

#include <cstring>

#include "backends/vulkan/vulkan_memory.hpp"

namespace usm::detail::vulkan {

/* --- kernel ---------------------------------------------------------------------- */

kernel::kernel(std::shared_ptr<const logical_device> device, std::span<const std::uint32_t> words,
               std::string_view entry_name)
    : compiled_kernel(std::string(entry_name)), m_device(std::move(device)) {
    const logical_device& dev = *m_device;
    m_info = inspect_spirv(words, entry_name, dev.name, dev.scalar_block_layout);

    const vk::ShaderModuleCreateInfo module_info({}, words.size_bytes(), words.data());
    m_module = take_vk(dev.device().createShaderModuleUnique(module_info), errc::kernel_build_failed,
                       "vkCreateShaderModule", dev.name, "kernel '", entry(), "', ", words.size(), " words");

    // Arguments travel as push constants only (docs/kernel-abi.md): the
    // range spans the whole block the device allows, so any layout fits.
    const vk::PushConstantRange range(vk::ShaderStageFlagBits::eCompute, 0, dev.limits.maxPushConstantsSize);
    const vk::PipelineLayoutCreateInfo layout_info({}, {}, range);
    m_layout = take_vk(dev.device().createPipelineLayoutUnique(layout_info), errc::kernel_build_failed,
                       "vkCreatePipelineLayout", dev.name, "kernel '", entry(), "'");

    // A kernel with a literal size has one pipeline: build it now, so driver
    // compile errors surface at load time rather than at the first launch.
    bool literal = true;
    for (const group_dim& d : m_info.group_size) literal = literal && d.from == group_dim::source::literal;
    if (literal) {
        const auto& size = m_info.group_size;
        pipeline_for(dims{size[0].value, size[1].value, size[2].value});
    }
}

void kernel::check_group(const dims& group) const {
    const std::array<std::uint32_t, 3> runs = effective_group(m_info, group);
    const std::array<std::uint32_t, 3> asked = {group.x, group.y, group.z};
    if (runs != asked)
        throw_error(errc::invalid_argument, "launch of '", entry(), "' on ", m_device->name,
                    ": its SPIR-V fixes the work-group size at ", group_text(runs), " (a literal local_size), ",
                    "but the launch asks for ", group_text(asked),
                    "; launch with that group or use local_size_x_id = 0 (docs/kernel-abi.md)");
}

vk::Pipeline kernel::pipeline_for(const dims& group) {
    const logical_device& dev = *m_device;
    const std::array<std::uint32_t, 3> key = {group.x, group.y, group.z};
    std::lock_guard lock(m_lock);
    if (auto found = m_pipelines.find(key); found != m_pipelines.end()) return *found->second;

    // Map entries only for the specialization constants the module declares.
    std::array<vk::SpecializationMapEntry, 3> entries;
    std::uint32_t count = 0;
    for (std::uint32_t d = 0; d < 3; ++d)
        if (m_info.has_spec_id[d])
            entries[count++] = vk::SpecializationMapEntry(d, d * sizeof(std::uint32_t), sizeof(std::uint32_t));
    const vk::SpecializationInfo specialization(count, entries.data(), sizeof(key), key.data());
    const vk::PipelineShaderStageCreateInfo stage({}, vk::ShaderStageFlagBits::eCompute, *m_module, entry().c_str(),
                                                  count > 0 ? &specialization : nullptr);
    const vk::ComputePipelineCreateInfo pipeline_info({}, stage, *m_layout);
    auto created = dev.device().createComputePipelineUnique(vk::PipelineCache(), pipeline_info);
    check_vk(created.result, errc::kernel_build_failed, "vkCreateComputePipelines", dev.name, "kernel '", entry(),
             "', group ", group_text(key));
    const vk::Pipeline pipeline = *created.value;
    m_pipelines.emplace(key, std::move(created.value));
    return pipeline;
}

/* --- arguments ----------------------------------------------------------------------- */

std::vector<std::byte> pack_arguments(const logical_device& dev, std::string_view kernel_name,
                                      std::span<const bound_arg> args) {
    const std::size_t limit = dev.limits.maxPushConstantsSize;
    std::vector<std::byte> block;
    const auto place = [&](std::size_t index, const void* bytes, std::size_t size, std::size_t align) {
        const std::size_t at = (block.size() + align - 1) / align * align;
        if (at + size > limit)
            throw_error(errc::invalid_argument, "launch of '", kernel_name, "' on ", dev.name, ": argument #", index,
                        " ends at byte ", at + size, " of the push-constant block; the device allows ", limit,
                        " (maxPushConstantsSize: at most ", limit / 8, " pointers, docs/kernel-abi.md)");
        block.resize(at + size);  // zero padding
        std::memcpy(block.data() + at, bytes, size);
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bound_arg& arg = args[i];
        if (arg.what == launch_arg::kind::memory) {
            const mirror& m = mirror_of(arg.mirror, dev, "launch argument");
            if (arg.offset > m.bytes() || arg.bytes > m.bytes() - arg.offset)
                throw_error(errc::out_of_range, "launch of '", kernel_name, "' on ", dev.name, ": argument #", i, " [",
                            arg.offset, ", +", arg.bytes, ") runs past the end of its ", m.bytes(), "-byte mirror");
            const std::uint64_t address = m.address() + arg.offset;
            place(i, &address, sizeof address, 8);
        } else {
            if (arg.align == 0 || (arg.align & (arg.align - 1)) != 0 || (arg.size > 0 && arg.value == nullptr))
                throw_error(errc::invalid_argument, "launch of '", kernel_name, "' on ", dev.name, ": argument #", i,
                            " has alignment ", arg.align, " and ", arg.size, " bytes at ", arg.value);
            if (arg.size > 0) place(i, arg.value, arg.size, arg.align);
        }
    }
    block.resize((block.size() + 3) / 4 * 4);  // stays within limit, a multiple of 4
    return block;
}

/* --- launch -------------------------------------------------------------------------- */

namespace {

void check_dims(const logical_device& dev, std::string_view kernel_name, const dims& grid, const dims& group) {
    const auto& limits = dev.limits;
    const std::uint32_t g[3] = {grid.x, grid.y, grid.z};
    const std::uint32_t l[3] = {group.x, group.y, group.z};
    for (int d = 0; d < 3; ++d) {
        if (g[d] == 0 || g[d] > limits.maxComputeWorkGroupCount[d])
            throw_error(errc::invalid_argument, "launch of '", kernel_name, "' on ", dev.name, ": grid ", g[0], " x ",
                        g[1], " x ", g[2], " is outside 1 .. maxComputeWorkGroupCount ",
                        limits.maxComputeWorkGroupCount[0], " x ", limits.maxComputeWorkGroupCount[1], " x ",
                        limits.maxComputeWorkGroupCount[2]);
        if (l[d] == 0 || l[d] > limits.maxComputeWorkGroupSize[d])
            throw_error(errc::invalid_argument, "launch of '", kernel_name, "' on ", dev.name, ": group ", l[0], " x ",
                        l[1], " x ", l[2], " is outside 1 .. maxComputeWorkGroupSize ",
                        limits.maxComputeWorkGroupSize[0], " x ", limits.maxComputeWorkGroupSize[1], " x ",
                        limits.maxComputeWorkGroupSize[2]);
    }
    const std::uint64_t invocations = std::uint64_t(l[0]) * l[1] * l[2];
    if (invocations > limits.maxComputeWorkGroupInvocations)
        throw_error(errc::invalid_argument, "launch of '", kernel_name, "' on ", dev.name, ": group ", l[0], " x ",
                    l[1], " x ", l[2], " has ", invocations, " invocations; maxComputeWorkGroupInvocations is ",
                    limits.maxComputeWorkGroupInvocations);
}

}  // namespace

sync_point launch_kernel(queue_set& queues, kernel& k, const dims& grid, const dims& group,
                         std::span<const bound_arg> args, std::span<const sync_point> wait_for) {
    const logical_device& dev = k.device();
    check_dims(dev, k.entry(), grid, group);
    k.check_group(group);
    const std::vector<std::byte> constants = pack_arguments(dev, k.entry(), args);
    const vk::Pipeline pipeline = k.pipeline_for(group);

    command_batch batch = queues.begin(queue_id::compute);
    const vk::CommandBuffer commands = batch.commands();
    // Kernels see the writes of every earlier launch on this device (the
    // contract); memory arguments are device addresses, so the barrier is
    // global rather than per buffer.
    const vk::MemoryBarrier after_launches(vk::AccessFlagBits::eShaderWrite,
                                           vk::AccessFlagBits::eShaderRead | vk::AccessFlagBits::eShaderWrite);
    commands.pipelineBarrier(vk::PipelineStageFlagBits::eComputeShader, vk::PipelineStageFlagBits::eComputeShader, {},
                             after_launches, {}, {});
    commands.bindPipeline(vk::PipelineBindPoint::eCompute, pipeline);
    if (!constants.empty())
        commands.pushConstants(k.layout(), vk::ShaderStageFlagBits::eCompute, 0,
                               static_cast<std::uint32_t>(constants.size()), constants.data());
    commands.dispatch(grid.x, grid.y, grid.z);
    // The kernel's writes reach the host domain before the timeline signal:
    // the host reads imported memory (import_host) and mapped mirrors (CPU
    // copies) directly once the point is reached. Host writes need nothing:
    // vkQueueSubmit makes earlier ones to coherent memory visible.
    const vk::MemoryBarrier to_host(vk::AccessFlagBits::eShaderWrite,
                                    vk::AccessFlagBits::eHostRead | vk::AccessFlagBits::eHostWrite);
    commands.pipelineBarrier(vk::PipelineStageFlagBits::eComputeShader, vk::PipelineStageFlagBits::eHost, {}, to_host,
                             {}, {});
    return queues.submit(batch, wait_for);
}

}  // namespace usm::detail::vulkan
