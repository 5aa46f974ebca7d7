// Redis reply handling: the bytes a Redis node sends, parsed by hiredis's
// reader as the client does, then read by our code as a CLUSTER SLOTS map
// (the hand-written cluster routing) and as a MOVED/ASK redirect. Nothing
// may crash, and every slot range taken must be inside 0..16383.
#include "store/redis_cluster.hpp"

#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace redis = intercomm::store::redis;
  redisReader* reader = redisReaderCreate();
  redis::cap_reply_arrays(reader);  // as every connection's reader
  redisReaderFeed(reader, reinterpret_cast<const char*>(data), size);
  for (int replies = 0; replies < 64; ++replies) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr) break;
    redis::Reply reply(static_cast<redisReply*>(raw));
    for (const auto& range : redis::parse_cluster_slots(reply.get(), "asked")) {
      if (range.first < 0 || range.last >= redis::kSlots || range.first > range.last || range.host.empty() ||
          range.port <= 0 || range.port > 65535) {
        std::fprintf(stderr, "a bad slot range was taken: %d-%d %s:%d\n", range.first, range.last,
                     range.host.c_str(), range.port);
        std::abort();
      }
    }
    if (const auto error = redis::error_text(reply); !error.empty()) {
      if (const auto redirect = redis::parse_redirect(error);
          redirect && (redirect->slot < 0 || redirect->slot >= redis::kSlots || redirect->port <= 0)) {
        std::abort();
      }
    }
  }
  redisReaderFree(reader);
  return 0;
}
