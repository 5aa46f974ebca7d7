// The MDA's jobs: live delivery through inter_comm.live, and webhooks with
// retries carried by delay queues.
#include "mda/mda.hpp"

#include "bus/topology.hpp"
#include "core/config.hpp"
#include "jobs/jobs.hpp"
#include "mda/receipts.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <map>
#include <mutex>
#include <random>
#include <set>

namespace intercomm::mda {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

Error unavailable(std::string_view why) {
  spdlog::warn("mda: {}", why);
  return Error::of(ErrorCode::unavailable, "store or bus unavailable; retry");
}

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Jobs {
 public:
  Jobs(store::Store& store, bus::Bus& bus, MdaOptions options)
      : store_(store), bus_(bus), options_(std::move(options)) {
    if (!options_.client) options_.client = std::make_shared<WebhookClient>(options_.webhook);
  }

  // A message whose live frames are in a batch's list of frames.
  struct Live {
    core::Message message;
    std::vector<std::string> users;  // whose frames, in order: the receiver's first
    std::size_t first_frame = 0;     // where they start in the list
    std::optional<std::uint64_t> sender_seq;
  };

  // The live frames of every message of the batch are published together
  // (their confirms overlap), then each message's webhooks are queued. Each
  // outcome is its message's own.
  std::vector<Result<json::value>> deliver_messages(std::span<const worker::BatchJob> jobs) {
    std::vector<Result<json::value>> outcomes(jobs.size(), Error::of(ErrorCode::internal_error));
    std::vector<std::optional<Live>> lives(jobs.size());
    std::vector<bus::Envelope> frames;
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      auto live = live_frames(*jobs[j].params, frames);
      if (!live) {
        outcomes[j] = live.error();
        continue;
      }
      lives[j] = std::move(*live);
    }
    const auto statuses = frames.empty() ? std::vector<bus::PublishStatus>()
                                         : bus_.publish_all_and_wait(bus::kLiveExchange, std::move(frames),
                                                                     options_.publish_timeout);
    std::vector<DeliveredMessage> delivered;
    Subscriptions subscriptions;
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      if (!lives[j]) continue;
      const auto& live = *lives[j];
      const auto statuses_of_message = std::span(statuses).subspan(live.first_frame, live.users.size());
      outcomes[j] = queue_webhooks(live.message, live.users, statuses_of_message, subscriptions);
      if (outcomes[j] && statuses_of_message[0] == bus::PublishStatus::confirmed) {
        // The receiver's frame reached a gateway holding one of their sockets.
        delivered.push_back({&live.message, live.sender_seq});
      }
    }
    record_delivered(store_, bus_, delivered, options_.publish_timeout);
    return outcomes;
  }

  // Appends one frame per user to `frames` (the receiver's, and the sender's
  // unless they are the same), each with the message's seq in that user's inbox.
  Result<Live> live_frames(const json::object& params, std::vector<bus::Envelope>& frames) {
    auto job = jobs::DeliverMessage::decode(params);
    if (!job) return job.error();
    const core::Message* message = &job->message;
    Live live{*message, {message->receiver}, frames.size(), std::nullopt};
    if (message->sender != message->receiver) live.users.push_back(message->sender);
    std::vector<bus::Envelope> mine;  // appended only once all are made: no half of a message goes out
    for (const auto& user : live.users) {
      auto seq = seq_of(job->seqs, *message, user);
      if (!seq) return seq.error();
      if (user == message->sender) live.sender_seq = *seq;
      if (!message->retracted_at.empty()) {
        // A retraction: a signal beside the numbered stream (the seq is the message's).
        mine.push_back(jobs::signal(user, json::object{{"type", "retracted"},
                                                       {"message_id", message->message_id},
                                                       {"seq", *seq},
                                                       {"retracted_at", message->retracted_at}}));
        continue;
      }
      bus::Envelope envelope;
      envelope.routing_key = bus::live_key(user);
      envelope.body = json::serialize(
          json::object{{"type", "message"}, {"seq", *seq}, {"message", core::to_json(*message)}});
      envelope.persistent = false;  // a live copy; the inbox holds the message
      mine.push_back(std::move(envelope));
    }
    for (auto& frame : mine) frames.push_back(std::move(frame));
    return live;
  }

  // The webhook subscriptions of each receiver of a batch, read once per batch.
  using Subscriptions = std::map<std::string, Result<store::Page>, std::less<>>;

  // After the message's live frames went out: its webhooks, and its result.
  Result<json::value> queue_webhooks(const core::Message& message, const std::vector<std::string>& users,
                                     std::span<const bus::PublishStatus> statuses, Subscriptions& read) {
    json::array live;
    for (std::size_t i = 0; i < users.size(); ++i) {
      switch (statuses[i]) {
        case bus::PublishStatus::confirmed: live.emplace_back(users[i]); break;
        case bus::PublishStatus::unroutable: break;  // no socket open anywhere: the inbox has it
        default:
          return unavailable(fmt::format("live publish for {}: {}", users[i], bus::to_string(statuses[i])));
      }
    }
    auto found = read.find(message.receiver);
    if (found == read.end()) {
      found = read.emplace(message.receiver, store_.range(store::kSubscriptions, message.receiver,
                                                          store::RangeQuery{std::nullopt, std::nullopt, 1000,
                                                                            store::Order::ascending}))
                  .first;
    }
    const auto& subscriptions = found->second;
    if (!subscriptions) return unavailable(subscriptions.error().message);
    for (const auto& id : subscriptions->entries) {
      if (auto queued = queue_webhook(message, message.receiver, id, 1, std::nullopt); !queued) {
        return queued.error();
      }
    }
    return json::object{{"message_id", message.message_id},
                        {"live", std::move(live)},
                        {"webhooks", subscriptions->entries.size()}};
  }

  Result<json::value> deliver_webhook(const json::object& params) {
    auto job = jobs::DeliverWebhook::decode(params);
    if (!job) return job.error();
    const core::Message* message = &job->message;
    const std::uint32_t attempt_number = job->attempt;
    const std::string& owner = job->user;
    const std::string& subscription_id = job->subscription_id;

    const std::string key = store::subscription_key(owner, subscription_id);
    InFlight claim(*this, key);
    if (!claim.held) {
      if (auto queued =
              queue_webhook(*message, owner, subscription_id, attempt_number, options_.busy_wait, false);
          !queued) {
        return queued.error();
      }
      return json::object{{"outcome", "deferred"}};
    }
    auto stored = store_.get(store::kSubscriptions, key);
    if (!stored) return unavailable(stored.error().message);
    if (!stored->has_value()) return json::object{{"outcome", "subscription_removed"}};
    boost::system::error_code ec;
    auto subscription = json::parse(**stored, ec);
    if (ec || !subscription.is_object()) return Error::of(ErrorCode::internal_error);
    const std::string url(subscription.at("webhook").at("url").as_string());
    const std::string secret(subscription.at("secret").as_string());

    const std::int64_t timestamp = unix_seconds();
    const WebhookEvent event = webhook_event(*message);
    const std::string body =
        json::serialize(json::object{{"type", event.type},
                                     {"timestamp", core::format_rfc3339(std::chrono::system_clock::now())},
                                     {"data", core::to_json(*message)}});
    const WebhookAttempt attempt =
        options_.client
            ->post(url, body,
                   {{"webhook-id", event.id},
                    {"webhook-timestamp", std::to_string(timestamp)},
                    {"webhook-signature", sign_webhook(secret, event.id, timestamp, body)}})
            .get();
    if (attempt.cancelled) return unavailable("webhook attempt cancelled: stopping");

    const bool last = attempt_number > options_.retry_schedule.size();
    const std::string outcome = attempt.delivered() ? "delivered" : last ? "failed" : "retrying";
    const std::string entry = store::delivery_entry(subscription_id, attempt_number, event.entry_suffix);
    json::object record{{"message_id", message->message_id},
                        {"event", event.type},
                        {"subscription_id", subscription_id},
                        {"url", url},
                        {"attempt", attempt_number},
                        {"at", core::format_rfc3339(std::chrono::system_clock::now())},
                        {"status", attempt.status},
                        {"latency_ms", attempt.latency.count()},
                        {"outcome", outcome}};
    if (!attempt.error.empty()) record["error"] = attempt.error;
    if (auto put = store_.put(store::kDeliveries, store::delivery_key(message->message_id, entry),
                              json::serialize(record));
        !put) {
      return unavailable(put.error().message);
    }
    if (auto indexed = store_.index_add(store::kDeliveries, message->message_id, entry); !indexed) {
      return unavailable(indexed.error().message);
    }

    if (attempt.delivered()) {
      if (auto marked = mark(subscription.as_object(), key, "active"); !marked) return marked.error();
      const DeliveredMessage delivered{&*message, std::nullopt};
      record_delivered(store_, bus_, std::span(&delivered, 1), options_.publish_timeout);
    } else if (!last) {
      const auto wait = options_.retry_schedule[attempt_number - 1];
      if (auto queued = queue_webhook(*message, owner, subscription_id, attempt_number + 1, wait); !queued) {
        return queued.error();
      }
    } else {
      if (auto dead = dead_letter(*job); !dead) return dead.error();
      if (auto marked = mark(subscription.as_object(), key, "failing"); !marked) return marked.error();
      spdlog::warn("mda: webhook {} for {} failed {} times; dead-lettered, subscription marked failing",
                   subscription_id, message->message_id, attempt_number);
    }
    return json::object{{"outcome", outcome}, {"status", attempt.status}};
  }

 private:
  // Claims a subscription for one attempt; released when it goes out of scope.
  struct InFlight {
    InFlight(Jobs& jobs, std::string key) : jobs_(jobs), key_(std::move(key)) {
      std::lock_guard lock(jobs_.in_flight_mu_);
      held = jobs_.in_flight_.insert(key_).second;
    }
    ~InFlight() {
      if (!held) return;
      std::lock_guard lock(jobs_.in_flight_mu_);
      jobs_.in_flight_.erase(key_);
    }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    Jobs& jobs_;
    std::string key_;
    bool held = false;
  };

  // The message's seq in `user`'s inbox: from the job (the MTA sends it), or
  // looked up when a job came without it.
  Result<std::uint64_t> seq_of(const jobs::Seqs& seqs, const core::Message& message,
                               const std::string& user) {
    if (auto seq = seqs.find(user); seq != seqs.end()) return seq->second;
    auto stored = store_.inbox_seq(user, message.message_id);
    if (!stored) return unavailable(stored.error().message);
    if (!*stored) return core::invalid_field("message", "not in the inbox of " + user + " (is it stored?)");
    return **stored;
  }

  bus::PublishStatus publish(std::string_view exchange, bus::Envelope envelope) {
    return bus::publish_and_wait(bus_, exchange, std::move(envelope), options_.publish_timeout);
  }

  // Queues attempt `attempt` for one subscription: now (into inter_comm), or
  // after `wait` (into its delay queue, shortened by up to the jitter when asked).
  Result<void> queue_webhook(const core::Message& message, const std::string& user,
                             const std::string& subscription_id, std::uint32_t attempt,
                             std::optional<std::chrono::milliseconds> wait, bool jitter = true) {
    bus::Envelope envelope = jobs::envelope(jobs::DeliverWebhook{message, user, subscription_id, attempt});
    std::string exchange(bus::kExchange);
    if (wait) {
      exchange.clear();  // the default exchange: straight into the delay queue
      envelope.routing_key = delay_queue(*wait);
      if (jitter && options_.retry_jitter > 0) {
        thread_local std::mt19937_64 random{std::random_device{}()};
        std::uniform_real_distribution<double> cut(0.0, options_.retry_jitter);
        envelope.expiration = std::chrono::milliseconds(std::max<std::int64_t>(
            1, static_cast<std::int64_t>(static_cast<double>(wait->count()) * (1.0 - cut(random)))));
      }
    }
    const auto status = publish(exchange, std::move(envelope));
    if (status != bus::PublishStatus::confirmed) {
      return unavailable(fmt::format("queuing deliver_webhook: {}", bus::to_string(status)));
    }
    return {};
  }

  Result<void> dead_letter(const jobs::DeliverWebhook& job) {
    bus::Envelope envelope = jobs::envelope(job);
    envelope.headers["x-first-death-reason"] = "webhook_failed";
    envelope.headers["x-first-death-queue"] = bus::worker_queue(kWebhookWorkerName);
    envelope.headers[bus::kFirstDeathTimeHeader] = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    const auto status = publish(bus::kDeadLetterExchange, std::move(envelope));
    if (status != bus::PublishStatus::confirmed) {
      return unavailable(fmt::format("dead-lettering a webhook job: {}", bus::to_string(status)));
    }
    return {};
  }

  Result<void> mark(json::object subscription, const std::string& key, std::string_view status) {
    if (subscription["status"] == json::value(status)) return {};
    subscription["status"] = status;
    if (auto put = store_.put(store::kSubscriptions, key, json::serialize(subscription)); !put) {
      return unavailable(put.error().message);
    }
    return {};
  }

  store::Store& store_;
  bus::Bus& bus_;
  MdaOptions options_;
  std::mutex in_flight_mu_;
  std::set<std::string> in_flight_;  // subscriptions with an attempt in flight
};

}  // namespace

