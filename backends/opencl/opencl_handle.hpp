// backends/opencl/opencl_handle.hpp - owning wrappers for OpenCL objects.
//
// OpenCL objects are reference counted by the driver. A unique_handle owns one
// reference and drops it when destroyed; retain() takes another reference
// explicitly, so every clRetain* in the backend is visible at its call site.
// (The C API is used directly rather than <CL/opencl.hpp>: with exceptions
// off, the bindings report errors through out-parameters that are easy to
// forget, and every check here must name its cl call.)
#pragma once

#include <CL/cl.h>

#include <utility>
#include <vector>

namespace usm::detail::opencl {

template <class Handle, cl_int (*Retain)(Handle), cl_int (*Release)(Handle)>
class unique_handle {
public:
    unique_handle() noexcept = default;
    /// Takes ownership of one reference to `handle` (may be null).
    explicit unique_handle(Handle handle) noexcept : m_handle(handle) {}
    ~unique_handle() { reset(); }

    unique_handle(unique_handle&& other) noexcept : m_handle(std::exchange(other.m_handle, nullptr)) {}
    unique_handle& operator=(unique_handle&& other) noexcept {
        if (this != &other) reset(std::exchange(other.m_handle, nullptr));
        return *this;
    }
    unique_handle(const unique_handle&) = delete;
    unique_handle& operator=(const unique_handle&) = delete;

    /// A new owning handle to the same object (clRetain*). `handle` may be null.
    static unique_handle retain(Handle handle) noexcept {
        if (handle != nullptr) Retain(handle);
        return unique_handle(handle);
    }

    Handle get() const noexcept { return m_handle; }
    explicit operator bool() const noexcept { return m_handle != nullptr; }

    /// Drops the owned reference (if any) and owns `handle` instead.
    void reset(Handle handle = nullptr) noexcept {
        if (m_handle != nullptr) Release(m_handle);
        m_handle = handle;
    }

    /// For cl calls that return a new object through a pointer (cl_event*):
    /// drops the current reference and lets the call fill in the new one.
    Handle* out() noexcept {
        reset();
        return &m_handle;
    }

private:
    Handle m_handle = nullptr;
};

using context_handle = unique_handle<cl_context, clRetainContext, clReleaseContext>;
using queue_handle = unique_handle<cl_command_queue, clRetainCommandQueue, clReleaseCommandQueue>;
using program_handle = unique_handle<cl_program, clRetainProgram, clReleaseProgram>;
using kernel_handle = unique_handle<cl_kernel, clRetainKernel, clReleaseKernel>;
using event_handle = unique_handle<cl_event, clRetainEvent, clReleaseEvent>;
using mem_handle = unique_handle<cl_mem, clRetainMemObject, clReleaseMemObject>;

/// The raw events of `events` for a cl call's wait list; they stay owned by
/// `events`, which must outlive the call.
inline std::vector<cl_event> raw_events(const std::vector<event_handle>& events) {
    std::vector<cl_event> raw;
    raw.reserve(events.size());
    for (const event_handle& e : events) raw.push_back(e.get());
    return raw;
}

}  // namespace usm::detail::opencl
