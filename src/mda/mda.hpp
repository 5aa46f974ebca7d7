// Message Delivery Agent: gets each stored message to its receiver.
#pragma once

#include "bus/bus.hpp"
#include "core/message.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <chrono>

namespace intercomm::mda {

inline constexpr std::string_view kWorkerName = "mda";

struct MdaOptions {
  std::chrono::milliseconds publish_timeout{5000};
};

// Registers on `worker` the MDA's job:
//  deliver_message {"message":{message_id,sender,receiver,body,created_at}} -> {"message_id","live"}
//    publishes {"type":"message","message":{...}} to inter_comm.live with
//    routing key user.<receiver>, and user.<sender> when the sender is
//    someone else (their other devices). Unroutable means nobody has a socket
//    open: the message waits in the inbox, which is not a failure. A publish
//    that failed is -32010 and the job is retried; a receiver may then get a
//    message twice, and de-duplicates by message_id (at least once).
//    `live` lists the users with a socket open somewhere.
// Webhook delivery is not built yet.
void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MdaOptions options = {});

}  // namespace intercomm::mda
