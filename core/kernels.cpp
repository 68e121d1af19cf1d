// core/kernels.cpp - loading kernels, and the public device, kernel and
// event handles.
#include <string>

#include "core/context_impl.hpp"
#include "core/diagnostics.hpp"
#include "kernels/usm_cl.hpp"

namespace usm::detail {

namespace {

/// `source` with a line `#include "usm.cl"` (or <usm.cl>) replaced by the
/// helpers' text (shaders/usm.cl), line numbers kept for build logs. The
/// driver's compiler has no file to include: usm carries it.
std::string with_usm_helpers(std::string_view source) {
    std::string out;
    std::size_t line = 1, at = 0;
    while (at < source.size()) {
        std::size_t end = source.find('\n', at);
        if (end == std::string_view::npos) end = source.size();
        const std::string_view text = source.substr(at, end - at);
        const std::size_t hash = text.find_first_not_of(" \t");
        std::string_view directive = hash == std::string_view::npos ? std::string_view{} : text.substr(hash);
        const bool includes =
            directive.starts_with("#include") && (directive.find("\"usm.cl\"") != std::string_view::npos ||
                                                  directive.find("<usm.cl>") != std::string_view::npos);
        if (includes) {
            out += concat("#line 1 \"usm.cl\"\n", usm::kernels::usm_cl, "\n#line ", line + 1, " \"kernel.cl\"\n");
        } else {
            out += text;
            out += '\n';
        }
        at = end + 1;
        ++line;
    }
    return out;
}

}  // namespace

/* --- kernels ------------------------------------------------------------ */

/// A kernel for `dev` from `build` (the backend's compiler), called without
/// the context lock. Compilers may install signal handlers of their own:
/// usm's goes back on top after.
template <class Build>
kernel build_kernel(device_slot& dev, Build&& build) {
    auto state = std::make_shared<kernel_state>();
    state->backend = dev.backend;
    state->slot = &dev;
    context_mutex::assert_none_held();
    state->compiled = build(*dev.backend);
    ensure_fault_handler_on_top();
    return kernel(std::move(state));
}

kernel context_impl::load_kernel(device_slot& dev, const spirv& code, std::string_view entry) {
    check_process("load_kernel");
    return build_kernel(dev, [&](device_backend& b) { return b.build_spirv(code.words, entry); });
}

kernel context_impl::load_kernel(device_slot& dev, const opencl_c& code, std::string_view entry) {
    check_process("load_kernel");
    const std::string source = with_usm_helpers(code.source);
    return build_kernel(dev, [&](device_backend& b) { return b.build_opencl_c(source, code.options, entry); });
}

}  // namespace usm::detail

/* --- public handles ----------------------------------------------------- */

namespace usm {

const char* to_string(backend b) noexcept { return b == backend::vulkan ? "vulkan" : "opencl"; }

const device_properties& device::properties() const noexcept { return m_slot->backend->properties(); }
std::size_t device::index() const noexcept { return m_slot->index; }
std::uint64_t device::budget() const noexcept { return std::uint64_t{m_slot->budget_pages} << detail::page_shift; }
std::uint64_t device::resident_bytes() const { return m_slot->owner->resident_bytes(*m_slot); }
usm::stats device::stats() const { return m_slot->owner->device_stats(*m_slot); }

kernel device::load_kernel(const spirv& code, std::string_view entry) {
    return m_slot->owner->load_kernel(*m_slot, code, entry);
}
kernel device::load_kernel(const opencl_c& code, std::string_view entry) {
    return m_slot->owner->load_kernel(*m_slot, code, entry);
}
event device::launch_args(const kernel& k, grid g, group l, std::span<const detail::launch_arg> args) {
    return m_slot->owner->launch(*m_slot, k, g, l, args);
}

const std::string& kernel::name() const { return m_state->compiled->entry(); }

void event::wait() const {
    detail::context_mutex::assert_none_held();
    if (m_state) m_state->backend->wait(m_state->point);
}
bool event::ready() const { return !m_state || m_state->backend->reached(m_state->point); }

}  // namespace usm
