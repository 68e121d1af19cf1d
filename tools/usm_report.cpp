// usm-report: renders a usm trace (USM_TRACE=file.json) as an SVG timeline,
// with a residency map of its allocations when the trace has residency events.
//
//   usm-report TRACE.json [-o OUT.svg]     (default: TRACE.svg beside it)
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

#include "report.hpp"

int main(int argc, char** argv) try {
    if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "-o")) {
        std::fprintf(stderr, "usage: usm-report TRACE.json [-o OUT.svg]\n");
        return 2;
    }
    const std::string in_path = argv[1];
    std::string out_path = argc == 4 ? argv[3] : in_path;
    if (argc != 4) {
        const auto dot = out_path.rfind('.');
        out_path = (dot == std::string::npos ? out_path : out_path.substr(0, dot)) + ".svg";
    }
    std::ifstream in(in_path);
    if (!in) {
        std::fprintf(stderr, "usm-report: cannot read %s\n", in_path.c_str());
        return 1;
    }
    const nlohmann::json trace = nlohmann::json::parse(in);
    std::ofstream out(out_path, std::ios::trunc);
    const usm_report::summary s = usm_report::render(trace, in_path, out);
    if (!out) {
        std::fprintf(stderr, "usm-report: cannot write %s\n", out_path.c_str());
        return 1;
    }
    std::printf("usm-report: %s: %zu events on %zu tracks over %.1f ms", out_path.c_str(), s.bars, s.tracks,
                s.span_us / 1000.0);
    if (s.allocations != 0)
        std::printf("; residency of %zu allocations in %zu page rows (%zu bucketed)", s.allocations, s.residency_rows,
                    s.bucketed);
    std::printf("\n");
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "usm-report: %s\n", e.what());
    return 1;
}
