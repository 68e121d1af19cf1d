// core/allocation_table.cpp - lookup of allocations by address.
#include "core/allocation_table.hpp"

#include <iterator>

namespace usm::detail {

allocation* allocation_table::find(const void* p) const noexcept {
    auto* b = static_cast<const std::byte*>(p);
    auto it = m_live.upper_bound(b);
    if (it == m_live.begin()) return nullptr;
    allocation* a = std::prev(it)->second.get();
    return a->contains(p) ? a : nullptr;
}

allocation* allocation_table::find_base(const void* p) const noexcept {
    auto it = m_live.find(static_cast<const std::byte*>(p));
    return it == m_live.end() ? nullptr : it->second.get();
}

allocation& allocation_table::insert(std::unique_ptr<allocation> a) {
    m_freed.erase(a->base);
    auto [it, inserted] = m_live.emplace(a->base, std::move(a));
    return *it->second;
}

std::unique_ptr<allocation> allocation_table::remove(allocation& a) {
    auto it = m_live.find(a.base);
    std::unique_ptr<allocation> owned = std::move(it->second);
    m_live.erase(it);
    m_freed.insert(owned->base);
    return owned;
}

}  // namespace usm::detail