core::Result<std::vector<std::chrono::milliseconds>> parse_retry_schedule(std::string_view text) {
  std::vector<std::chrono::milliseconds> schedule;
  const auto bad = [&] {
    return Error::of(
        ErrorCode::invalid_params,
        fmt::format("retry schedule '{}': must be waits like 5s,30s,2m,10m,1h (ms, s, m, h)", text));
  };
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto wait = core::parse_duration(item);
    if (!wait) return bad();
    schedule.emplace_back(*wait);
  }
  if (schedule.empty() || schedule.size() > 20) return bad();
  return schedule;
}

std::string delay_queue(std::chrono::milliseconds wait) {
  return fmt::format("inter_comm.delay.{}ms", wait.count());
}

core::Result<void> register_jobs(worker::Worker& live, worker::Worker& webhooks, store::Store& store,
                                 bus::Bus& bus, MdaOptions options) {
  std::set<std::chrono::milliseconds> waits(options.retry_schedule.begin(), options.retry_schedule.end());
  waits.insert(options.busy_wait);
  for (const auto wait : waits) {
    bus::QueueSpec delay;
    delay.name = delay_queue(wait);
    delay.type = bus::QueueType::quorum;  // replicated: a node lost keeps every scheduled retry
    delay.delivery_limit = 0;
    delay.message_ttl = wait;
    delay.dead_letter_exchange = std::string(bus::kExchange);
    delay.dead_letter_routing_key = std::string(jobs::DeliverWebhook::name);
    if (auto declared = bus.declare_queue(delay); !declared) return declared.error();
  }
  const auto publish_timeout = options.publish_timeout;
  auto handlers = std::make_shared<Jobs>(store, bus, std::move(options));
  live.on_batch(std::string(jobs::DeliverMessage::name), [handlers](std::span<const worker::BatchJob> batch) {
    return handlers->deliver_messages(batch);
  });
  live.on(std::string(jobs::RecordDelivered::name),
          [&store, &bus, publish_timeout](const json::object& params,
                                          const worker::JobContext&) -> Result<json::value> {
            auto job = jobs::RecordDelivered::decode(params);
            if (!job) return job.error();
            return record_all(store, bus, *job, publish_timeout);
          });
  webhooks.on(std::string(jobs::DeliverWebhook::name),
              [handlers](const json::object& params, const worker::JobContext&) {
                return handlers->deliver_webhook(params);
              });
  return {};
}

}  // namespace intercomm::mda
