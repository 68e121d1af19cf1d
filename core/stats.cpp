// core/stats.cpp - printing usm::stats.
#include "usm/stats.hpp"

#include <ostream>
#include <sstream>

namespace usm {

std::string stats::to_string() const {
    std::ostringstream out;
    out << *this;
    return out.str();
}

std::ostream& operator<<(std::ostream& os, const stats& s) {
    return os << "host_faults=" << s.host_read_faults << "r/" << s.host_write_faults << "w"
              << " to_device=" << s.pages_to_device << "p/" << s.bytes_to_device << "B"
              << " to_host=" << s.pages_to_host << "p/" << s.bytes_to_host << "B"
              << " read_ahead=" << s.pages_read_ahead << "p"
              << " zero_filled=" << s.pages_zero_filled << "p"
              << " batches=" << s.transfer_batches << " launches=" << s.launches << " kernel_waits=" << s.kernel_waits
              << " evicted=" << s.blocks_evicted << "b/" << s.pages_evicted << "p"
              << " written_back=" << s.pages_written_back << "p pinned=" << s.blocks_pinned << "b"
              << " in_place=" << s.pages_in_place << "p/" << s.blocks_in_place << "b"
              << " device_faults=" << s.device_faults << " replays=" << s.replays << " live=" << s.allocations << "/"
              << s.bytes_allocated << "B";
}

}  // namespace usm
