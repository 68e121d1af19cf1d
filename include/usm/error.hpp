// usm/error.hpp - the one exception type usm throws, and its error codes.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace usm {

/// What went wrong. Every usm::error carries one of these as its code; the
/// message names the operation, pointer, size and device involved.
enum class errc {
    out_of_memory = 1,        ///< host backing or device memory could not be allocated
    address_space_exhausted,  ///< the context's reserved range has no room for the request
    not_a_usm_pointer,        ///< the pointer is not inside a live allocation of this context
    double_free,              ///< the allocation was already freed
    invalid_argument,         ///< an argument is malformed (zero group size, bad option, ...)
    out_of_range,             ///< a declared range runs past the end of its allocation
    device_lost,              ///< the driver reported the device lost or a submission failed
    transfer_failed,          ///< a migration between locations failed; the old copy is kept
    kernel_build_failed,      ///< a kernel did not compile or link; the message holds the log
    unsupported,              ///< the device or driver lacks something usm needs
    wrong_process,            ///< the context belongs to another process (after fork)
    no_device,                ///< no usable device was found for the requested backend
    device_fault,             ///< a kernel accessed memory its device may not (address, access, device, kernel named)
};

/// The error category of usm::errc ("usm").
const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// The exception usm throws. A std::system_error whose code() is in
/// usm::error_category(). Throwing never leaves an allocation's data changed:
/// see DESIGN.md, invariant 4.
class error : public std::system_error {
public:
    error(errc code, const std::string& what, long long driver_result = 0)
        : std::system_error(make_error_code(code), what), m_driver_result(driver_result) {}

    /// The usm error code (code() narrowed back to errc).
    errc kind() const noexcept { return static_cast<errc>(code().value()); }

    /// The raw driver status behind the error (a VkResult or cl_int), or 0
    /// when the error did not come from a driver call.
    long long driver_result() const noexcept { return m_driver_result; }

private:
    long long m_driver_result;
};

}  // namespace usm

template <>
struct std::is_error_code_enum<usm::errc> : std::true_type {};
