// retract_message: the sender takes a message back. The stored message
// becomes a tombstone (empty body, retracted_at) under the same id, so both
// inboxes and the conversation keep its seq and show the tombstone; then a
// deliver_message of the tombstone tells the sockets and webhooks.
#include "mta/jobs.hpp"

#include "bus/topology.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <boost/json/serialize.hpp>

#include <chrono>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

JobResult retract_message(Context& context, const json::object& params) {
  auto job = jobs::RetractMessage::decode(params);
  if (!job) return job.error();
  auto message = read_message(context.store, job->message_id);
  if (!message) return message.error();
  if (message->sender != job->user) {
    return Error::of(ErrorCode::forbidden, "message: only its sender may retract it");
  }
  if (message->retracted_at.empty()) {
    message->body.clear();
    message->retracted_at = core::format_rfc3339(std::chrono::system_clock::now());
    if (auto put = context.store.put(store::kMessages, message->message_id, json::serialize(core::to_json(*message)));
        !put) {
      return unavailable(put.error());
    }
  }
  // Told again on a retry: a deliver_message lost before its confirm is not lost.
  jobs::Seqs seqs;
  for (const auto& user : {message->sender, message->receiver}) {
    auto seq = context.store.inbox_seq(user, message->message_id);
    if (!seq) return unavailable(seq.error());
    if (*seq) seqs[user] = **seq;
  }
  const auto status = bus::publish_and_wait(context.bus, bus::kExchange,
                                            jobs::envelope(jobs::DeliverMessage{*message, std::move(seqs)}),
                                            context.options.publish_timeout);
  if (status != bus::PublishStatus::confirmed && status != bus::PublishStatus::unroutable) {
    return unavailable(Error::of(ErrorCode::unavailable,
                                 fmt::format("queuing the retraction's deliver_message: {}", bus::to_string(status))));
  }
  return json::object{{"message_id", message->message_id}, {"retracted_at", message->retracted_at}};
}

}  // namespace intercomm::mta::detail
