// usm/event.hpp - completion of asynchronous work (a launch).
#pragma once

#include <memory>

namespace usm {

namespace detail {
struct event_state;
}

/// Completion of a launch. Copyable; all copies refer to the same work.
/// A default-constructed event is already complete.
class event {
public:
    event() = default;
    explicit event(std::shared_ptr<detail::event_state> state) noexcept : m_state(std::move(state)) {}

    /// Blocks until the work is done. Throws usm::error (errc::device_lost)
    /// if the device failed while running it. Safe from any thread.
    void wait() const;
    /// True once the work is done; never blocks.
    bool ready() const;

private:
    std::shared_ptr<detail::event_state> m_state;
};

}  // namespace usm
