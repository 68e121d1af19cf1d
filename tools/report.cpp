// tools/report.cpp - the SVG of a usm trace: the timeline of its events and,
// when it has residency events, the residency map of its allocations.
#include "report.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>
#include <vector>

namespace usm_report {

namespace {

/* --- timeline ------------------------------------------------------------ */

struct bar {
    std::uint64_t track;
    double begin, end;
    std::string name, category;
};

/// The colour of an event category (faults red, migrations blue, kernels
/// green, launches purple, evictions orange, waits grey).
const char* colour(const std::string& category) {
    static const std::map<std::string, const char*> colours{
        {"fault", "#d62728"},  {"migration", "#1f77b4"}, {"kernel", "#2ca02c"},
        {"launch", "#9467bd"}, {"eviction", "#ff7f0e"},  {"wait", "#7f7f7f"},
    };
    auto it = colours.find(category);
    return it != colours.end() ? it->second : "#bcbd22";
}

std::string escaped(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}

/* --- residency map: the events ------------------------------------------- */

/// Where a page is valid: bit 0 the host, bit i + 1 device i; 0 nowhere
/// (freed, or not yet heard of).
using mask = std::uint64_t;
/// The state of a bucket whose pages are not all valid at the same places.
constexpr mask mixed = ~mask{0};

/// An alloc, free or residency event (category "residency").
struct residency_event {
    double at;
    std::string name;
    std::uint64_t allocation, first, pages;
    mask valid;
};

/// From `at` on, pages [first, first + pages) of a band are valid at `valid`.
struct change {
    double at;
    std::uint64_t first, pages;
    mask valid;
};

/// One allocation's band: from its alloc (or, without one, its first
/// residency event) to its free (or the trace's end).
struct band {
    std::uint64_t allocation = 0;
    std::uint64_t pages = 1;
    double begin = 0, end = 0;
    std::vector<change> changes;  ///< in time order
    std::uint64_t per_row = 1;    ///< pages per row: 1 unless bucketed
    std::uint64_t rows() const { return (pages + per_row - 1) / per_row; }
};

residency_event read_residency(const nlohmann::json& e) {
    static const nlohmann::json none = nlohmann::json::object();
    const nlohmann::json& args = e.contains("args") && e["args"].is_object() ? e["args"] : none;
    return {e.value("ts", 0.0),
            e.value("name", ""),
            args.value("allocation", std::uint64_t{0}),
            args.value("first", std::uint64_t{0}),
            args.value("pages", std::uint64_t{0}),
            args.value("valid", mask{0})};
}

/// The bands of `events`, in the order their allocations appeared. Bands
/// not freed end at `trace_end`. Residency events after an allocation's free
/// are dropped; an alloc of an id that is still allocated ends its old band.
std::vector<band> read_bands(std::vector<residency_event> events, double trace_end) {
    std::stable_sort(events.begin(), events.end(), [](auto& x, auto& y) { return x.at < y.at; });
    std::vector<band> bands;
    std::map<std::uint64_t, std::size_t> live;  // allocation id -> its band, while allocated
    std::set<std::uint64_t> freed;
    for (const residency_event& e : events) {
        if (e.name == "alloc") {
            if (auto it = live.find(e.allocation); it != live.end()) bands[it->second].end = e.at;
            band b;
            b.allocation = e.allocation;
            b.pages = std::max<std::uint64_t>(e.pages, 1);
            b.begin = e.at;
            b.changes.push_back({e.at, 0, b.pages, 1});  // a new allocation is valid on the host only
            freed.erase(e.allocation);
            live[e.allocation] = bands.size();
            bands.push_back(std::move(b));
        } else if (e.name == "free") {
            auto it = live.find(e.allocation);
            if (it == live.end()) continue;
            bands[it->second].end = e.at;
            live.erase(it);
            freed.insert(e.allocation);
        } else if (e.name == "residency") {
            if (e.pages == 0 || e.pages > std::numeric_limits<std::uint64_t>::max() - e.first) continue;
            auto it = live.find(e.allocation);
            if (it == live.end()) {
                if (freed.count(e.allocation)) continue;
                band b;
                b.allocation = e.allocation;
                b.begin = e.at;
                it = live.emplace(e.allocation, bands.size()).first;
                bands.push_back(std::move(b));
            }
            band& b = bands[it->second];
            b.pages = std::max(b.pages, e.first + e.pages);
            b.changes.push_back({e.at, e.first, e.pages, e.valid});
        }
    }
    for (const auto& [allocation, index] : live) bands[index].end = std::max(trace_end, bands[index].begin);
    return bands;
}

/* --- residency map: rows ------------------------------------------------- */

constexpr std::uint64_t max_band_rows = 64;    // rows of one band
constexpr std::uint64_t max_total_rows = 400;  // rows of all bands, unless there are more bands
constexpr double min_rect_px = 0.2;            // narrower intervals are merged into their neighbours

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0); }

