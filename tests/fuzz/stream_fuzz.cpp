// The WebSocket side of /v1/stream: a valid upgrade for a signed-in user,
// then whatever frames the fuzzer makes (masked or not, fragmented, control
// frames, close codes, oversized lengths). The gateway must answer the
// upgrade and never crash or hang, whatever follows.
#include "fuzz/gateway_harness.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string upgrade = "GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " +
                                     intercomm::fuzz::token_for("fuzz_stream") + "\r\n\r\n";
  const std::string bytes = upgrade + std::string(reinterpret_cast<const char*>(data), size);
  const std::string answer = intercomm::fuzz::exchange(bytes);
  if (answer.empty()) {
    // No answer within the wait: the in-process bus may be backed up by what
    // earlier inputs queued. The gateway must still be alive.
    if (!intercomm::fuzz::exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200")) {
      std::fprintf(stderr, "the gateway stopped answering\n");
      std::abort();
    }
    return 0;
  }
  if (!answer.starts_with("HTTP/1.1 101")) {
    std::fprintf(stderr, "the upgrade was not answered 101: %.300s\n", answer.c_str());
    std::abort();
  }
  return 0;
}
