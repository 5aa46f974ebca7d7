// Test support: bus backends and unique names.
#include "support/bus_backends.hpp"

#include "core/ids.hpp"
#include "support/servers.hpp"

#include <filesystem>

namespace intercomm::testing {

BusFactory::BusFactory(const std::string& backend) : backend_(backend) {
  if (backend_ == "inproc") {
    broker_ = bus::make_inproc_broker();
  } else if (backend_ == "inproc_journal") {
    journal_ = servers_dir() + "/" + unique_name("journal");
    auto opened = bus::open_inproc_broker(journal_);
    if (opened) {
      broker_ = std::move(*opened);
    } else {
      ADD_FAILURE() << opened.error().message;
    }
  }
}

BusFactory::~BusFactory() {
  broker_.reset();
  if (!journal_.empty()) std::filesystem::remove_all(journal_);
}

std::string unique_name(std::string_view prefix) {
  return std::string(prefix) + "_" + core::new_message_id();
}

}  // namespace intercomm::testing