/// Sets each band's pages per row: the largest row cap (at most
/// max_band_rows) under which all bands together have at most
/// max_total_rows rows; a band with more pages than the cap puts
/// ceil(pages / cap) pages in each row. Every band keeps at least one row.
void bucket(std::vector<band>& bands) {
    auto total = [&](std::uint64_t cap) {
        std::uint64_t rows = 0;
        for (const band& b : bands) rows += ceil_div(b.pages, ceil_div(b.pages, std::min(b.pages, cap)));
        return rows;
    };
    std::uint64_t cap = max_band_rows;
    while (cap > 1 && total(cap) > max_total_rows) --cap;
    for (band& b : bands) b.per_row = ceil_div(b.pages, std::min(b.pages, cap));
}

/// Page runs of a band: first page -> mask, up to the next key. Key 0 is
/// always there, and adjacent runs differ.
using runs = std::map<std::uint64_t, mask>;

mask mask_at(const runs& r, std::uint64_t page) { return std::prev(r.upper_bound(page))->second; }

/// Sets pages [lo, hi) to `valid`.
void assign(runs& r, std::uint64_t lo, std::uint64_t hi, mask valid) {
    const mask after = mask_at(r, hi);
    const bool joins_before = lo > 0 && mask_at(r, lo - 1) == valid;
    r.erase(r.lower_bound(lo), r.upper_bound(hi));
    if (!joins_before) r[lo] = valid;
    if (after != valid) r[hi] = after;
}

/// The state of pages [lo, hi): their mask, or `mixed` when they differ.
mask bucket_state(const runs& r, std::uint64_t lo, std::uint64_t hi) {
    auto it = std::prev(r.upper_bound(lo));
    auto next = std::next(it);
    return next != r.end() && next->first < hi ? mixed : it->second;
}

/// A row's state from `at` until the next step's `at` (or the band's end).
struct step {
    double at;
    mask valid;
};

void record(std::vector<step>& steps, double at, mask valid) {
    if (!steps.empty() && steps.back().at >= at) steps.pop_back();  // a state that held for no time
    if (valid != (steps.empty() ? 0 : steps.back().valid)) steps.push_back({at, valid});
}

/// Each row's steps: the band's changes replayed on its pages, each row
/// taking its bucket's state after every change that touches it.
std::vector<std::vector<step>> row_steps(const band& b) {
    std::vector<std::vector<step>> rows(b.rows());
    runs pages{{0, 0}};
    for (const change& c : b.changes) {
        const std::uint64_t lo = c.first, hi = std::min(c.first + c.pages, b.pages);
        if (lo >= hi) continue;
        assign(pages, lo, hi, c.valid);
        for (std::uint64_t r = lo / b.per_row; r <= (hi - 1) / b.per_row; ++r)
            record(rows[r], c.at, bucket_state(pages, r * b.per_row, std::min((r + 1) * b.per_row, b.pages)));
    }
    return rows;
}

/// An interval of one state in one row, in pixels.
struct cell {
    double x0, x1;
    mask valid;
};

/// `in` (consecutive, in order) with the intervals narrower than
/// min_rect_px merged: intervals are gathered until they span min_rect_px,
/// and the gathered cell takes the state that held longest in it; a last
/// cell too narrow extends the one before it, and neighbours of one state
/// become one cell.
std::vector<cell> merged(const std::vector<cell>& in) {
    std::vector<cell> out;
    for (std::size_t i = 0; i < in.size();) {
        const double x0 = in[i].x0;
        double x1 = x0;
        std::vector<std::pair<mask, double>> held;
        do {
            auto it = std::find_if(held.begin(), held.end(), [&](auto& h) { return h.first == in[i].valid; });
            if (it == held.end()) it = held.insert(held.end(), {in[i].valid, 0.0});
            it->second += in[i].x1 - in[i].x0;
            x1 = in[i].x1;
            ++i;
        } while (x1 - x0 < min_rect_px && i < in.size());
        const mask valid =
            std::max_element(held.begin(), held.end(), [](auto& x, auto& y) { return x.second < y.second; })->first;
        if (!out.empty() && (x1 - x0 < min_rect_px || out.back().valid == valid))
            out.back().x1 = x1;
        else
            out.push_back({x0, x1, valid});
    }
    return out;
}

