// Names of the bus topology from DESIGN.md § The bus: stable, scripts rely on them.
#pragma once

#include <string>
#include <string_view>

namespace intercomm::bus {

inline constexpr std::string_view kExchange = "inter_comm";                // direct, durable
inline constexpr std::string_view kDeadLetterExchange = "inter_comm.dlx";  // fanout, durable
inline constexpr std::string_view kDeadLetterQueue = "dead_letters";
// When a message was dead-lettered, in unix seconds: set by the in-process
// broker and the MDA, read out of RabbitMQ's x-death for the others.
inline constexpr const char* kFirstDeathTimeHeader = "x-first-death-time";
inline constexpr std::string_view kLiveExchange = "inter_comm.live";  // direct, durable
// A user's live frames are published on inter_comm.live with routing key user.<id>.
inline constexpr std::string_view kLivePrefix = "user.";
inline std::string live_key(std::string_view user) {
  return std::string(kLivePrefix) + std::string(user);
}

inline constexpr std::string_view kRequestIdHeader = "x-request-id";
inline constexpr std::string_view kUserHeader = "x-user";
// What ordered jobs are partitioned by: jobs with the same value go through
// the same lane, in the order they were published (see lane_queue()).
inline constexpr std::string_view kOrderKeyHeader = "x-order-key";

// rpc_queue_<worker>, e.g. rpc_queue_mta.
inline std::string worker_queue(std::string_view worker) {
  return "rpc_queue_" + std::string(worker);
}

// A worker's ordered jobs leave inter_comm through this consistent-hash
// exchange (on header x-order-key) into its lanes: queues
// rpc_queue_<worker>.lane.<i>, each with a single active consumer.
inline std::string lanes_exchange(std::string_view worker) {
  return std::string(kExchange) + "." + std::string(worker) + ".lanes";
}
inline std::string lane_queue(std::string_view worker, unsigned lane) {
  return worker_queue(worker) + ".lane." + std::to_string(lane);
}

}  // namespace intercomm::bus
