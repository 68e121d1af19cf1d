// core/options.cpp - context options and the USM_* variables that override them.
#include <cctype>
#include <cstdlib>
#include <string>

#include "core/context_impl.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

std::size_t parse_size(const char* variable, const std::string& text) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used, 0);
    } catch (const std::exception&) {
        throw_error(errc::invalid_argument, variable, "=", text, " is not a size (examples: 64G, 512M, 4096)");
    }
    std::string suffix = text.substr(used);
    for (char& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    int shift = 0;
    if (suffix.empty() || suffix == "b")
        shift = 0;
    else if (suffix == "k" || suffix == "kb" || suffix == "kib")
        shift = 10;
    else if (suffix == "m" || suffix == "mb" || suffix == "mib")
        shift = 20;
    else if (suffix == "g" || suffix == "gb" || suffix == "gib")
        shift = 30;
    else if (suffix == "t" || suffix == "tb" || suffix == "tib")
        shift = 40;
    else
        throw_error(errc::invalid_argument, variable, "=", text, ": unknown unit '", suffix, "' (use K, M, G or T)");
    if (shift != 0 && value > (~0ull >> shift))
        throw_error(errc::invalid_argument, variable, "=", text, " is too large");
    return static_cast<std::size_t>(value << shift);
}

namespace {

const char* env(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
}

/// USM_CPU_COPY_MAX=<to device>[,<to host>]: "auto"'s limits; 0 alone turns
/// CPU copies off both ways (the copy path "queue").
void apply_cpu_copy_max(context_options& o, const std::string& text) {
    const std::size_t comma = text.find(',');
    o.cpu_copy_max_to_device = parse_size("USM_CPU_COPY_MAX", text.substr(0, comma));
    if (comma != std::string::npos)
        o.cpu_copy_max_to_host = parse_size("USM_CPU_COPY_MAX", text.substr(comma + 1));
    else if (o.cpu_copy_max_to_device == 0)
        o.copy_path = "queue";
}

/// Names of the backends a context may open: the built-in ones, "all", and
/// the ones tests installed.
bool known_backend(const std::string& name) {
    if (name == "all") return true;
    for (const backend_entry& e : available_backends())
        if (name == e.name) return true;
    return false;
}

}  // namespace

context_options resolve_options(const context_options& given) {
    context_options o = given;
    if (const char* v = env("USM_BACKEND")) o.backend = v;
    if (const char* v = env("USM_DEVICE")) o.device = v;
    if (const char* v = env("USM_VA_SIZE")) o.va_size = parse_size("USM_VA_SIZE", v);
    if (const char* v = env("USM_BLOCK")) o.block_size = parse_size("USM_BLOCK", v);
    if (const char* v = env("USM_DEVICE_BUDGET")) o.device_budget = parse_size("USM_DEVICE_BUDGET", v);
    if (const char* v = env("USM_SEGMENT")) o.segment_size = parse_size("USM_SEGMENT", v);
    if (const char* v = env("USM_TRACE")) o.trace = v;
    if (const char* v = env("USM_CHECK")) {
        const std::string c = v;
        if (c == "1" || c == "on" || c == "true")
            o.check = true;
        else if (c == "0" || c == "off" || c == "false")
            o.check = false;
        else
            throw_error(errc::invalid_argument, "USM_CHECK=", c, " is not one of 1, 0 (on, off)");
    }
    if (const char* v = env("USM_READ_AHEAD")) o.read_ahead = v;
    if (const char* v = env("USM_EVICT")) o.eviction = v;
    if (const char* v = env("USM_THRASH")) o.thrashing = v;
    if (const char* v = env("USM_COPY_PATH")) o.copy_path = v;
    if (const char* v = env("USM_CPU_COPY_MAX")) apply_cpu_copy_max(o, v);
    // A variable naming a built-in policy replaces a program's own.
    if (env("USM_READ_AHEAD") != nullptr) o.policies.read_ahead = nullptr;
    if (env("USM_EVICT") != nullptr) o.policies.eviction = nullptr;
    if (env("USM_THRASH") != nullptr) o.policies.thrashing = nullptr;
    if (env("USM_COPY_PATH") != nullptr || env("USM_CPU_COPY_MAX") != nullptr) o.policies.copy_path = nullptr;
    if (const char* v = env("USM_FAULT")) {
        const std::string f = v;
        if (f == "signal")
            o.fault = fault_path::signal;
        else if (f == "uffd" || f == "userfaultfd")
            o.fault = fault_path::userfaultfd;
        else if (f == "auto")
            o.fault = fault_path::automatic;
        else
            throw_error(errc::invalid_argument, "USM_FAULT=", f, " is not one of signal, uffd, auto");
    }

    // Policy names are checked here, naming the variable or option.
    make_read_ahead_policy(o.read_ahead);
    make_eviction_policy(o.eviction);
    make_thrashing_policy(o.thrashing);
    make_copy_path_policy(o.copy_path, o.cpu_copy_max_to_device, o.cpu_copy_max_to_host);
    if (!known_backend(o.backend))
        throw_error(errc::invalid_argument, "context: backend '", o.backend,
                    "' is not one of vulkan, opencl, all (USM_BACKEND or context_options::backend)");
    if (o.block_size < page_size || o.block_size > (std::size_t{2} << 20) || (o.block_size & (o.block_size - 1)) != 0)
        throw_error(errc::invalid_argument, "context: block size ", o.block_size,
                    " must be a power of two from 4 KiB to 2 MiB (USM_BLOCK or context_options::block_size)");
    if (o.device_budget != 0 && o.device_budget < o.block_size)
        throw_error(errc::invalid_argument, "context: device budget ", format_bytes(o.device_budget),
                    " is less than one ", format_bytes(o.block_size),
                    " block (USM_DEVICE_BUDGET or context_options::device_budget)");
    if (o.segment_size % o.block_size != 0)
        throw_error(errc::invalid_argument, "context: segment size ", format_bytes(o.segment_size),
                    " is not a multiple of the ", format_bytes(o.block_size),
                    " block (USM_SEGMENT or context_options::segment_size)");
    return o;
}

std::size_t device_selections(const std::string& filter, const char* backend_name, std::size_t index,
                              const std::string& name) {
    if (filter.empty()) return 1;
    std::size_t count = 0;
    auto lower = [](std::string s) {
        for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    const std::string lname = lower(name);
    std::size_t start = 0;
    while (start <= filter.size()) {
        std::size_t comma = filter.find(',', start);
        if (comma == std::string::npos) comma = filter.size();
        std::string item = lower(filter.substr(start, comma - start));
        start = comma + 1;
        if (item.empty()) continue;
        // "backend:N" or "backend:name" restricts the item to one backend.
        if (auto colon = item.find(':'); colon != std::string::npos) {
            if (item.substr(0, colon) != backend_name) continue;
            item = item.substr(colon + 1);
        }
        const bool numeric = item.find_first_not_of("0123456789") == std::string::npos;
        if (numeric ? std::stoull(item) == index : lname.find(item) != std::string::npos) ++count;
    }
    return count;
}

}  // namespace usm::detail
