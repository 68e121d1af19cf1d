// backends/vulkan/vulkan_spirv.cpp - spirv-val and a minimal SPIR-V reader.
//
// The reader walks the instruction stream once (the validator has already
// checked its structure) and keeps: entry points, LocalSize / LocalSizeId
// execution modes, SpecId and BuiltIn WorkgroupSize decorations, and scalar
// and composite constants. glslang always emits "LocalSize 1 1 1" even for
// local_size_x_id, and overrides it with a WorkgroupSize constant whose
// components are specialization constants, so that constant, where present,
// decides.
#include "backends/vulkan/vulkan_spirv.hpp"

#include <optional>
#include <spirv-tools/libspirv.hpp>
#include <unordered_map>
#include <vector>

#include "core/diagnostics.hpp"

namespace usm::detail::vulkan {

namespace {

// From the SPIR-V specification (unified1), section 3.
constexpr std::uint32_t spirv_magic = 0x07230203;
constexpr std::uint32_t op_entry_point = 15;
constexpr std::uint32_t op_execution_mode = 16;
constexpr std::uint32_t op_constant = 43;
constexpr std::uint32_t op_constant_composite = 44;
constexpr std::uint32_t op_spec_constant = 50;
constexpr std::uint32_t op_spec_constant_composite = 51;
constexpr std::uint32_t op_decorate = 71;
constexpr std::uint32_t op_execution_mode_id = 331;
constexpr std::uint32_t mode_local_size = 17;
constexpr std::uint32_t mode_local_size_id = 38;
constexpr std::uint32_t decoration_spec_id = 1;
constexpr std::uint32_t decoration_built_in = 11;
constexpr std::uint32_t built_in_workgroup_size = 25;
constexpr std::uint32_t model_gl_compute = 5;

const char* model_name(std::uint32_t model) {
    static constexpr const char* names[] = {
        "Vertex", "TessellationControl", "TessellationEvaluation", "Geometry", "Fragment", "GLCompute", "Kernel"};
    return model < std::size(names) ? names[model] : "another execution model";
}

const char* level_name(spv_message_level_t level) {
    switch (level) {
        case SPV_MSG_FATAL:
        case SPV_MSG_INTERNAL_ERROR:
        case SPV_MSG_ERROR:
            return "error";
        case SPV_MSG_WARNING:
            return "warning";
        default:
            return "info";
    }
}

/// A literal string starting at words[first], within [first, end).
std::string read_string(std::span<const std::uint32_t> words, std::size_t first, std::size_t end) {
    std::string text;
    for (std::size_t i = first; i < end; ++i) {
        for (int byte = 0; byte < 4; ++byte) {
            const char c = static_cast<char>((words[i] >> (8 * byte)) & 0xffu);
            if (c == '\0') return text;
            text += c;
        }
    }
    return text;
}

struct entry_point {
    std::uint32_t model = 0;
    std::uint32_t id = 0;
    std::string name;
};

struct module_facts {
    std::vector<entry_point> entries;
    std::unordered_map<std::uint32_t, std::array<std::uint32_t, 3>> local_size;     // entry id -> literals
    std::unordered_map<std::uint32_t, std::array<std::uint32_t, 3>> local_size_id;  // entry id -> constant ids
    std::unordered_map<std::uint32_t, std::uint32_t> spec_id;                       // constant id -> SpecId
    std::unordered_map<std::uint32_t, std::uint32_t> scalar;                        // constant id -> first word
    std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> composite;        // constant id -> parts
    std::optional<std::uint32_t> workgroup_size;  // id decorated BuiltIn WorkgroupSize
};

module_facts read_module(std::span<const std::uint32_t> words) {
    module_facts facts;
    for (std::size_t at = 5; at < words.size();) {
        const std::uint32_t count = words[at] >> 16;
        const std::uint32_t opcode = words[at] & 0xffffu;
        if (count == 0 || at + count > words.size()) break;  // the validator rejects this first
        const auto operand = [&](std::size_t i) { return words[at + 1 + i]; };
        const std::size_t operands = count - 1;
        switch (opcode) {
            case op_entry_point:
                if (operands >= 3)
                    facts.entries.push_back({operand(0), operand(1), read_string(words, at + 3, at + count)});
                break;
            case op_execution_mode:
            case op_execution_mode_id:
                if (operands >= 5 && operand(1) == mode_local_size)
                    facts.local_size[operand(0)] = {operand(2), operand(3), operand(4)};
                else if (operands >= 5 && operand(1) == mode_local_size_id)
                    facts.local_size_id[operand(0)] = {operand(2), operand(3), operand(4)};
                break;
            case op_decorate:
                if (operands >= 3 && operand(1) == decoration_spec_id) facts.spec_id[operand(0)] = operand(2);
                if (operands >= 3 && operand(1) == decoration_built_in && operand(2) == built_in_workgroup_size)
                    facts.workgroup_size = operand(0);
                break;
            case op_constant:
            case op_spec_constant:
                if (operands >= 3) facts.scalar[operand(1)] = operand(2);
                break;
            case op_constant_composite:
            case op_spec_constant_composite:
                if (operands >= 2) {
                    const auto parts = words.subspan(at + 3, count - 3);
                    facts.composite[operand(1)].assign(parts.begin(), parts.end());
                }
                break;
            default:
                break;
        }
        at += count;
    }
    return facts;
}

group_dim resolve(const module_facts& facts, std::uint32_t constant) {
    if (auto spec = facts.spec_id.find(constant); spec != facts.spec_id.end() && spec->second <= 2)
        return {group_dim::source::group, spec->second};
    // A plain constant, or a specialization constant usm never sets: its default.
    if (auto value = facts.scalar.find(constant); value != facts.scalar.end())
        return {group_dim::source::literal, value->second};
    return {group_dim::source::unknown, 0};
}

}  // namespace

spirv_kernel_info inspect_spirv(std::span<const std::uint32_t> words, std::string_view entry, std::string_view device,
                                bool scalar_block_layout) {
    if (words.size() < 5)
        throw_error(errc::kernel_build_failed, "SPIR-V for '", entry, "' on ", device, ": ", words.size(),
                    " words, shorter than the 5-word module header");
    if (words[0] != spirv_magic)
        throw_error(errc::kernel_build_failed, "SPIR-V for '", entry, "' on ", device, ": first word is 0x", std::hex,
                    words[0], " not the magic number 0x07230203 (wrong file, or byte-swapped words)");

    // --- validate ---
    spvtools::SpirvTools tools(SPV_ENV_VULKAN_1_2);
    if (!tools.IsValid())
        throw_error(errc::unsupported, "SPIRV-Tools could not create a Vulkan 1.2 validation context");
    std::string messages;
    tools.SetMessageConsumer([&messages](spv_message_level_t level, const char* /*source*/,
                                         const spv_position_t& position, const char* message) {
        messages += concat("\n  ", level_name(level), " (word ", position.index, "): ", message);
    });
    spvtools::ValidatorOptions options;
    options.SetScalarBlockLayout(scalar_block_layout);
    if (!tools.Validate(words.data(), words.size(), options))
        throw_error(errc::kernel_build_failed, "SPIR-V for '", entry, "' on ", device,
                    " failed validation (spirv-val, Vulkan 1.2):", messages.empty() ? " (no message)" : messages);

    // --- entry point ---
    const module_facts facts = read_module(words);
    const entry_point* found = nullptr;
    for (const entry_point& e : facts.entries)
        if (e.model == model_gl_compute && e.name == entry) found = &e;
    if (found == nullptr) {
        std::string listed;
        for (const entry_point& e : facts.entries)
            listed += concat(listed.empty() ? "" : ", ", "'", e.name, "' (", model_name(e.model), ")");
        throw_error(errc::kernel_build_failed, "SPIR-V on ", device, " has no GLCompute entry point '", entry,
                    "'; its entry points: ", listed.empty() ? "none" : listed);
    }

    // --- work-group size ---
    spirv_kernel_info info;
    for (const auto& [constant, id] : facts.spec_id)
        if (id <= 2) info.has_spec_id[id] = true;
    const auto composite = facts.workgroup_size ? facts.composite.find(*facts.workgroup_size) : facts.composite.end();
    if (composite != facts.composite.end() && composite->second.size() == 3) {
        for (int d = 0; d < 3; ++d) info.group_size[d] = resolve(facts, composite->second[d]);
    } else if (auto ids = facts.local_size_id.find(found->id); ids != facts.local_size_id.end()) {
        for (int d = 0; d < 3; ++d) info.group_size[d] = resolve(facts, ids->second[d]);
    } else if (auto literal = facts.local_size.find(found->id); literal != facts.local_size.end()) {
        for (int d = 0; d < 3; ++d) info.group_size[d] = {group_dim::source::literal, literal->second[d]};
    } else {
        for (group_dim& d : info.group_size) d = {group_dim::source::unknown, 0};
    }
    return info;
}

std::array<std::uint32_t, 3> effective_group(const spirv_kernel_info& info, const dims& group) noexcept {
    const std::uint32_t launch[3] = {group.x, group.y, group.z};
    std::array<std::uint32_t, 3> size{};
    for (int d = 0; d < 3; ++d) {
        const group_dim& g = info.group_size[d];
        switch (g.from) {
            case group_dim::source::group:
                size[d] = launch[g.value];
                break;
            case group_dim::source::literal:
                size[d] = g.value;
                break;
            case group_dim::source::unknown:
                size[d] = launch[d];
                break;
        }
    }
    return size;
}

std::string group_text(const std::array<std::uint32_t, 3>& size) {
    return concat(size[0], " x ", size[1], " x ", size[2]);
}

}  // namespace usm::detail::vulkan
