// core/fault_injection.hpp - test-only hooks: failures of backend calls, a
// denied userfaultfd, and backends of the tests' own.
//
// Tests make the N-th upload, download or mirror allocation fail as if the
// driver had failed, to show that the operation reports usm::error and that
// no byte of any allocation is lost or changed. The check is one relaxed
// atomic load per backend call when nothing is armed.
#pragma once

namespace usm::detail {

class device_backend;
struct backend_entry;

namespace testing {

enum class injected_call { upload, download, create_mirror };

/// Arms `call` to fail `count` times after letting `skip` calls through.
/// Process-wide; not for production use.
void inject_failure(injected_call call, unsigned skip = 0, unsigned count = 1) noexcept;
/// Disarms every injected failure.
void clear_injected_failures() noexcept;
/// How many injected failures have fired since the last clear.
unsigned injected_failures_fired() noexcept;

/// Makes new contexts behave as if opening a userfaultfd were not permitted
/// (to test the fallback to the signal path).
void deny_userfaultfd(bool deny) noexcept;
bool userfaultfd_denied() noexcept;

/// Adds a backend that contexts open when context_options::backend (or
/// USM_BACKEND) names it: `entry.name`, never "all" (tests/fake_backend.hpp,
/// which tests policies without a driver). Process-wide; a second entry of
/// the same name replaces the first. Not for production use.
void install_backend(const backend_entry& entry);

/// Called by the core just before the backend call. Throws usm::error
/// (transfer_failed, or out_of_memory for create_mirror) when armed.
void maybe_fail(injected_call call, const device_backend& device);

}  // namespace testing
}  // namespace usm::detail
