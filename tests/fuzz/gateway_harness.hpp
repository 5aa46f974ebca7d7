// Fuzzing support: the whole gateway in this process — HTTP server, REST
// routes, /v1/stream, an in-process bus with the MTA and MDA workers on a
// RocksDB store in a scratch folder — started once, and a way to hand it raw
// bytes over a loopback connection and read what it answers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace intercomm::fuzz {

inline constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef0123456789abcdef";

// Starts the gateway the first time; its port.
std::uint16_t gateway_port();

// A token for `user` signed with kSecret, valid for a day.
std::string token_for(std::string_view user);

// Writes `bytes` on a new connection, half-closes it, and returns everything
// the gateway wrote back before closing (or before 5 s of silence).
std::string exchange(std::string_view bytes);

}  // namespace intercomm::fuzz
