// Presence: get_presence (online from the broker's routing of a probe to
// user.<id>, else last_seen) and record_last_seen (from the gateways). Only
// for users one has a conversation with.
#include "mta/jobs.hpp"

#include "bus/topology.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

JobResult get_presence(Context& context, const json::object& params) {
  auto job = jobs::GetPresence::decode(params);
  if (!job) return job.error();
  std::string strangers;
  for (const auto& other : job->users) {
    if (other == job->user) continue;
    auto conversation = context.store.conversation(job->user, other);
    if (!conversation) return unavailable(conversation.error());
    if (!*conversation) strangers += (strangers.empty() ? "" : ", ") + other;
  }
  if (!strangers.empty()) {
    return Error::of(ErrorCode::forbidden,
                     fmt::format("users: presence only of users you have a conversation with (not: {})", strangers));
  }
  // One probe per user, all in flight together: routed means a socket is open somewhere.
  std::vector<bus::Envelope> probes;
  for (const auto& other : job->users) {
    probes.push_back(jobs::signal(other, json::object{{"type", jobs::kProbeType}}));
  }
  const auto statuses =
      context.bus.publish_all_and_wait(bus::kLiveExchange, std::move(probes), context.options.publish_timeout);
  json::object users;
  for (std::size_t i = 0; i < job->users.size(); ++i) {
    const std::string& other = job->users[i];
    if (statuses[i] == bus::PublishStatus::confirmed) {
      users[other] = json::object{{"online", true}};
      continue;
    }
    if (statuses[i] != bus::PublishStatus::unroutable) {
      return unavailable(Error::of(ErrorCode::unavailable,
                                   fmt::format("presence probe: {}", bus::to_string(statuses[i]))));
    }
    auto seen = context.store.get(store::kLastSeen, other);
    if (!seen) return unavailable(seen.error());
    users[other] = json::object{{"online", false}, {"last_seen", *seen ? json::value(**seen) : json::value(nullptr)}};
  }
  return json::object{{"users", std::move(users)}};
}

JobResult record_last_seen(Context& context, const json::object& params) {
  auto job = jobs::RecordLastSeen::decode(params);
  if (!job) return job.error();
  // Later wins; RFC 3339 UTC times of one format compare as text.
  auto known = context.store.get(store::kLastSeen, job->user);
  if (!known) return unavailable(known.error());
  if (!*known || **known < job->at) {
    if (auto put = context.store.put(store::kLastSeen, job->user, job->at); !put) return unavailable(put.error());
  }
  return json::object{};
}

}  // namespace intercomm::mta::detail
