// The JSON-RPC 2.0 decoder every worker and the RPC client run on what the
// bus hands them. What parses as a request must serialize and parse again to
// the same request; nothing may throw or crash.
#include "core/jsonrpc.hpp"

#include <boost/json/serialize.hpp>

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace jsonrpc = intercomm::core::jsonrpc;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto incoming = jsonrpc::parse_incoming(text);
  for (const auto& item : incoming.items) {
    const auto* request = std::get_if<jsonrpc::Request>(&item);
    if (request == nullptr) {
      (void)jsonrpc::serialize(std::get<jsonrpc::Response>(item));  // the error owed must serialize
      continue;
    }
    const std::string again = jsonrpc::serialize(*request);
    const auto reparsed = jsonrpc::parse_incoming(again);
    const auto* back = reparsed.items.size() == 1 ? std::get_if<jsonrpc::Request>(&reparsed.items[0]) : nullptr;
    // Ids compare exactly unless fractional: a double may be written back in
    // another spelling (1.1e38), and the spec says ids SHOULD NOT be fractional.
    const bool fractional_id = request->id && request->id->is_double();
    if (back == nullptr || back->method != request->method || back->params != request->params ||
        (!fractional_id && back->id != request->id)) {
      std::fprintf(stderr, "a request did not survive serialize + parse: %s\n", again.c_str());
      std::abort();
    }
  }
  (void)jsonrpc::parse_response(text);
  return 0;
}
