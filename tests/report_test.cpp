// tests/report_test.cpp - usm-report's residency map, on synthetic traces
// (no device needed): a band per allocation, a row per page or bucket of
// pages, one rect per interval of one state, coloured by where the page is
// valid; free ends a band; a trace without residency events draws none.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "report.hpp"

namespace {

using nlohmann::json;
constexpr std::uint64_t thread = 4242;
constexpr std::uint64_t queue_tracks = std::uint64_t{1} << 32;

// The colours docs/tracing.md gives.
constexpr const char* host = "#4e79a7";
constexpr const char* device0 = "#f28e2b";
constexpr const char* host_device0 = "#f8c695";
constexpr const char* device1 = "#59a14f";
constexpr const char* host_device1 = "#acd0a7";
constexpr const char* several = "#b07aa1";
constexpr const char* mixed = "#79706e";

// The SVG's geometry: the plot runs from x 260 to 1380.
constexpr double plot_left = 260, plot_width = 1120;

json complete(const std::string& name, const std::string& category, double ts, double dur, json args = json::object(),
              std::uint64_t tid = thread) {
    return {{"ph", "X"},  {"name", name}, {"cat", category}, {"pid", 1},
            {"tid", tid}, {"ts", ts},     {"dur", dur},      {"args", std::move(args)}};
}
json alloc(double ts, std::uint64_t id, std::uint64_t pages) {
    return complete("alloc", "residency", ts, 0, {{"allocation", id}, {"pages", pages}, {"bytes", pages * 4096}});
}
json free_(double ts, std::uint64_t id) { return complete("free", "residency", ts, 0, {{"allocation", id}}); }
json residency(double ts, std::uint64_t id, std::uint64_t first, std::uint64_t pages, std::uint64_t valid) {
    return complete("residency", "residency", ts, 0,
                    {{"allocation", id}, {"first", first}, {"pages", pages}, {"valid", valid}});
}
json thread_name(std::uint64_t tid, const std::string& name) {
    return {{"ph", "M"}, {"name", "thread_name"}, {"pid", 1}, {"tid", tid}, {"args", {{"name", name}}}};
}
json trace(std::vector<json> events) { return {{"traceEvents", std::move(events)}}; }

/// Events that span [0, 1000] us on the timeline: a kernel on device 0's
/// queue (named "gpu zero") and a launch on the host thread.
std::vector<json> timeline() {
    return {thread_name(queue_tracks, "gpu zero"), complete("launch k", "launch", 0, 1000),
            complete("kernel k", "kernel", 10, 500, json::object(), queue_tracks)};
}

struct drawing {
    usm_report::summary drawn;
    std::string svg;
};
drawing draw(const json& doc) {
    std::ostringstream out;
    usm_report::summary drawn = usm_report::render(doc, "report_test", out);
    return {drawn, out.str()};
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

/// A residency map rect, read back from the SVG.
struct map_rect {
    double x, width, y;
    std::string fill, title;
};
std::vector<map_rect> map_rects(const std::string& svg) {
    static const std::regex rect(
        R"re(<rect x="([^"]*)" y="([^"]*)" width="([^"]*)" height="[^"]*" fill="([^"]*)"><title>(allocation [^<]*)</title>)re");
    std::vector<map_rect> out;
    for (std::sregex_iterator it(svg.begin(), svg.end(), rect), end; it != end; ++it)
        out.push_back({std::stod((*it)[1]), std::stod((*it)[3]), std::stod((*it)[2]), (*it)[4], (*it)[5]});
    return out;
}
double x_of(double us, double span = 1000) { return plot_left + us / span * plot_width; }

TEST(report, trace_without_residency_events_draws_no_band) {
    const drawing d = draw(trace(timeline()));
    EXPECT_EQ(d.drawn.bars, 2u);
    EXPECT_EQ(d.drawn.tracks, 2u);
    EXPECT_EQ(d.drawn.residency_events, 0u);
    EXPECT_EQ(d.drawn.allocations, 0u);
    EXPECT_EQ(d.drawn.residency_rows, 0u);
    EXPECT_EQ(d.drawn.residency_rects, 0u);
    EXPECT_EQ(d.drawn.residency_legend, 0u);
    EXPECT_EQ(d.svg.find("page residency"), std::string::npos);
    EXPECT_EQ(d.svg.find("allocation"), std::string::npos);
    EXPECT_EQ(count(d.svg, "<rect"), 2u + 1 + 6);                   // the bars, the background, the timeline's legend
    EXPECT_NE(d.svg.find("height=\"172.00\""), std::string::npos);  // 50 + 2 rows of 26 + 70, as before
    EXPECT_EQ(count(d.svg, " ms</text>"), 11u);                     // one time axis
}

TEST(report, page_moved_host_device_shared_is_three_rects_in_three_colours) {
    std::vector<json> events = timeline();
    events.push_back(alloc(100, 7, 1));
    events.push_back(residency(300, 7, 0, 1, 2));  // on device 0 only
    events.push_back(residency(500, 7, 0, 1, 3));  // shared: a read-only copy back on the host
    events.push_back(free_(800, 7));
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.bars, 2u) << "residency events are not timeline bars";
    EXPECT_EQ(d.drawn.tracks, 2u);
    EXPECT_EQ(d.drawn.residency_events, 4u);
    EXPECT_EQ(d.drawn.allocations, 1u);
    EXPECT_EQ(d.drawn.residency_rows, 1u);
    EXPECT_EQ(d.drawn.bucketed, 0u);
    EXPECT_EQ(d.drawn.residency_rects, 3u);
    EXPECT_NE(d.svg.find("allocation 7: 1 page</text>"), std::string::npos);
    EXPECT_NE(d.svg.find("page residency"), std::string::npos);

    const std::vector<map_rect> rects = map_rects(d.svg);
    ASSERT_EQ(rects.size(), 3u);
    EXPECT_EQ(rects[0].fill, host);
    EXPECT_EQ(rects[1].fill, device0);
    EXPECT_EQ(rects[2].fill, host_device0);
    EXPECT_NE(rects[0].title.find("page 0: host ("), std::string::npos) << rects[0].title;
    EXPECT_NE(rects[1].title.find(": gpu zero ("), std::string::npos) << rects[1].title;
    EXPECT_NE(rects[2].title.find(": host + gpu zero ("), std::string::npos) << rects[2].title;
    // On the timeline's time axis: alloc at 100, moves at 300 and 500, free at 800.
    EXPECT_NEAR(rects[0].x, x_of(100), 0.01);
    EXPECT_NEAR(rects[1].x, x_of(300), 0.01);
    EXPECT_NEAR(rects[2].x, x_of(500), 0.01);
    EXPECT_NEAR(rects[0].x + rects[0].width, x_of(300), 0.01);
    EXPECT_NEAR(rects[2].x + rects[2].width, x_of(800), 0.01);
    // Each colour once in the map and once in the legend, with the device's name.
    for (const char* colour : {host, device0, host_device0})
        EXPECT_EQ(count(d.svg, std::string("fill=\"") + colour + "\""), 2u) << colour;
    EXPECT_NE(d.svg.find(">host + gpu zero</text>"), std::string::npos);
    EXPECT_EQ(count(d.svg, " ms</text>"), 22u);  // the timeline's axis and the map's
    EXPECT_EQ(d.drawn.residency_legend, 3u);
    EXPECT_EQ(count(d.svg, "<rect"), d.drawn.bars + 1 + 6 + d.drawn.residency_rects + d.drawn.residency_legend);
}

TEST(report, free_ends_the_band_and_live_allocations_run_to_the_end) {
    std::vector<json> events = timeline();
    events.push_back(alloc(0, 1, 2));
    events.push_back(alloc(0, 2, 2));
    events.push_back(free_(250, 1));
    events.push_back(residency(400, 1, 0, 2, 2));  // after its free: dropped
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.allocations, 2u);
    EXPECT_EQ(d.drawn.residency_rows, 4u);
    EXPECT_EQ(d.drawn.residency_rects, 4u);
    const std::vector<map_rect> rects = map_rects(d.svg);
    ASSERT_EQ(rects.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(rects[i].fill, host);
        EXPECT_NEAR(rects[i].x, x_of(0), 0.01);
        EXPECT_NEAR(rects[i].x + rects[i].width, i < 2 ? x_of(250) : x_of(1000), 0.01) << rects[i].title;
    }
    EXPECT_LT(rects[1].y, rects[2].y) << "allocation 1's band above allocation 2's";
    EXPECT_EQ(count(d.svg, "fill=\"" + std::string(device0) + "\""), 0u);
}

TEST(report, equal_states_merge_and_only_touched_pages_change) {
    std::vector<json> events = timeline();
    events.push_back(alloc(0, 3, 4));
    events.push_back(residency(100, 3, 0, 4, 1));  // no change
    events.push_back(residency(200, 3, 1, 2, 2));  // pages 1, 2 to device 0
    events.push_back(residency(300, 3, 1, 2, 2));  // no change
    events.push_back(residency(400, 3, 2, 1, 1));  // page 2 back home
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.residency_rows, 4u);
    // Pages 0 and 3: one rect each; page 1: host, device; page 2: host, device, host.
    EXPECT_EQ(d.drawn.residency_rects, 1u + 2 + 3 + 1);
    const std::vector<map_rect> rects = map_rects(d.svg);
    ASSERT_EQ(rects.size(), 7u);
    EXPECT_NEAR(rects[0].x + rects[0].width, x_of(1000), 0.01);
    EXPECT_EQ(rects[2].fill, device0);
    EXPECT_NEAR(rects[2].x + rects[2].width, x_of(1000), 0.01);
    EXPECT_EQ(rects[4].fill, device0);
    EXPECT_NEAR(rects[4].x + rects[4].width, x_of(400), 0.01);
    EXPECT_EQ(rects[5].fill, host);
}

TEST(report, each_device_and_sharing_has_its_colour) {
    std::vector<json> events = timeline();
    events.push_back(alloc(0, 1, 4));
    events.push_back(residency(100, 1, 0, 1, 4));  // device 1 only: no queue name, so "device 1"
    events.push_back(residency(100, 1, 1, 1, 5));  // host + device 1
    events.push_back(residency(100, 1, 2, 1, 6));  // devices 0 and 1
    events.push_back(residency(100, 1, 3, 1, 7));  // everywhere
    const drawing d = draw(trace(events));
    const std::vector<map_rect> rects = map_rects(d.svg);
    ASSERT_EQ(rects.size(), 8u);
    EXPECT_EQ(rects[1].fill, device1);
    EXPECT_NE(rects[1].title.find("page 0: device 1 ("), std::string::npos) << rects[1].title;
    EXPECT_EQ(rects[3].fill, host_device1);
    EXPECT_EQ(rects[5].fill, several);
    EXPECT_NE(rects[5].title.find("page 2: gpu zero + device 1 ("), std::string::npos) << rects[5].title;
    EXPECT_EQ(rects[7].fill, several);
    EXPECT_NE(rects[7].title.find("page 3: host + gpu zero + device 1 ("), std::string::npos) << rects[7].title;
    // The legend: host, device 1, host + device 1, several devices.
    EXPECT_NE(d.svg.find(">device 1</text>"), std::string::npos);
    EXPECT_NE(d.svg.find(">host + device 1</text>"), std::string::npos);
    EXPECT_NE(d.svg.find(">several devices</text>"), std::string::npos);
    EXPECT_EQ(count(d.svg, "fill=\"" + std::string(device0) + "\""), 0u) << "no page was on device 0 alone";
    EXPECT_EQ(count(d.svg, "fill=\"" + std::string(several) + "\""), 3u);
}

TEST(report, large_allocations_are_bucketed_and_mixed_buckets_say_so) {
    std::vector<json> events = timeline();
    events.push_back(alloc(0, 5, 1000));
    events.push_back(residency(100, 5, 0, 8, 2));    // half of row 0 (pages 0-15): mixed
    events.push_back(residency(100, 5, 16, 16, 2));  // all of row 1: device 0
    events.push_back(residency(600, 5, 8, 8, 2));    // the rest of row 0: device 0 from then on
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.allocations, 1u);
    EXPECT_EQ(d.drawn.bucketed, 1u);
    EXPECT_EQ(d.drawn.residency_rows, 63u);  // 16 pages per row: ceil(1000 / 64) = 16, ceil(1000 / 16) = 63
    EXPECT_NE(d.svg.find("allocation 5: 1000 pages, 16 per row</text>"), std::string::npos);
    EXPECT_EQ(d.drawn.residency_rects, 3u + 2 + 61);
    const std::vector<map_rect> rects = map_rects(d.svg);
    ASSERT_EQ(rects.size(), 66u);
    EXPECT_EQ(rects[0].fill, host);
    EXPECT_EQ(rects[1].fill, mixed);
    EXPECT_NE(rects[1].title.find("pages 0-15: mixed"), std::string::npos) << rects[1].title;
    EXPECT_NEAR(rects[1].x, x_of(100), 0.01);
    EXPECT_NEAR(rects[1].x + rects[1].width, x_of(600), 0.01);
    EXPECT_EQ(rects[2].fill, device0);
    EXPECT_EQ(rects[4].fill, device0);
    EXPECT_NE(rects[4].title.find("pages 16-31: gpu zero"), std::string::npos) << rects[4].title;
    EXPECT_NE(rects.back().title.find("pages 992-999: host"), std::string::npos) << rects.back().title;
    EXPECT_NE(d.svg.find(">mixed (pages of a row differ)</text>"), std::string::npos);
    EXPECT_EQ(d.drawn.residency_legend, 3u);  // host, device 0, mixed
}

TEST(report, all_bands_together_stay_under_the_row_limit) {
    std::vector<json> events = timeline();
    for (std::uint64_t id = 1; id <= 10; ++id) events.push_back(alloc(0, id, 64));
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.allocations, 10u);
    EXPECT_LE(d.drawn.residency_rows, 400u);
    EXPECT_EQ(d.drawn.residency_rows, 320u);  // 2 pages per row
    EXPECT_EQ(d.drawn.bucketed, 10u);
    EXPECT_EQ(d.drawn.residency_rects, 320u);
    EXPECT_NE(d.svg.find("allocation 10: 64 pages, 2 per row</text>"), std::string::npos);

