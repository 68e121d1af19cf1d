// core/read_ahead.cpp - the built-in read-ahead policies: what a host fault on
// device-resident data brings back besides its page.
#include <algorithm>
#include <string>

#include "core/diagnostics.hpp"
#include "usm/policy.hpp"

namespace usm {

namespace {

/// "density": UVM's density prefetcher, plus Linux readahead's ramp for
/// sweeps.
class density_read_ahead final : public read_ahead_policy {
public:
    std::string_view name() const noexcept override { return "density"; }

    page_range on_host_fault(const host_fault_view& f) override {
        page_range r = dense_region(f);
        // A fault right after a host-valid run is a sweep: bring a window
        // twice the run ahead, up to the block size, so a long sweep takes
        // one fault per block.
        const std::size_t run = valid_run_before(f);
        if (run > 0)
            r.end = std::max(r.end, std::min({f.page + sweep_growth * run, f.page + f.block_pages, f.page_count}));
        return r;
    }

private:
    /// Each window is this many times the host-valid run before the fault.
    static constexpr std::size_t sweep_growth = 2;

    /// Over the aligned power-of-two regions that hold the page, up to the
    /// block: the largest one more than half host-valid (counting what a
    /// smaller dense region already brings) is brought back whole. A
    /// sequential sweep so faults at pages 0, 1, 2, 4, 8, ... of a block; a
    /// random one stays at single pages until its pages fill in. Each region
    /// is the one before it and its sibling half, so only the sibling is
    /// counted: about a block's pages per fault, read in two runs a size.
    static page_range dense_region(const host_fault_view& f) {
        page_range r{f.page, f.page + 1};  // what the fault brings so far
        std::size_t r_valid = 0;           // of r, pages the host already holds
        page_range region = r;
        std::size_t region_valid = 0;
        for (std::size_t size = 2; size <= f.block_pages; size *= 2) {
            const std::size_t lo = f.page & ~(size - 1);
            const std::size_t hi = std::min(lo + size, f.page_count);
            region_valid += f.host_valid_count(lo, region.first) + f.host_valid_count(region.end, hi);
            region = {lo, hi};
            const std::size_t valid = (r.end - r.first) + (region_valid - r_valid);
            if (2 * valid <= size) continue;  // a larger region may still be dense
            r = region;
            r_valid = region_valid;
        }
        return r;
    }

    /// Host-valid pages right before the fault, up to a block.
    static std::size_t valid_run_before(const host_fault_view& f) {
        std::size_t run = 0;
        while (run < f.block_pages && run < f.page && f.host_valid(f.page - 1 - run)) ++run;
        return run;
    }
};

/// "off": the faulting page alone.
class no_read_ahead final : public read_ahead_policy {
public:
    std::string_view name() const noexcept override { return "off"; }
    page_range on_host_fault(const host_fault_view& f) override { return {f.page, f.page + 1}; }
};

}  // namespace

std::shared_ptr<read_ahead_policy> make_read_ahead_policy(std::string_view name) {
    if (name == "density") return std::make_shared<density_read_ahead>();
    if (name == "off") return std::make_shared<no_read_ahead>();
    detail::throw_error(errc::invalid_argument, "read-ahead policy '", std::string(name),
                        "' is not one of density, off (USM_READ_AHEAD or context_options::read_ahead)");
}

}  // namespace usm
