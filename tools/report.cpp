// tools/report.cpp - the SVG timeline of a usm trace.
#include "report.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <ostream>
#include <stdexcept>
#include <vector>

namespace usm_report {

namespace {

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

}  // namespace

summary render(const nlohmann::json& trace, const std::string& title, std::ostream& svg) {
    if (!trace.is_object() || !trace.contains("traceEvents") || !trace["traceEvents"].is_array())
        throw std::runtime_error("not a trace: no traceEvents array");
    std::map<std::uint64_t, std::string> names;
    std::vector<bar> bars;
    for (const nlohmann::json& e : trace["traceEvents"]) {
        const std::string ph = e.value("ph", "");
        if (ph == "M" && e.value("name", "") == "thread_name")
            names[e.value("tid", std::uint64_t{0})] = e["args"].value("name", "");
        if (ph != "X") continue;
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
    const double span = std::max(last - first, 1.0);

    const double label = 260, width = 1400, row = 26, top = 50, plot = width - label - 20;
    const double height = top + row * static_cast<double>(rows.size()) + 70;
    auto x_of = [&](double us) { return label + (us - first) / span * plot; };
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
    const double axis = top + row * static_cast<double>(rows.size()) + 15;
    for (int tick = 0; tick <= 10; ++tick) {
        const double x = label + plot * tick / 10.0;
        svg << "<text x=\"" << number(x) << "\" y=\"" << number(axis) << "\" text-anchor=\"middle\">"
            << number(span * tick / 10.0 / 1000.0) << " ms</text>\n";
    }
    double lx = label;
    for (const char* category : {"fault", "migration", "launch", "kernel", "eviction", "wait"}) {
        svg << "<rect x=\"" << number(lx) << "\" y=\"" << number(axis + 20) << "\" width=\"12\" height=\"12\" fill=\""
            << colour(category) << "\"/><text x=\"" << number(lx + 16) << "\" y=\"" << number(axis + 31) << "\">"
            << category << "</text>\n";
        lx += 110;
    }
    svg << "</svg>\n";
    return {rows.size(), bars.size(), span};
}

}  // namespace usm_report
