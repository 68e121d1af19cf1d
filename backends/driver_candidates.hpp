// backends/driver_candidates.hpp - what every driver's open() checks before
// it opens a device (core/device_interface.hpp, driver::open).
#pragma once

#include <span>
#include <string_view>

#include "core/device_interface.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

/// Candidate `index` of `candidates`, when usm can open it. Throws
/// invalid_argument for an index past the list and unsupported, with the
/// reason, for a rejected candidate. `api` names the driver in messages.
inline const device_candidate& candidate_to_open(std::span<const device_candidate> candidates, std::size_t index,
                                                 std::string_view api) {
    if (index >= candidates.size())
        throw_error(errc::invalid_argument, api, ": no device #", index, " (the driver offers ", candidates.size(),
                    ")");
    const device_candidate& candidate = candidates[index];
    if (!candidate.rejected_because.empty())
        throw_error(errc::unsupported, api, ": cannot open ", candidate.name, ": ", candidate.rejected_because);
    return candidate;
}

}  // namespace usm::detail
