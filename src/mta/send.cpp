// send_message: store messages in order with their per-inbox seqs, then queue
// deliver_message; and the idempotency keys of POST /v1/messages.
#include "mta/jobs.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "core/jsonrpc.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

namespace {

// The message of one send_message job (with an id and a time), or the error that ends it.
Result<core::Message> message_of(const Context& context, const json::object& params) {
  auto job = jobs::SendMessage::decode(params, context.options.limits);
  if (!job) return job.error();
  core::Message& message = job->message;
  if (message.message_id.empty()) message.message_id = core::new_message_id();
  if (message.created_at.empty()) message.created_at = core::format_rfc3339(std::chrono::system_clock::now());
  return std::move(message);
}

std::vector<std::string> inboxes_of(const core::Message& message) {
  std::vector<std::string> inboxes{message.sender};
  if (message.receiver != message.sender) inboxes.push_back(message.receiver);
  return inboxes;
}

// The message as the store takes it: its inboxes are the sender's, then the receiver's.
store::NewMessage row_of(const core::Message& message) {
  return store::NewMessage{message.message_id, json::serialize(core::to_json(message)), inboxes_of(message)};
}

// The message's seq in each of its inboxes.
jobs::Seqs seqs_of(const core::Message& message, const std::vector<std::uint64_t>& seqs) {
  jobs::Seqs out;
  const auto inboxes = inboxes_of(message);
  for (std::size_t i = 0; i < inboxes.size() && i < seqs.size(); ++i) out[inboxes[i]] = seqs[i];
  return out;
}

// What makes two sends "the same request" for an idempotency key: receiver and body.
std::string fingerprint(const core::Message& message) {
  const std::string input = message.receiver + '\0' + message.body;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace

// The jobs come in queue order (one lane: one conversation's jobs in the
// order the gateway accepted them). Valid messages are stored in that order
// (store_messages gives each its next seq in both inboxes); a message whose
// id is stored already is a redelivery (same sender, receiver and body: its
// inbox entries are repaired, in its turn) or a conflict (-32009). Then one
// deliver_message per stored message, all published together. A transient
// failure at one job fails it and every later one: the worker hands them
// back in order, and redoing a stored one is harmless.
std::vector<JobResult> send_messages(Context& context, std::span<const worker::BatchJob> batch) {
  std::vector<JobResult> outcomes(batch.size(), Error::of(ErrorCode::internal_error));
  std::vector<core::Message> messages(batch.size());
  std::vector<std::size_t> valid;  // indexes of jobs whose message passed the checks
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto message = message_of(context, *batch[i].params);
    if (!message) {
      outcomes[i] = message.error();
      continue;
    }
    messages[i] = std::move(*message);
    valid.push_back(i);
  }

  std::vector<std::optional<jobs::Seqs>> seqs(batch.size());
  std::size_t failed_from = valid.size();  // position in `valid` of the first transient failure
  const auto fail_from = [&](std::size_t position, const Error& cause) {
    failed_from = position;
    const Error error = unavailable(cause);
    for (std::size_t p = position; p < valid.size(); ++p) outcomes[valid[p]] = error;
  };
  for (std::size_t position = 0; position < valid.size();) {
    std::vector<store::NewMessage> rows;
    for (std::size_t p = position; p < valid.size(); ++p) {
      const auto& message = messages[valid[p]];
      rows.push_back(row_of(message));
    }
    const auto stored = context.store.store_messages(rows);
    for (const auto& given : stored.seqs) {
      seqs[valid[position]] = seqs_of(messages[valid[position]], given);
      ++position;
    }
    if (stored.error) {
      fail_from(position, *stored.error);
      break;
    }
    if (!stored.existing_index) break;  // all stored
    // A known id: the same message again (a redelivery, a retried request)
    // gets its inbox entries made whole; another message under it is refused.
    const std::size_t i = valid[position];
    boost::system::error_code ec;
    const auto existing_json = json::parse(stored.existing_value, ec);
    auto existing = ec ? Result<core::Message>(Error::of(ErrorCode::internal_error))
                       : core::message_from_json(existing_json, core::MessageLimits{std::size_t(-1)},
                                                 core::MessageShape::stored);
    // (Retracted since: the same message, now a tombstone.)
    if (!existing || existing->sender != messages[i].sender || existing->receiver != messages[i].receiver ||
        (existing->body != messages[i].body && existing->retracted_at.empty())) {
      outcomes[i] = Error::of(ErrorCode::conflict, "message_id: already used for a different message");
      ++position;
      continue;
    }
    messages[i] = *existing;
    std::vector<std::uint64_t> repaired;
    const store::NewMessage row = row_of(messages[i]);
    for (std::size_t inbox = 0; inbox < row.inboxes.size(); ++inbox) {
      const auto side = store::side_of(row, inbox);
      auto seq = context.store.inbox_append(row.inboxes[inbox], row.message_id, side.peer, side.received);
      if (!seq) break;
      repaired.push_back(*seq);
    }
    if (repaired.size() != row.inboxes.size()) {
      fail_from(position, Error::of(ErrorCode::unavailable, "repairing the inbox entries of a message"));
      break;
    }
    seqs[i] = seqs_of(messages[i], repaired);
    ++position;
  }

  // Every message stored (or found whole) gets its deliver_message now.
  std::vector<std::size_t> delivering;
  std::vector<bus::Envelope> deliveries;
  for (std::size_t p = 0; p < failed_from; ++p) {
    const std::size_t i = valid[p];
    if (!seqs[i]) continue;  // a conflict
    delivering.push_back(i);
    deliveries.push_back(jobs::envelope(jobs::DeliverMessage{messages[i], *seqs[i]}));
  }
  const auto statuses = context.bus.publish_all_and_wait(bus::kExchange, std::move(deliveries),
                                                  context.options.publish_timeout);
  std::optional<std::size_t> first_unqueued;
  for (std::size_t k = 0; k < delivering.size(); ++k) {
    const std::size_t i = delivering[k];
    switch (statuses[k]) {
      case bus::PublishStatus::confirmed: break;
      case bus::PublishStatus::unroutable:
        // No MDA bound: the message waits in the inboxes (not a failure worth retrying).
        spdlog::debug("mta: no MDA bound for deliver_message; {} waits in the inboxes",
                      messages[i].message_id);
        break;
      default:
        if (!first_unqueued) first_unqueued = k;
        continue;
    }
    outcomes[i] = json::object{{"message_id", messages[i].message_id}, {"seqs", jobs::to_json(*seqs[i])}};
  }
  if (first_unqueued) {
    // This one and everything after it are tried again, in order.
    const std::size_t from = delivering[*first_unqueued];
    const Error error = unavailable(
        Error::of(ErrorCode::unavailable,
                  fmt::format("queuing deliver_message: {}", bus::to_string(statuses[*first_unqueued]))));
    for (std::size_t p = 0; p < valid.size(); ++p) {
      if (valid[p] >= from) outcomes[valid[p]] = error;
    }
  }
  return outcomes;
}

JobResult claim_idempotency_key(Context& context, const json::object& params) {
  auto job = jobs::ClaimIdempotencyKey::decode(params, context.options.limits);
  if (!job) return job.error();
  const core::Message* message = &job->message;
  const json::object claim{{"message_id", message->message_id},
                           {"created_at", message->created_at},
                           {"fingerprint", fingerprint(*message)}};
  const std::string claim_key = fmt::format("{}/{}", job->user, job->key);
  auto written = context.store.put_if_absent(store::kIdempotency, claim_key, json::serialize(claim));
  if (!written) return unavailable(written.error());
  if (*written) return jobs::ClaimIdempotencyKey::Claimed{message->message_id, message->created_at, false}.encode();
  auto existing = context.store.get(store::kIdempotency, claim_key);
  if (!existing) return unavailable(existing.error());
  if (!existing->has_value())
    return unavailable(Error::of(ErrorCode::unavailable, "idempotency claim vanished"));
  boost::system::error_code ec;
  const auto recorded = json::parse(**existing, ec);
  if (ec || !recorded.is_object()) return Error::of(ErrorCode::internal_error);
  if (recorded.at("fingerprint") != claim.at("fingerprint")) {
    return Error::of(ErrorCode::conflict,
                     "Idempotency-Key: already used for a different message (receiver or body differ)");
  }
  return jobs::ClaimIdempotencyKey::Claimed{std::string(recorded.at("message_id").as_string()),
                                           std::string(recorded.at("created_at").as_string()), true}
      .encode();
}

}  // namespace intercomm::mta::detail
