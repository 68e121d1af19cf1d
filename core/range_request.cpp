// core/range_request.cpp - merging a launch's declared ranges.
#include "core/range_request.hpp"

#include <algorithm>
#include <functional>

namespace usm::detail {

namespace {

/// The pieces of requests [i, j) (one allocation) between consecutive cuts,
/// each with the union of the access of the requests covering it, appended
/// to `merged` (extending the last range when it continues it alike).
void merge_one_allocation(std::span<const range_request> requests, std::vector<range_request>& merged) {
    std::vector<std::size_t> cuts;
    for (const range_request& r : requests) {
        cuts.push_back(r.first_page);
        cuts.push_back(r.end_page);
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
        range_request piece{requests.front().alloc, cuts[c], cuts[c + 1], false, false};
        for (const range_request& r : requests) {
            if (r.first_page <= piece.first_page && piece.end_page <= r.end_page) {
                piece.reads |= r.reads;
                piece.writes |= r.writes;
            }
        }
        if (!piece.reads && !piece.writes) continue;
        range_request* last = merged.empty() ? nullptr : &merged.back();
        if (last != nullptr && last->alloc == piece.alloc && last->end_page == piece.first_page &&
            last->reads == piece.reads && last->writes == piece.writes)
            last->end_page = piece.end_page;
        else
            merged.push_back(piece);
    }
}

}  // namespace

std::vector<range_request> merge_requests(std::vector<range_request> requests) {
    std::erase_if(requests, [](const range_request& r) { return r.first_page >= r.end_page; });
    std::sort(requests.begin(), requests.end(), [](const range_request& x, const range_request& y) {
        return x.alloc != y.alloc ? std::less<>()(x.alloc, y.alloc) : x.first_page < y.first_page;
    });
    std::vector<range_request> merged;
    for (std::size_t i = 0; i < requests.size();) {
        std::size_t j = i;
        while (j < requests.size() && requests[j].alloc == requests[i].alloc) ++j;
        merge_one_allocation(std::span(requests).subspan(i, j - i), merged);
        i = j;
    }
    return merged;
}

}  // namespace usm::detail