    // Few pages stay unbucketed: 10 bands of 30 pages fit.
    std::vector<json> small = timeline();
    for (std::uint64_t id = 1; id <= 10; ++id) small.push_back(alloc(0, id, 30));
    EXPECT_EQ(draw(trace(small)).drawn.bucketed, 0u);
}

TEST(report, intervals_narrower_than_a_fifth_of_a_pixel_merge) {
    // 1 s on the axis: 0.2 px is about 180 us. A page bounces between host
    // and device every 10 us from 500 ms to 502 ms, then stays on the device.
    std::vector<json> events{complete("launch k", "launch", 0, 1e6)};
    events.push_back(alloc(0, 1, 1));
    for (int i = 0; i < 200; ++i) events.push_back(residency(500e3 + 10 * i, 1, 0, 1, i % 2 ? 1 : 2));
    events.push_back(residency(502e3, 1, 0, 1, 2));
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.residency_events, 202u);
    const std::vector<map_rect> rects = map_rects(d.svg);
    EXPECT_EQ(rects.size(), d.drawn.residency_rects);
    ASSERT_GE(rects.size(), 2u);
    EXPECT_LE(rects.size(), 14u) << "2 ms is about 2.2 px: at most about 11 cells of 0.2 px, plus the ends";
    for (std::size_t i = 0; i < rects.size(); ++i) {
        EXPECT_GE(rects[i].width, 0.19) << rects[i].title;
        if (i > 0) {
            EXPECT_NEAR(rects[i].x, rects[i - 1].x + rects[i - 1].width, 0.011) << "rects tile the row";
            EXPECT_NE(rects[i].fill, rects[i - 1].fill) << "neighbours of one state are one rect";
        }
    }
    EXPECT_EQ(rects.front().fill, host);
    EXPECT_NEAR(rects.front().x, x_of(0, 1e6), 0.01);
    EXPECT_EQ(rects.back().fill, device0);
    EXPECT_NEAR(rects.back().x + rects.back().width, x_of(1e6, 1e6), 0.01);
}

