// usm/kernel.hpp - kernel sources and loaded kernels.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace usm {

/// SPIR-V words for a Vulkan compute kernel. Only viewed: load_kernel copies
/// what it needs before returning.
struct spirv {
    std::span<const std::uint32_t> words;
    explicit spirv(std::span<const std::uint32_t> w) noexcept : words(w) {}
};

/// OpenCL C source for an OpenCL kernel, with optional build options
/// (passed to clBuildProgram). Only viewed during load_kernel.
struct opencl_c {
    std::string_view source;
    std::string_view options;
    explicit opencl_c(std::string_view src, std::string_view opts = {}) noexcept : source(src), options(opts) {}
};

namespace detail {
struct kernel_state;
}

/// A kernel loaded on one device. Copyable handle; the compiled program lives
/// while any copy or in-flight launch uses it.
class kernel {
public:
    kernel() = default;
    explicit kernel(std::shared_ptr<detail::kernel_state> s) noexcept : m_state(std::move(s)) {}

    /// The entry point's name.
    const std::string& name() const;
    explicit operator bool() const noexcept { return m_state != nullptr; }

    const std::shared_ptr<detail::kernel_state>& state() const noexcept { return m_state; }

private:
    std::shared_ptr<detail::kernel_state> m_state;
};

}  // namespace usm
