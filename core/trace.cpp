// core/trace.cpp - writing Chrome trace-event JSON.
#include "core/trace.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "core/diagnostics.hpp"

namespace usm::detail {

namespace {

/// `text` as a JSON string literal.
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

}  // namespace

tracer::tracer(std::string path) : m_path(std::move(path)) {}

std::uint64_t tracer::this_thread() noexcept { return static_cast<std::uint64_t>(::syscall(SYS_gettid)); }

void tracer::name_track(std::uint64_t track, std::string name) {
    if (!on()) return;
    std::lock_guard lock(m_lock);
    for (auto& [t, n] : m_names)
        if (t == track) return;
    m_names.emplace_back(track, std::move(name));
}

void tracer::complete(std::string_view name, std::string_view category, std::uint64_t track, double begin, double end,
                      std::string args) {
    if (!on()) return;
    std::lock_guard lock(m_lock);
    m_events.push_back({std::string(name), std::string(category), track, begin, std::max(begin, end), std::move(args)});
}

void tracer::residency(std::uint64_t id, std::size_t page, std::uint16_t valid) noexcept {
    if (!on()) return;
    try {
        record_residency(id, page, valid);
    } catch (const std::exception& e) {  // a trace never fails the program
        log(log_level::error, "USM_TRACE: residency event lost: ", e.what());
    }
}

void tracer::record_residency(std::uint64_t id, std::size_t page, std::uint16_t valid) {
    const double at = now();
    const std::uint64_t track = this_thread();
    std::lock_guard lock(m_lock);
    run& r = m_run;
    constexpr double same_operation_us = 20;
    if (r.pages != 0 && r.id == id && r.first + r.pages == page && r.valid == valid && r.track == track &&
        at - r.last < same_operation_us) {
        ++r.pages;
        r.last = at;
        return;
    }
    flush_run();
    m_run = {id, page, 1, valid, track, at, at};
}

void tracer::flush_run() {
    if (m_run.pages == 0) return;
    m_events.push_back({"residency", "residency", m_run.track, m_run.begin, m_run.begin,
                        concat("\"allocation\": ", m_run.id, ", \"first\": ", m_run.first, ", \"pages\": ", m_run.pages,
                               ", \"valid\": ", m_run.valid)});
    m_run.pages = 0;
}

tracer::~tracer() {
    if (!on()) return;
    std::lock_guard lock(m_lock);
    flush_run();
    // Events by start time; on one track an enclosing event before the ones
    // it encloses (Perfetto nests complete events by that order).
    std::stable_sort(m_events.begin(), m_events.end(), [](const event& x, const event& y) {
        return x.begin != y.begin ? x.begin < y.begin : x.end > y.end;
    });
    std::ofstream out(m_path, std::ios::trunc);
    if (!out) {
        log(log_level::error, "USM_TRACE: cannot write ", m_path);
        return;
    }
    const long pid = ::getpid();
    char number[64];
    auto us = [&](double v) {
        std::snprintf(number, sizeof number, "%.3f", v);
        return std::string(number);
    };
    out << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
    out << "{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": " << pid
        << ", \"tid\": 0, \"args\": {\"name\": " << quoted("usm") << "}}";
    for (const auto& [track, name] : m_names)
        out << ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": " << pid << ", \"tid\": " << track
            << ", \"args\": {\"name\": " << quoted(name) << "}}";
    for (const event& e : m_events) {
        out << ",\n{\"ph\": \"X\", \"name\": " << quoted(e.name) << ", \"cat\": " << quoted(e.category)
            << ", \"pid\": " << pid << ", \"tid\": " << e.track << ", \"ts\": " << us(e.begin)
            << ", \"dur\": " << us(e.end - e.begin) << ", \"args\": {" << e.args << "}}";
    }
    out << "\n]}\n";
    if (!out) log(log_level::error, "USM_TRACE: writing ", m_path, " failed");
}

}  // namespace usm::detail