/* --- residency map: colours ---------------------------------------------- */

/// A state's legend entry, in legend order: the host, then per device i
/// the device alone (2i + 1) and shared with the host (2i + 2), then
/// several devices, then mixed buckets.
constexpr std::uint64_t several_key = std::numeric_limits<std::uint64_t>::max() - 1;
constexpr std::uint64_t mixed_key = std::numeric_limits<std::uint64_t>::max();

std::uint64_t legend_key(mask valid) {
    if (valid == mixed) return mixed_key;
    const mask devices = valid >> 1;
    if (devices == 0) return 0;
    if (std::popcount(devices) > 1) return several_key;
    const auto device = static_cast<std::uint64_t>(std::countr_zero(devices));
    return (valid & 1) ? 2 * device + 2 : 2 * device + 1;
}

/// Device colours, alone and shared with the host (the same, halfway to
/// white); devices past the seventh reuse them.
struct device_colours {
    const char* alone;
    const char* with_host;
};
constexpr device_colours device_palette[] = {
    {"#f28e2b", "#f8c695"}, {"#59a14f", "#acd0a7"}, {"#e15759", "#f0abac"}, {"#76b7b2", "#badbd8"},
    {"#edc948", "#f6e4a3"}, {"#ff9da7", "#ffced3"}, {"#9c755f", "#cdbaaf"},
};
constexpr const char* host_colour = "#4e79a7";
constexpr const char* several_colour = "#b07aa1";
constexpr const char* mixed_colour = "#79706e";

const char* key_colour(std::uint64_t key) {
    if (key == 0) return host_colour;
    if (key == several_key) return several_colour;
    if (key == mixed_key) return mixed_colour;
    const device_colours& c = device_palette[(key - 1) / 2 % std::size(device_palette)];
    return key % 2 ? c.alone : c.with_host;
}

/// Device `index`'s name: its compute queue track's name, or "device i".
std::string device_name(const std::map<std::uint64_t, std::string>& names, std::uint64_t index) {
    auto it = names.find((std::uint64_t{1} << 32) + 2 * index);
    return it != names.end() && !it->second.empty() ? it->second : "device " + std::to_string(index);
}

std::string key_label(const std::map<std::uint64_t, std::string>& names, std::uint64_t key) {
    if (key == 0) return "host";
    if (key == several_key) return "several devices";
    if (key == mixed_key) return "mixed (pages of a row differ)";
    return (key % 2 ? "" : "host + ") + device_name(names, (key - 1) / 2);
}

/// Every place `valid` names, for a rect's tooltip.
std::string places(const std::map<std::uint64_t, std::string>& names, mask valid) {
    if (valid == mixed) return "mixed: the pages of this row differ";
    std::string out = valid & 1 ? "host" : "";
    for (mask devices = valid >> 1; devices != 0; devices &= devices - 1)
        out += (out.empty() ? "" : " + ") + device_name(names, static_cast<std::uint64_t>(std::countr_zero(devices)));
    return out;
}

/// A residency map rect, ready to draw.
struct map_rect {
    double x0, x1, y, height;
    std::uint64_t key;
    std::string title;
};

struct map_label {
    double y;
    std::string text;
};

}  // namespace

/* --- render -------------------------------------------------------------- */

