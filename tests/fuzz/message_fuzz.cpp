// Message validation: the body of POST /v1/messages and the message inside a
// job. A message that validates must validate again after to_json (the shape
// the bus carries it in), unchanged.
#include "core/message.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace core = intercomm::core;
  boost::system::error_code ec;
  const auto value = boost::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec) return 0;
  const core::MessageLimits limits{4096};
  for (const auto shape : {core::MessageShape::new_message, core::MessageShape::stored}) {
    const auto message = core::message_from_json(value, limits, shape);
    if (!message) continue;
    const auto json = core::to_json(*message);
    const auto again = core::message_from_json(json, core::MessageLimits{std::size_t(-1)}, core::MessageShape::stored);
    if (shape == core::MessageShape::stored && (!again || core::to_json(*again) != json)) {
      std::fprintf(stderr, "a valid message did not survive to_json: %s\n", boost::json::serialize(json).c_str());
      std::abort();
    }
  }
  return 0;
}
