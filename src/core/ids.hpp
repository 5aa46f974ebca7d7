// Message ids: opaque, time-ordered, collision-free across threads and processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::core {

// 26 characters of Crockford base32 (0-9 and A-Z without I, L, O, U), e.g.
// 01KMZ3W1Q80005R9X2T7BHC4DE. The id encodes 128 bits: 48 bits of Unix time in
// milliseconds, a 16-bit sequence, and a 64-bit node number drawn at random when
// the process starts (and again in a forked child).
//
// Guarantees: within one process ids are strictly increasing in creation order,
// across all threads, even when the wall clock steps back (the time part then
// holds still and the sequence advances); ids sort as strings in that order.
// Across processes, ids differ in their node part; two processes share a node
// part with probability 2^-64. Thread-safe and lock-free.
inline constexpr std::size_t kMessageIdLength = 26;

std::string new_message_id();

// The Unix time in milliseconds encoded in an id this system generated; nullopt
// when `id` is not one (wrong length or alphabet).
std::optional<std::uint64_t> message_id_millis(std::string_view id) noexcept;

}  // namespace intercomm::core