summary render(const nlohmann::json& trace, const std::string& title, std::ostream& svg) {
    if (!trace.is_object() || !trace.contains("traceEvents") || !trace["traceEvents"].is_array())
        throw std::runtime_error("not a trace: no traceEvents array");
    std::map<std::uint64_t, std::string> names;
    std::vector<bar> bars;
    std::vector<residency_event> residency;
    for (const nlohmann::json& e : trace["traceEvents"]) {
        const std::string ph = e.value("ph", "");
        if (ph == "M" && e.value("name", "") == "thread_name")
            names[e.value("tid", std::uint64_t{0})] = e["args"].value("name", "");
        if (ph != "X") continue;
        if (e.value("cat", "") == "residency") {
            residency.push_back(read_residency(e));
            continue;
        }
        const double begin = e.value("ts", 0.0);
        bars.push_back({e.value("tid", std::uint64_t{0}), begin, begin + e.value("dur", 0.0), e.value("name", ""),
                        e.value("cat", "")});
    }
    // Rows: device queues first (named), then host threads in order of
    // their first event.
    std::vector<std::uint64_t> rows;
    for (const auto& [track, name] : names) rows.push_back(track);
    for (const bar& b : bars)
        if (std::find(rows.begin(), rows.end(), b.track) == rows.end()) rows.push_back(b.track);
    double first = 0, last = 1;
    if (!bars.empty()) {
        first = std::min_element(bars.begin(), bars.end(), [](auto& x, auto& y) { return x.begin < y.begin; })->begin;
        last = std::max_element(bars.begin(), bars.end(), [](auto& x, auto& y) { return x.end < y.end; })->end;
    }
    for (std::size_t i = 0; i < residency.size(); ++i) {
        const bool only = bars.empty() && i == 0;  // the defaults above are no event's
        first = only ? residency[i].at : std::min(first, residency[i].at);
        last = only ? residency[i].at : std::max(last, residency[i].at);
    }
    const double span = std::max(last - first, 1.0);

    const double label = 260, width = 1400, row = 26, top = 50, plot = width - label - 20;
    auto x_of = [&](double us) { return label + (us - first) / span * plot; };
    const double axis = top + row * static_cast<double>(rows.size()) + 15;

    // The residency map, below the timeline's legend: a band per
    // allocation, its rows one per page (or bucket), rects laid out here
    // and drawn once the SVG's height is known.
    summary drawn;
    drawn.residency_events = residency.size();
    std::vector<band> bands = read_bands(std::move(residency), first + span);
    bucket(bands);
    const double map_top = axis + 75, band_gap = 6;
    double map_bottom = map_top;
    std::vector<map_rect> map_rects;
    std::vector<map_label> map_labels;
    std::set<std::uint64_t> keys;
    for (const band& b : bands) {
        const std::uint64_t band_rows = b.rows();
        const double row_height = std::clamp(192.0 / static_cast<double>(band_rows), 3.0, 12.0);
        std::string text = "allocation " + std::to_string(b.allocation) + ": " + std::to_string(b.pages) +
                           (b.pages == 1 ? " page" : " pages");
        if (b.per_row > 1) text += ", " + std::to_string(b.per_row) + " per row";
        map_labels.push_back({map_bottom, text});
        const std::vector<std::vector<step>> steps = row_steps(b);
        for (std::uint64_t r = 0; r < band_rows; ++r) {
            const std::uint64_t lo = r * b.per_row, hi = std::min(lo + b.per_row, b.pages) - 1;
            const std::string pages =
                lo == hi ? "page " + std::to_string(lo) : "pages " + std::to_string(lo) + "-" + std::to_string(hi);
            std::vector<cell> cells;
            const std::vector<step>& s = steps[r];
            for (std::size_t i = 0; i < s.size(); ++i) {
                const double end = i + 1 < s.size() ? s[i + 1].at : b.end;
                cells.push_back({x_of(s[i].at), x_of(std::max(end, s[i].at)), s[i].valid});
            }
            const double y = map_bottom + row_height * static_cast<double>(r);
            for (const cell& c : merged(cells)) {
                if (c.valid == 0) continue;  // nowhere: not drawn
                const double from = (c.x0 - label) / plot * span, to = (c.x1 - label) / plot * span;
                const std::uint64_t key = legend_key(c.valid);
                keys.insert(key);
                map_rects.push_back(
                    {c.x0, std::max(c.x1, c.x0 + min_rect_px), y, row_height >= 6 ? row_height - 1 : row_height, key,
                     "allocation " + std::to_string(b.allocation) + ", " + pages + ": " + places(names, c.valid) +
                         " (" + number(from / 1000.0) + "-" + number(to / 1000.0) + " ms)"});
            }
        }
        drawn.residency_rows += band_rows;
        drawn.bucketed += b.per_row > 1;
        map_bottom += row_height * static_cast<double>(band_rows) + band_gap;
    }
    // The map's legend, wrapped to the plot's width.
    struct legend_entry {
        double x, y;
        std::uint64_t key;
    };
    std::vector<legend_entry> map_legend;
    double lx = label, ly = map_bottom + 35;
    for (std::uint64_t key : keys) {
        const double entry = 16 + 7 * static_cast<double>(key_label(names, key).size()) + 24;
        if (lx > label && lx + entry > label + plot) lx = label, ly += 18;
        map_legend.push_back({lx, ly, key});
        lx += entry;
    }

    const double height = bands.empty() ? top + row * static_cast<double>(rows.size()) + 70 : ly + 32;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << number(height)
        << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        << "<text x=\"10\" y=\"22\" font-size=\"16\">" << escaped(title) << " - " << number(span / 1000.0) << " ms, "
        << bars.size() << " events</text>\n";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const double y = top + row * static_cast<double>(r);
        auto it = names.find(rows[r]);
        const std::string name = it != names.end() ? it->second : "thread " + std::to_string(rows[r]);
        svg << "<text x=\"10\" y=\"" << number(y + row * 0.65) << "\">" << escaped(name) << "</text>\n"
            << "<line x1=\"" << label << "\" x2=\"" << label + plot << "\" y1=\"" << number(y + row) << "\" y2=\""
            << number(y + row) << "\" stroke=\"#eee\"/>\n";
    }
    for (const bar& b : bars) {
        const auto r = static_cast<double>(std::find(rows.begin(), rows.end(), b.track) - rows.begin());
        const double x = x_of(b.begin), w = std::max(x_of(b.end) - x, 0.5);
        svg << "<rect x=\"" << number(x) << "\" y=\"" << number(top + row * r + 3) << "\" width=\"" << number(w)
            << "\" height=\"" << number(row - 6) << "\" fill=\"" << colour(b.category) << "\"><title>"
            << escaped(b.name) << " (" << number(b.end - b.begin) << " us)</title></rect>\n";
    }
    // Time axis and legend.
    auto time_axis = [&](double y) {
        for (int tick = 0; tick <= 10; ++tick) {
            const double x = label + plot * tick / 10.0;
            svg << "<text x=\"" << number(x) << "\" y=\"" << number(y) << "\" text-anchor=\"middle\">"
                << number(span * tick / 10.0 / 1000.0) << " ms</text>\n";
        }
    };
    time_axis(axis);
    lx = label;
    for (const char* category : {"fault", "migration", "launch", "kernel", "eviction", "wait"}) {
        svg << "<rect x=\"" << number(lx) << "\" y=\"" << number(axis + 20) << "\" width=\"12\" height=\"12\" fill=\""
            << colour(category) << "\"/><text x=\"" << number(lx + 16) << "\" y=\"" << number(axis + 31) << "\">"
            << category << "</text>\n";
        lx += 110;
    }
    if (!bands.empty()) {
        svg << "<text x=\"10\" y=\"" << number(map_top - 12) << "\" font-size=\"14\">page residency</text>\n";
        for (const map_label& l : map_labels)
            svg << "<text x=\"10\" y=\"" << number(l.y + 10) << "\" font-size=\"11\">" << escaped(l.text)
                << "</text>\n";
        for (const map_rect& m : map_rects)
            svg << "<rect x=\"" << number(m.x0) << "\" y=\"" << number(m.y) << "\" width=\"" << number(m.x1 - m.x0)
                << "\" height=\"" << number(m.height) << "\" fill=\"" << key_colour(m.key) << "\"><title>"
                << escaped(m.title) << "</title></rect>\n";
        time_axis(map_bottom + 15);
        for (const legend_entry& l : map_legend)
            svg << "<rect x=\"" << number(l.x) << "\" y=\"" << number(l.y) << "\" width=\"12\" height=\"12\" fill=\""
                << key_colour(l.key) << "\"/><text x=\"" << number(l.x + 16) << "\" y=\"" << number(l.y + 11) << "\">"
                << escaped(key_label(names, l.key)) << "</text>\n";
    }
    svg << "</svg>\n";
    drawn.tracks = rows.size();
    drawn.bars = bars.size();
    drawn.span_us = span;
    drawn.allocations = bands.size();
    drawn.residency_rects = map_rects.size();
    drawn.residency_legend = map_legend.size();
    return drawn;
}

}  // namespace usm_report
