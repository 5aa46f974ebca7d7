// The dead_letters queue as something to look at and act on: jobs that a
// worker gave up on (a handler that kept failing, a webhook past its
// schedule, a job past its queue's delivery limit) wait there until someone
// replays or purges them. `intercomm dlq` is its command line.
#pragma once

#include "bus/bus.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace intercomm::bus {

struct DeadLetter {
  std::string id;       // 12 hex digits of SHA-256 over job and body: the same across scans
  std::string job;      // its routing key: the job name it was queued as
  std::string reason;   // x-first-death-reason: rejected, expired, delivery_limit, webhook_failed
  std::string queue;    // x-first-death-queue: where it died
  std::optional<std::int64_t> died_at;  // unix seconds, when the broker recorded it
  Envelope envelope;
};

// Which dead letters an action takes; every field set must match.
struct DeadLetterFilter {
  std::string job;                                  // empty: any job
  std::optional<std::chrono::seconds> older_than;   // dead for at least this long (unknown age: no)
  std::vector<std::string> ids;                     // empty: any id
  std::size_t limit = 100;                          // matches at most

  bool matches(const DeadLetter& letter, std::int64_t now_unix) const;
};

enum class DeadLetterAction {
  list,    // look only: every letter goes back to the queue
  replay,  // publish the job again to inter_comm (persistent, confirmed), then remove the letter
  purge,   // remove the letter
};

struct DeadLetterScan {
  std::size_t scanned = 0;          // letters seen (at most kMaxScan)
  std::vector<DeadLetter> matched;  // those the filter took, oldest first as the queue holds them
  std::size_t acted = 0;            // replayed or purged
  std::vector<std::string> failed;  // "id: why" for a replay the broker did not confirm (kept)
};

// The queue's letters a scan takes in hand at most.
inline constexpr std::uint16_t kMaxScan = 10000;

// Takes dead_letters' letters in hand (until none came for `quiet`, or
// kMaxScan), applies `action` to those `filter` matches and puts every other
// one back. A replayed job is removed only after the broker confirmed its
// new copy; jobs are idempotent by their ids, so a replay repeated after a
// crash between the two stores nothing twice.
core::Result<DeadLetterScan> scan_dead_letters(Bus& bus, const DeadLetterFilter& filter,
                                               DeadLetterAction action,
                                               std::chrono::milliseconds quiet = std::chrono::milliseconds(700));

// The id of a letter with this routing key and body.
std::string dead_letter_id(const std::string& job, const std::string& body);

}  // namespace intercomm::bus