TEST(report, residency_without_an_alloc_starts_a_band_there) {
    std::vector<json> events = timeline();
    events.push_back(residency(200, 9, 2, 2, 2));  // pages 2-3 of an allocation the trace never saw made
    const drawing d = draw(trace(events));
    EXPECT_EQ(d.drawn.allocations, 1u);
    EXPECT_EQ(d.drawn.residency_rows, 4u);
    EXPECT_EQ(d.drawn.residency_rects, 2u) << "pages 0-1 are nowhere known: not drawn";
    const std::vector<map_rect> rects = map_rects(d.svg);
    ASSERT_EQ(rects.size(), 2u);
    EXPECT_NE(rects[0].title.find("page 2: gpu zero"), std::string::npos) << rects[0].title;
    EXPECT_NEAR(rects[0].x, x_of(200), 0.01);
}

TEST(report, the_map_leaves_the_timeline_as_it_was) {
    const drawing before = draw(trace(timeline()));
    std::vector<json> events = timeline();
    events.push_back(alloc(100, 1, 3));
    events.push_back(free_(900, 1));
    const drawing after = draw(trace(events));
    EXPECT_EQ(after.drawn.bars, before.drawn.bars);
    EXPECT_EQ(after.drawn.tracks, before.drawn.tracks);
    EXPECT_EQ(after.drawn.span_us, before.drawn.span_us);
    // Everything but the height and the closing tag comes before the map, unchanged.
    const std::string head = before.svg.substr(before.svg.find('\n'));
    const std::string body = head.substr(0, head.rfind("</svg>"));
    EXPECT_NE(after.svg.find(body), std::string::npos);
    // A thread with only residency events gets no timeline row.
    events.push_back(complete("alloc", "residency", 950, 0, {{"allocation", 2}, {"pages", 1}}, 77));
    EXPECT_EQ(draw(trace(events)).drawn.tracks, before.drawn.tracks);
}

}  // namespace
