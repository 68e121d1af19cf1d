// core/thrashing.cpp - bounce and hand-over detection, and the built-in
// thrashing policies.
#include "core/thrashing.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include "core/counters.hpp"
#include "core/diagnostics.hpp"

namespace usm {

/* --- built-in policies ------------------------------------------------------ */

namespace {

/// Bounces before a block is acted on: once may be chance, twice is a cycle.
constexpr std::uint32_t bounces_to_act = 2;
/// Hand-overs before a block turns to in-place access: host and device
/// taking turns a few times is a pattern, not a phase change.
constexpr std::uint32_t handovers_to_act = 4;

/// Pins a bouncing block while pinned blocks fill at most half the budget, so
/// part of a cycle hits and the rest has room.
bool room_to_pin(const block_return& b) noexcept { return 2 * (b.pinned_blocks + 1) <= b.budget_blocks; }

/// Hand-overs: in place where the device reaches host memory (pinning cannot
/// help: the write elsewhere invalidates the device copy anyway).
thrash_action on_handover(const block_return& b) noexcept {
    return b.times >= handovers_to_act && b.device_reaches_host ? thrash_action::in_place : thrash_action::none;
}

/// "in_place": a bouncing block stays in host memory, used in place, where
/// the device reaches it (it then needs no room at all); elsewhere pinned.
class in_place_thrashing final : public thrashing_policy {
public:
    std::string_view name() const noexcept override { return "in_place"; }
    thrash_action on_return(const block_return& b) override {
        if (b.cause == return_cause::written_elsewhere) return on_handover(b);
        if (b.times < bounces_to_act) return thrash_action::none;
        if (b.device_reaches_host) return thrash_action::in_place;
        return room_to_pin(b) ? thrash_action::pin : thrash_action::none;
    }
};

/// "pin": a bouncing block is pinned on the device, wherever it is.
class pinning_thrashing final : public thrashing_policy {
public:
    std::string_view name() const noexcept override { return "pin"; }
    thrash_action on_return(const block_return& b) override {
        if (b.cause == return_cause::written_elsewhere) return on_handover(b);
        return b.times >= bounces_to_act && room_to_pin(b) ? thrash_action::pin : thrash_action::none;
    }
};

/// "off": nothing is done; eviction alone decides.
class no_thrashing final : public thrashing_policy {
public:
    std::string_view name() const noexcept override { return "off"; }
    thrash_action on_return(const block_return&) override { return thrash_action::none; }
};

}  // namespace

std::shared_ptr<thrashing_policy> make_thrashing_policy(std::string_view name) {
    if (name == "in_place") return std::make_shared<in_place_thrashing>();
    if (name == "pin") return std::make_shared<pinning_thrashing>();
    if (name == "off") return std::make_shared<no_thrashing>();
    detail::throw_error(errc::invalid_argument, "thrashing policy '", std::string(name),
                        "' is not one of in_place, pin, off (USM_THRASH or context_options::thrashing)");
}

}  // namespace usm

namespace usm::detail {

/* --- detection ---------------------------------------------------------------- */

block_return thrashing_detector::describe(const allocation& a, std::size_t block, const device_slot& dev,
                                          return_cause why, std::uint32_t times) const {
    block_return b;
    b.allocation = a.base;
    b.block = block;
    b.device = dev.index;
    b.cause = why;
    b.times = times;
    b.device_reaches_host = dev.backend->properties().host_memory_in_place;
    b.budget_blocks = budget_blocks(dev);
    return b;
}

bool thrashing_detector::act(thrash_action action, allocation& a, std::size_t block, device_slot& dev) {
    const location l = dev.where;
    switch (action) {
        case thrash_action::none:
            return false;
        case thrash_action::in_place: {
            if (!dev.backend->properties().host_memory_in_place) return false;
            const std::size_t end = std::min((block + 1) * m_block_pages, a.page_count);
            for (std::size_t p = block * m_block_pages; p < end; ++p) a.set_accessed_by(p, l, true);
            count(m_counters, &usm::stats::blocks_in_place, 1, &a, &dev);
            return true;
        }
        case thrash_action::pin: {
            a.blocks[l][block].pinned_until = dev.evictions + pin_evictions * budget_blocks(dev);
            count(m_counters, &usm::stats::blocks_pinned, 1, &a, &dev);
            return true;
        }
    }
    return false;
}

std::size_t thrashing_detector::pinned_blocks(const device_slot& dev, const allocation_table& table,
                                              std::optional<std::size_t>& pinned) const {
    if (!pinned) {
        std::size_t n = 0;
        table.for_each([&](const allocation& other) {
            for (const block_record& o : other.blocks[dev.where]) n += o.pinned_until > dev.evictions ? 1 : 0;
        });
        pinned = n;
    }
    return *pinned;
}

void thrashing_detector::note_return(allocation& a, std::size_t block, device_slot& dev, const allocation_table& table,
                                     std::optional<std::size_t>& pinned) {
    const location l = dev.where;
    block_record& rec = a.blocks[l][block];
    // Asks the policy about a return for `why`, counted in `times`; resets
    // the count once the answer is carried out.
    auto ask = [&](return_cause why, std::uint32_t& times) {
        block_return b = describe(a, block, dev, why, ++times);
        b.pinned_blocks = pinned_blocks(dev, table, pinned);
        const bool was_pinned = rec.pinned_until > dev.evictions;
        const thrash_action action = m_policies.on_return(b);
        if (!act(action, a, block, dev)) return;
        times = 0;
        if (action == thrash_action::pin && !was_pinned) ++*pinned;
    };
    if (rec.lost) {
        rec.lost = false;
        ask(return_cause::written_elsewhere, rec.handovers);
    }
    const bool soon = rec.evicted_at != 0 && dev.evictions - rec.evicted_at < soon_evictions * budget_blocks(dev);
    rec.evicted_at = 0;
    if (soon) ask(return_cause::evicted, rec.bounces);
}

}  // namespace usm::detail
