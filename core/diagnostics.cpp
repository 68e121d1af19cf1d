// core/diagnostics.cpp - log level from USM_LOG, the log sink, byte formatting.
#include "core/diagnostics.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace usm::detail {

namespace {

log_level parse_log_level() noexcept {
    const char* value = std::getenv("USM_LOG");
    if (value == nullptr || *value == '\0') return log_level::warn;
    static constexpr struct {
        const char* name;
        log_level level;
    } names[] = {{"off", log_level::off},   {"0", log_level::off},     {"error", log_level::error},
                 {"warn", log_level::warn}, {"info", log_level::info}, {"debug", log_level::debug},
                 {"1", log_level::info}};
    for (const auto& n : names)
        if (std::strcmp(value, n.name) == 0) return n.level;
    std::fprintf(stderr, "usm: USM_LOG=%s is not one of off, error, warn, info, debug; using warn\n", value);
    return log_level::warn;
}

}  // namespace

log_level current_log_level() noexcept {
    static const log_level level = parse_log_level();
    return level;
}

void write_log(log_level level, const std::string& message) noexcept {
    static std::mutex sink;
    static constexpr const char* tags[] = {"", "error: ", "warning: ", "", "debug: "};
    std::lock_guard lock(sink);
    std::fprintf(stderr, "usm: %s%s\n", tags[static_cast<int>(level)], message.c_str());
}

std::string format_bytes(unsigned long long bytes) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 4) {
        value /= 1024.0;
        ++unit;
    }
    char text[32];
    if (unit == 0 || value == static_cast<double>(static_cast<unsigned long long>(value)))
        std::snprintf(text, sizeof text, "%.0f %s", value, units[unit]);
    else
        std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
    return text;
}

}  // namespace usm::detail
