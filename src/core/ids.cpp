// The id generator: a 64-bit (time << 16 | sequence) counter plus a node number.
#include "core/ids.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <random>

namespace intercomm::core {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // ascending in ASCII

struct Generator {
  std::atomic<std::uint64_t> last{0};  // (unix millis << 16) | sequence
  std::atomic<std::uint64_t> node{0};
};

std::uint64_t draw_node() {
  std::random_device device;  // getrandom() on Linux
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

Generator& generator() {
  static Generator* instance = [] {
    auto* g = new Generator();  // never destroyed: ids may be made during static teardown
    g->node = draw_node();
    // A forked child must not continue its parent's node number.
    pthread_atfork(nullptr, nullptr, [] { generator().node = draw_node(); });
    return g;
  }();
  return *instance;
}

std::uint64_t now_millis() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace

std::string new_message_id() {
  Generator& g = generator();
  const std::uint64_t floor = now_millis() << 16;
  std::uint64_t previous = g.last.load(std::memory_order_relaxed);
  std::uint64_t next = 0;
  do {
    next = std::max(floor, previous + 1);
  } while (!g.last.compare_exchange_weak(previous, next, std::memory_order_relaxed));

  // 130 bits (two leading zero bits) as 26 base32 digits, least significant last.
  std::uint64_t high = next;
  std::uint64_t low = g.node.load(std::memory_order_relaxed);
  std::string id(kMessageIdLength, '0');
  for (std::size_t i = kMessageIdLength; i-- > 0;) {
    id[i] = kAlphabet[low & 31];
    low = (low >> 5) | (high << 59);
    high >>= 5;
  }
  return id;
}

std::optional<std::uint64_t> message_id_millis(std::string_view id) noexcept {
  if (id.size() != kMessageIdLength) return std::nullopt;
  // The first 13 digits are the top 65 of the 130 bits: (time << 16 | sequence) >> 1.
  std::uint64_t top = 0;
  for (std::size_t i = 0; i < kMessageIdLength; ++i) {
    const auto digit = kAlphabet.find(id[i]);
    if (digit == std::string_view::npos) return std::nullopt;
    if (i < 13) top = (top << 5) | digit;
  }
  return top >> 15;
}

}  // namespace intercomm::core
