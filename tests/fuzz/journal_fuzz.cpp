// The in-process bus journal's record decoder: what `intercomm run` reads back
// from disk at start. Any bytes (a torn or foreign value) must be refused or
// decoded, never crash; what decodes must encode back to the same bytes.
#include "bus/inproc_journal.hpp"

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  intercomm::bus::JournalRecord record;
  if (!intercomm::bus::decode_record(bytes, record)) return 0;
  const std::string again = intercomm::bus::encode_record(record);
  intercomm::bus::JournalRecord twice;
  if (!intercomm::bus::decode_record(again, twice) || intercomm::bus::encode_record(twice) != again) {
    std::fprintf(stderr, "a decoded record did not survive encode + decode\n");
    std::abort();
  }
  return 0;
}
