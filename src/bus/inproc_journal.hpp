// The in-process broker's journal: durable queues' messages in RocksDB, so an
// accepted job survives a crash of `intercomm run`.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::bus {

// One journaled message: the queue it waits in and what a consumer gets.
struct JournalRecord {
  std::uint64_t id = 0;  // increasing; the order messages are loaded back in
  std::string queue;
  Envelope envelope;
  std::uint32_t delivery_count = 0;
};

// A record's value on disk (its id is the key), and back: decode_record is
// false for bytes encode_record did not make (torn, foreign, truncated).
std::string encode_record(const JournalRecord& record);
bool decode_record(std::string_view data, JournalRecord& record);

// Puts and removes are staged in a batch and made durable together by
// flush(): one synced write for everything staged since the last flush (the
// broker confirms the publishes of a batch only after it). Staging and
// flushing are called by the broker under its own lock order; the journal is
// not thread-safe by itself.
class Journal {
 public:
  // Opens (creating) the journal folder; a clear error if it is locked by
  // another process or unreadable.
  static core::Result<std::unique_ptr<Journal>> open(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Every record on disk, oldest first (at start-up, before any staging).
  core::Result<std::vector<JournalRecord>> load();

  void stage_put(const JournalRecord& record);
  void stage_remove(std::uint64_t id);

  // Stages that message `id` was handed out `count` times; the broker hands
  // it to the consumer once this is written (not synced: a crash of the
  // process keeps it): a message that crashes the process is counted like
  // one that fails, and dead-lettered at its queue's limit instead of
  // crashing it again.
  void stage_delivery_count(std::uint64_t id, std::uint32_t count);
  bool has_staged() const;
  // True when the staged batch holds a put: it must be synced before the
  // publishes in it are confirmed. Removes alone need no sync (a remove lost
  // in a crash only means one more delivery).
  bool staged_needs_sync() const;
  // True when something waits for the staged batch to be written: a put (its
  // publisher), a delivery count (its consumer). Removes alone can wait.
  bool staged_is_awaited() const;

  // The staged batch, handed over to be written outside the broker's lock.
  struct Batch;
  std::shared_ptr<Batch> take_staged();
  // Writes `batch`, with one WAL sync when it holds a put; false (and logged)
  // when the disk refused.
  bool write(Batch& batch);

 private:
  struct Impl;
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace intercomm::bus
