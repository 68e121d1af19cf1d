// core/policy_set.cpp - choosing a context's policies, and asking them.
#include "core/policy_set.hpp"

#include <exception>
#include <string>

#include "core/diagnostics.hpp"

namespace usm::detail {

namespace {

/// The built-in defaults' names (context_options' defaults).
constexpr std::string_view default_read_ahead_name = "density";
constexpr std::string_view default_eviction_name = "lru";
constexpr std::string_view default_thrashing_name = "in_place";
constexpr std::string_view default_copy_path_name = "auto";

}  // namespace

policy_set::policy_set(const context_options& o)
    : m_read_ahead(o.policies.read_ahead ? o.policies.read_ahead : make_read_ahead_policy(o.read_ahead)),
      m_default_read_ahead(make_read_ahead_policy(default_read_ahead_name)),
      m_eviction(o.policies.eviction ? o.policies.eviction : make_eviction_policy(o.eviction)),
      m_default_eviction(make_eviction_policy(default_eviction_name)),
      m_thrashing(o.policies.thrashing ? o.policies.thrashing : make_thrashing_policy(o.thrashing)),
      m_default_thrashing(make_thrashing_policy(default_thrashing_name)),
      m_copy_path(o.policies.copy_path
                      ? o.policies.copy_path
                      : make_copy_path_policy(o.copy_path, o.cpu_copy_max_to_device, o.cpu_copy_max_to_host)),
      m_default_copy_path(
          make_copy_path_policy(default_copy_path_name, o.cpu_copy_max_to_device, o.cpu_copy_max_to_host)) {}

void policy_set::complain(std::string_view policy) noexcept {
    if (m_complained) return;
    m_complained = true;
    try {
        std::string what = "an exception that is not a std::exception";
        try {
            throw;
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        log(log_level::error, "policy '", std::string(policy), "' threw (", what,
            "); the built-in default answers instead (logged once per context)");
    } catch (...) {  // no memory for the message: the fallback still answers
    }
}

page_range policy_set::read_ahead(const host_fault_view& fault) {
    return ask(*m_read_ahead, *m_default_read_ahead, [&](read_ahead_policy& p) { return p.on_host_fault(fault); });
}

void policy_set::choose_victims(const eviction_request& request, std::span<const eviction_candidate> candidates,
                                std::vector<std::size_t>& order) {
    ask(*m_eviction, *m_default_eviction, [&](eviction_policy& p) {
        order.clear();  // what a policy that threw left there
        p.choose(request, candidates, order);
    });
}

thrash_action policy_set::on_return(const block_return& block) {
    return ask(*m_thrashing, *m_default_thrashing, [&](thrashing_policy& p) { return p.on_return(block); });
}

transfer_path policy_set::choose_path(const transfer_request& batch) {
    return ask(*m_copy_path, *m_default_copy_path, [&](copy_path_policy& p) { return p.choose(batch); });
}

}  // namespace usm::detail
