// tools/report.hpp - rendering a usm trace (USM_TRACE, docs/tracing.md) as
// an SVG: a timeline with one row per track (host threads, device queues)
// and one bar per event, coloured by what it was; and, when the trace has
// residency events (category "residency": alloc, free, residency), a
// residency map below it: one band per allocation, one row per page (or
// bucket of pages), coloured by where the page was valid over time.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

namespace usm_report {

/// What render() drew, for its caller and tests.
struct summary {
    std::size_t tracks = 0;            ///< timeline rows
    std::size_t bars = 0;              ///< events drawn as timeline bars (all complete events but the residency ones)
    double span_us = 0;                ///< first event's start to last event's end
    std::size_t residency_events = 0;  ///< events of category "residency", read into the map instead of bars
    std::size_t allocations = 0;       ///< residency map bands, one per allocation
    std::size_t residency_rows = 0;    ///< rows of all bands: one per page, or per bucket of pages
    std::size_t bucketed = 0;          ///< bands with several pages per row
    std::size_t residency_rects = 0;   ///< rects of the bands: intervals of one state in one row
    std::size_t residency_legend = 0;  ///< entries (each a rect) of the map's legend: the states drawn
};

/// Writes `trace` (a parsed trace-event document) as a standalone SVG
/// titled `title`. A trace without residency events gets no residency map,
/// and the SVG is only the timeline. Throws std::runtime_error when it is
/// not a usm trace (no traceEvents array), and nlohmann::json's exceptions
/// when an event's fields have the wrong types; nothing is written then
/// (the SVG is written only once the whole trace has been read).
summary render(const nlohmann::json& trace, const std::string& title, std::ostream& svg);

}  // namespace usm_report
