// Names of the bus topology from DESIGN.md § The bus: stable, scripts rely on them.
#pragma once

#include <string>
#include <string_view>

namespace intercomm::bus {

inline constexpr std::string_view kExchange = "inter_comm";                // direct, durable
inline constexpr std::string_view kDeadLetterExchange = "inter_comm.dlx";  // fanout, durable
inline constexpr std::string_view kDeadLetterQueue = "dead_letters";
inline constexpr std::string_view kLiveExchange = "inter_comm.live";  // direct, durable

inline constexpr std::string_view kRequestIdHeader = "x-request-id";
inline constexpr std::string_view kUserHeader = "x-user";

// rpc_queue_<worker>, e.g. rpc_queue_mta.
inline std::string worker_queue(std::string_view worker) {
  return "rpc_queue_" + std::string(worker);
}

}  // namespace intercomm::bus
