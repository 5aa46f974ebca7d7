// Scanning, replaying and purging dead_letters.
#include "bus/dead_letters.hpp"

#include "bus/topology.hpp"

#include <fmt/core.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace intercomm::bus {
namespace {

std::optional<std::int64_t> integer_header(const Envelope& envelope, const char* name) {
  auto found = envelope.headers.find(name);
  if (found == envelope.headers.end()) return std::nullopt;
  std::int64_t value = 0;
  const auto& text = found->second;
  if (std::from_chars(text.data(), text.data() + text.size(), value).ec != std::errc()) return std::nullopt;
  return value;
}

std::string header(const Envelope& envelope, const char* name) {
  auto found = envelope.headers.find(name);
  return found == envelope.headers.end() ? std::string() : found->second;
}

DeadLetter letter_of(const Envelope& envelope) {
  return DeadLetter{dead_letter_id(envelope.routing_key, envelope.body),
                    envelope.routing_key,
                    header(envelope, "x-first-death-reason"),
                    header(envelope, "x-first-death-queue"),
                    integer_header(envelope, kFirstDeathTimeHeader),
                    envelope};
}

// The job again, as it was first queued: its own headers, none of the broker's.
Envelope replay_of(const Envelope& dead) {
  Envelope job;
  job.routing_key = dead.routing_key;
  job.body = dead.body;
  for (const auto& [key, value] : dead.headers) {
    if (!key.starts_with("x-death") && !key.starts_with("x-first-death") && !key.starts_with("x-last-death") &&
        key != "x-delivery-count") {
      job.headers.emplace(key, value);
    }
  }
  return job;
}

}  // namespace

bool DeadLetterFilter::matches(const DeadLetter& letter, std::int64_t now_unix) const {
  if (!job.empty() && letter.job != job) return false;
  if (!ids.empty() && std::find(ids.begin(), ids.end(), letter.id) == ids.end()) return false;
  if (older_than && (!letter.died_at || now_unix - *letter.died_at < older_than->count())) return false;
  return true;
}

std::string dead_letter_id(const std::string& job, const std::string& body) {
  const std::string text = job + "\n" + body;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  std::string id;
  for (unsigned int i = 0; i < 6 && i < length; ++i) id += fmt::format("{:02x}", digest[i]);
  return id;
}

core::Result<DeadLetterScan> scan_dead_letters(Bus& bus, const DeadLetterFilter& filter,
                                               DeadLetterAction action, std::chrono::milliseconds quiet) {
  struct InHand {
    std::mutex mu;
    std::condition_variable arrived;
    std::vector<std::unique_ptr<Delivery>> deliveries;
  };
  auto in_hand = std::make_shared<InHand>();
  auto subscription = bus.consume(std::string(kDeadLetterQueue), kMaxScan, [in_hand](std::unique_ptr<Delivery> d) {
    std::lock_guard lock(in_hand->mu);
    in_hand->deliveries.push_back(std::move(d));
    in_hand->arrived.notify_all();
  });
  if (!subscription) return core::Error::of(core::ErrorCode::unavailable, "dlq: cannot consume dead_letters");

  // Everything the broker hands out until it goes quiet.
  std::vector<std::unique_ptr<Delivery>> deliveries;
  {
    std::unique_lock lock(in_hand->mu);
    std::size_t seen = 0;
    do {
      seen = in_hand->deliveries.size();
      in_hand->arrived.wait_for(lock, quiet, [&] { return in_hand->deliveries.size() != seen; });
    } while (in_hand->deliveries.size() != seen && in_hand->deliveries.size() < kMaxScan);
    subscription->pause();  // no more: what is in hand is the scan
    deliveries.swap(in_hand->deliveries);
  }

  DeadLetterScan scan;
  scan.scanned = deliveries.size();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  for (auto& delivery : deliveries) {
    DeadLetter letter = letter_of(delivery->message());
    if (scan.matched.size() >= filter.limit || !filter.matches(letter, now)) {
      delivery->reject(true);
      continue;
    }
    switch (action) {
      case DeadLetterAction::list: delivery->reject(true); break;
      case DeadLetterAction::purge:
        delivery->ack();
        ++scan.acted;
        break;
      case DeadLetterAction::replay: {
        const auto status =
            publish_and_wait(bus, kExchange, replay_of(letter.envelope), std::chrono::seconds(10));
        if (status == PublishStatus::confirmed) {
          delivery->ack();
          ++scan.acted;
        } else {
          delivery->reject(true);
          scan.failed.push_back(fmt::format("{}: {}", letter.id, to_string(status)));
        }
        break;
      }
    }
    scan.matched.push_back(std::move(letter));
  }
  return scan;
}

}  // namespace intercomm::bus
