// core/policy_set.hpp - the four policies a context uses, and how the core
// asks them (include/usm/policy.hpp has their contract).
//
// Every question goes through the members below: a policy that throws is
// logged once per context and the built-in default answers that question
// instead, so a broken user policy can neither fail a host fault nor leave a
// transition half done.
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "usm/context.hpp"
#include "usm/policy.hpp"

namespace usm::detail {

class policy_set {
public:
    /// The policies `options` names or installs (context_options::policies).
    /// Throws invalid_argument for an unknown name.
    explicit policy_set(const context_options& options);

    /// Under the context lock, like every call below.
    page_range read_ahead(const host_fault_view& fault);
    void choose_victims(const eviction_request& request, std::span<const eviction_candidate> candidates,
                        std::vector<std::size_t>& order);
    thrash_action on_return(const block_return& block);
    transfer_path choose_path(const transfer_request& batch);

    /// The names in use, for the log.
    std::string_view read_ahead_name() const noexcept { return m_read_ahead->name(); }
    std::string_view eviction_name() const noexcept { return m_eviction->name(); }
    std::string_view thrashing_name() const noexcept { return m_thrashing->name(); }
    std::string_view copy_path_name() const noexcept { return m_copy_path->name(); }

private:
    /// `call(mine)`, or `call(fallback)` when that throws.
    template <class Policy, class Call>
    auto ask(Policy& mine, Policy& fallback, Call&& call) -> decltype(call(mine)) {
        try {
            return call(mine);
        } catch (...) {
            complain(mine.name());
        }
        return call(fallback);
    }
    /// Logs the exception being handled, thrown by `policy`, once per context.
    void complain(std::string_view policy) noexcept;

    std::shared_ptr<read_ahead_policy> m_read_ahead, m_default_read_ahead;
    std::shared_ptr<eviction_policy> m_eviction, m_default_eviction;
    std::shared_ptr<thrashing_policy> m_thrashing, m_default_thrashing;
    std::shared_ptr<copy_path_policy> m_copy_path, m_default_copy_path;
    bool m_complained = false;
};

}  // namespace usm::detail
