// tools/report.hpp - rendering a usm trace (USM_TRACE, docs/tracing.md) as
// an SVG timeline: one row per track (host threads, device queues), one bar
// per event, coloured by what it was.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

namespace usm_report {

/// What render() drew, for its caller and tests.
struct summary {
    std::size_t tracks = 0;  ///< rows
    std::size_t bars = 0;    ///< events drawn
    double span_us = 0;      ///< first event's start to last event's end
};

/// Writes `trace` (a parsed trace-event document) as a standalone SVG
/// titled `title`. Throws std::runtime_error when it is not a usm trace
/// (no traceEvents array).
summary render(const nlohmann::json& trace, const std::string& title, std::ostream& svg);

}  // namespace usm_report
