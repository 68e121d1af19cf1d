// core/fault_signal.hpp - host faults through SIGSEGV and mprotect.
//
// One process-wide SIGSEGV handler serves every context. A fault inside a
// registered range goes to that context's fault_target; any other fault goes
// to the handler that was installed before usm (DESIGN.md invariant 6), so a
// stray access still crashes the process as usual.
//
// Drivers install SIGSEGV handlers of their own (PoCL's device discovery
// installs LLVM's, which restores its predecessor and returns). usm stays
// correct either way: ensure_fault_handler_on_top() is called after every
// driver call known to install one, puts usm's handler back on top and keeps
// the displaced one as the handler foreign faults are passed to. After passing
// a fault on, usm checks it is still on top (LLVM's handler reinstalls what it
// displaced) and takes the top back, chaining to whatever is there now. A
// foreign fault that keeps repeating at one address after being passed on
// (the "restore and return" pattern) is ended with the default action.
#pragma once

#include <cstddef>

namespace usm::detail {

enum class host_access;

/// Implemented by the context: resolves a host fault in its range.
class fault_target {
public:
    /// Returns false when `address` is not in a live allocation (the fault is
    /// then passed on as foreign). Runs in the signal handler on the faulting
    /// thread; may block and call drivers. On a failure it cannot recover
    /// from, it reports and raises SIGBUS (as a failed page-in of a mapped
    /// file does). Never throws.
    virtual bool on_host_fault(void* address, host_access kind) noexcept = 0;

protected:
    ~fault_target() = default;
};

/// Routes faults in [begin, end) to `target`, installing the handler on first
/// use. Throws usm::error (unsupported) when every slot is taken.
void register_fault_range(std::byte* begin, std::byte* end, fault_target* target);

/// Stops routing to `target` and waits until no handler is still running in it.
void unregister_fault_range(fault_target* target) noexcept;

/// The target whose range holds `p`, or null.
fault_target* fault_range_owner(const void* p) noexcept;

/// Reinstalls usm's handler if something replaced it (see above).
void ensure_fault_handler_on_top() noexcept;

/// True when usm's handler is the one installed now (for tests).
bool fault_handler_is_on_top() noexcept;

}  // namespace usm::detail
