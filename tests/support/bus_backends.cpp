// Test support: unique names.
#include "support/bus_backends.hpp"

#include "core/ids.hpp"

namespace intercomm::testing {

std::string unique_name(std::string_view prefix) {
  return std::string(prefix) + "_" + core::new_message_id();
}

}  // namespace intercomm::testing
