// core/fault_injection.cpp - the armed counters behind testing::maybe_fail,
// and the backends tests install.
#include "core/fault_injection.hpp"

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/device_interface.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail::testing {

namespace {

struct armed {
    std::atomic<int> skip{0};
    std::atomic<int> count{0};
};
armed g_armed[3];
std::atomic<bool> g_any{false};
std::atomic<unsigned> g_fired{0};

/// By injected_call's value.
constexpr const char* call_names[] = {"upload", "download", "create_mirror"};
const char* name(injected_call call) { return call_names[static_cast<int>(call)]; }

}  // namespace

void inject_failure(injected_call call, unsigned skip, unsigned count) noexcept {
    armed& a = g_armed[static_cast<int>(call)];
    a.skip = static_cast<int>(skip);
    a.count = static_cast<int>(count);
    g_any = true;
}

void clear_injected_failures() noexcept {
    for (armed& a : g_armed) {
        a.skip = 0;
        a.count = 0;
    }
    g_any = false;
    g_fired = 0;
}

unsigned injected_failures_fired() noexcept { return g_fired; }

namespace {
std::atomic<bool> g_deny_uffd{false};
}
void deny_userfaultfd(bool deny) noexcept { g_deny_uffd = deny; }
bool userfaultfd_denied() noexcept { return g_deny_uffd; }

void maybe_fail(injected_call call, const device_backend& device) {
    if (!g_any.load(std::memory_order_relaxed)) return;
    armed& a = g_armed[static_cast<int>(call)];
    if (a.count.load() <= 0) return;
    if (a.skip.fetch_sub(1) > 0) return;
    if (a.count.fetch_sub(1) <= 0) return;
    ++g_fired;
    throw_error(call == injected_call::create_mirror ? errc::out_of_memory : errc::transfer_failed, name(call), " on ",
                device.properties().name, " failed (injected by a test)");
}

namespace {
std::mutex g_installed_lock;  // leaf: held only to copy the list
std::vector<backend_entry> g_installed;
}  // namespace

void install_backend(const backend_entry& entry) {
    std::lock_guard lock(g_installed_lock);
    std::erase_if(g_installed, [&](const backend_entry& e) { return std::strcmp(e.name, entry.name) == 0; });
    backend_entry added = entry;
    added.explicit_only = true;
    g_installed.push_back(added);
}

}  // namespace usm::detail::testing

namespace usm::detail {

std::vector<backend_entry> available_backends() {
    const std::span<const backend_entry> built_in = registered_backends();
    std::vector<backend_entry> all(built_in.begin(), built_in.end());
    std::lock_guard lock(testing::g_installed_lock);
    all.insert(all.end(), testing::g_installed.begin(), testing::g_installed.end());
    return all;
}

}  // namespace usm::detail
