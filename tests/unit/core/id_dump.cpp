// Test helper: prints N fresh message ids, one a line, for the cross-process id test.
#include "core/ids.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  const long count = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 0;
  if (count <= 0) {
    std::fputs("usage: id_dump COUNT\n", stderr);
    return 2;
  }
  std::string out;
  out.reserve(static_cast<std::size_t>(count) * (intercomm::core::kMessageIdLength + 1));
  for (long i = 0; i < count; ++i) {
    out += intercomm::core::new_message_id();
    out += '\n';
  }
  return std::fwrite(out.data(), 1, out.size(), stdout) == out.size() ? 0 : 1;
}
