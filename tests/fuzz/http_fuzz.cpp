// The gateway's HTTP request path: raw request bytes in, the response out,
// through the real server, router, checks and in-process bus. Every answer
// must be a well-formed HTTP response (or nothing, for bytes that are not a
// request at all); a 5xx other than the bus's own 503/504 is a finding.
#include "fuzz/gateway_harness.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string answer = intercomm::fuzz::exchange(bytes);
  if (answer.empty()) return 0;
  if (!answer.starts_with("HTTP/1.")) {
    std::fprintf(stderr, "not an HTTP response: %.200s\n", answer.c_str());
    std::abort();
  }
  for (std::size_t at = 0; (at = answer.find("HTTP/1.", at)) != std::string::npos; at += 7) {
    const std::string status = answer.substr(at + 9, 3);
    if (status == "500" || status == "502") {
      std::fprintf(stderr, "the gateway answered %s:\n%.2000s\n", status.c_str(), answer.c_str());
      std::abort();
    }
  }
  return 0;
}
