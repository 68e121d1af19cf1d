// core/eviction.cpp - eviction candidates, the built-in eviction policy, and
// evicting blocks.
#include "core/eviction.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include "core/counters.hpp"
#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"

namespace usm {

/* --- built-in policy ---------------------------------------------------------- */

namespace {

/// "lru": blocks by advice rank, lowest first, then least recently used.
class lru_eviction final : public eviction_policy {
public:
    std::string_view name() const noexcept override { return "lru"; }

    void choose(const eviction_request&, std::span<const eviction_candidate> candidates,
                std::vector<std::size_t>& order) override {
        const std::size_t first = order.size();
        order.resize(first + candidates.size());
        std::iota(order.begin() + static_cast<std::ptrdiff_t>(first), order.end(), std::size_t{0});
        std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(first), order.end(),
                         [&](std::size_t x, std::size_t y) {
                             const eviction_candidate& a = candidates[x];
                             const eviction_candidate& b = candidates[y];
                             return rank(a) != rank(b) ? rank(a) < rank(b) : a.last_use < b.last_use;
                         });
    }

private:
    /// The order blocks go in: what prefers another place first; kept
    /// (read-mostly, or preferring this device) late; pinned last, only when
    /// nothing else can go.
    enum rank_value : int { preferred_elsewhere = 0, plain = 1, kept = 2, pinned = 3 };
    static int rank(const eviction_candidate& c) noexcept {
        if (c.pinned) return pinned;
        if (c.read_mostly || c.preferred_here) return kept;
        return c.preferred_elsewhere ? preferred_elsewhere : plain;
    }
};

}  // namespace

std::shared_ptr<eviction_policy> make_eviction_policy(std::string_view name) {
    if (name == "lru") return std::make_shared<lru_eviction>();
    detail::throw_error(errc::invalid_argument, "eviction policy '", std::string(name),
                        "' is not one of lru (USM_EVICT or context_options::eviction)");
}

}  // namespace usm

namespace usm::detail {

/* --- candidates ------------------------------------------------------------------ */

evictor::candidates evictor::collect(const device_slot& dev, std::span<const range_request> ranges,
                                     const allocation_table& table, const inflight_tracker& inflight) const {
    const location l = dev.where;
    candidates out;
    table.for_each([&](allocation& a) {
        if (a.valid_pages[l] == 0) return;
        for (std::size_t b = 0; b < a.block_count(); ++b) {
            const std::size_t first = b * m_block_pages, end = std::min(first + m_block_pages, a.page_count);
            eviction_candidate c{a.base, b};
            std::size_t elsewhere = 0;
            for (std::size_t p = first; p < end; ++p) {
                const page_state& st = a.pages[p];
                if (!st.copy_at(l)) continue;
                ++c.pages;
                c.pages_alone += st.valid == bit(l) ? 1 : 0;
                elsewhere += st.advice.prefers_elsewhere(l) ? 1 : 0;
                c.read_mostly = c.read_mostly || st.advice.read_mostly;
                c.preferred_here = c.preferred_here || st.advice.prefers(l);
            }
            if (c.pages == 0) continue;
            const bool needed = std::any_of(ranges.begin(), ranges.end(), [&](const range_request& r) {
                return !r.in_place && r.alloc == &a && r.first_page < end && first < r.end_page;
            });
            if (needed) continue;
            if (inflight.busy_at(a, first, end, l)) {
                out.busy = true;
                continue;
            }
            const block_record rec = a.blocks[l].empty() ? block_record{} : a.blocks[l][b];
            c.last_use = rec.used;
            c.pinned = rec.pinned_until > dev.evictions;
            c.preferred_elsewhere = elsewhere == c.pages;
            out.public_view.push_back(c);
            out.owners.push_back(&a);
        }
    });
    return out;
}

/* --- evicting ----------------------------------------------------------------------- */

std::size_t evictor::evict_block(allocation& a, device_slot& dev, std::size_t block) {
    const std::size_t first = block * m_block_pages, end = std::min(first + m_block_pages, a.page_count);
    const double began = m_trace.now();
    const auto [held, written_back] = m_states.drop_device_copies(a, dev, first, end);
    if (a.blocks[dev.where].empty()) a.blocks[dev.where].resize(a.block_count());
    block_record& rec = a.blocks[dev.where][block];
    rec.evicted_at = ++dev.evictions;
    rec.lost = false;  // it left to make room, not because a write took it
    rec.pinned_until = 0;
    count(m_counters, &usm::stats::blocks_evicted, 1, &a, &dev);
    count(m_counters, &usm::stats::pages_evicted, held, &a, &dev);
    count(m_counters, &usm::stats::pages_written_back, written_back, &a, &dev);
    if (m_trace.on())
        m_trace.complete("evict", "eviction", tracer::this_thread(), began, m_trace.now(),
                         concat("\"device\": ", dev.index, ", \"allocation\": ", a.id, ", \"block\": ", block,
                                ", \"pages\": ", held, ", \"written_back\": ", written_back));
    return held;
}

evictor::outcome evictor::make_room(device_slot& dev, std::size_t resident_pages, std::size_t pages_over,
                                    std::span<const range_request> ranges, const allocation_table& table,
                                    const inflight_tracker& inflight) {
    candidates found = collect(dev, ranges, table, inflight);
    const eviction_request request{dev.index, dev.budget_pages, resident_pages, pages_over, dev.clock};
    std::vector<std::size_t> order;
    m_policies.choose_victims(request, found.public_view, order);

    std::vector<bool> taken(found.owners.size(), false);
    std::vector<allocation*> touched;
    for (std::size_t i : order) {
        if (pages_over == 0) break;
        if (i >= found.owners.size() || taken[i]) continue;  // the policy's mistakes are ignored
        taken[i] = true;
        allocation& a = *found.owners[i];
        pages_over -= std::min(pages_over, evict_block(a, dev, found.public_view[i].block));
        if (std::find(touched.begin(), touched.end(), &a) == touched.end()) touched.push_back(&a);
    }
    for (allocation* a : touched) release_empty_segments(*a, dev, inflight);
    return {pages_over, found.busy};
}

}  // namespace usm::detail
