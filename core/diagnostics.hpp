// core/diagnostics.hpp - building error messages and log lines.
//
// Messages are assembled with operator<< so any streamable value (pointers,
// sizes, names) can be named: throw_error(errc::out_of_range, "launch: argument ",
// i, " [", p, ", +", n, ") runs past its allocation").
#pragma once

#include <sstream>
#include <string>

#include "usm/error.hpp"

namespace usm::detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

/// Throws usm::error(code, message built from parts).
template <class... Parts>
[[noreturn]] void throw_error(errc code, const Parts&... parts) {
    throw error(code, concat(parts...));
}

/// Throws usm::error carrying a raw driver status (VkResult, cl_int).
template <class... Parts>
[[noreturn]] void throw_driver_error(errc code, long long driver_result, const Parts&... parts) {
    throw error(code, concat(parts...), driver_result);
}

enum class log_level { off = 0, error = 1, warn = 2, info = 3, debug = 4 };

/// The level set by USM_LOG (off, error, warn, info, debug; default warn).
log_level current_log_level() noexcept;

/// Writes "usm: <message>" to stderr when `level` is enabled. Thread-safe.
void write_log(log_level level, const std::string& message) noexcept;

template <class... Parts>
void log(log_level level, const Parts&... parts) {
    if (level <= current_log_level()) write_log(level, concat(parts...));
}

/// Bytes as "4 KiB", "1.5 MiB", ... for messages.
std::string format_bytes(unsigned long long bytes);

/// "64G", "512M", "4096", "2MiB" -> bytes, for USM_* size variables. Throws
/// invalid_argument naming `variable`.
std::size_t parse_size(const char* variable, const std::string& text);

}  // namespace usm::detail
