// The journaled in-process broker keeps every confirmed job across a restart.
#include "bus/inproc.hpp"  // first: the header is self-contained

#include "bus/inproc_journal.hpp"
#include "bus/topology.hpp"
#include "support/bus_backends.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <set>
#include <vector>

namespace intercomm::bus {
namespace {

using namespace std::chrono_literals;
using intercomm::testing::Collector;

class JournalTest : public ::testing::Test {
 protected:
  void TearDown() override { std::filesystem::remove_all(path_); }

  std::shared_ptr<InprocBroker> open() {
    auto broker = open_inproc_broker(path_);
    EXPECT_TRUE(broker) << (broker ? "" : broker.error().message);
    return broker ? *broker : nullptr;
  }

  static Envelope job(int n) {
    Envelope envelope;
    envelope.routing_key = "journal_job";
    envelope.body = "job " + std::to_string(n);
    envelope.headers["x-request-id"] = "r" + std::to_string(n);
    return envelope;
  }

  const QueueSpec spec_{
      "rpc_queue_journal_test", {"journal_job"}, QueueType::quorum, 0, std::nullopt, {}, {}, {}, false};
  std::string path_ =
      intercomm::testing::servers_dir() + "/" + intercomm::testing::unique_name("journal-test");
};

TEST_F(JournalTest, ConfirmedJobsNotAckedComeBackAfterARestartMarkedRedelivered) {
  {
    auto broker = open();
    ASSERT_NE(broker, nullptr);
    auto bus = connect_inproc(broker);
    ASSERT_TRUE(bus->declare_queue(spec_));
    for (int n = 0; n < 100; ++n) {
      ASSERT_EQ(publish_and_wait(*bus, kExchange, job(n), 10s), PublishStatus::confirmed);
    }
    // Ack the first 40, reject 5 to dead_letters, leave the rest in hand or
    // ready, then "crash": the broker goes away without anyone draining it.
    Collector<std::shared_ptr<Delivery>> in_hand;
    auto consumer =
        bus->consume(spec_.name, 60, [&](std::unique_ptr<Delivery> d) { in_hand.push(std::move(d)); });
    ASSERT_EQ(in_hand.wait_for(60), 60U);
    auto deliveries = in_hand.items();
    for (std::size_t i = 0; i < 40; ++i) deliveries[i]->ack();
    for (std::size_t i = 40; i < 45; ++i) deliveries[i]->reject(false);
    consumer->pause();
    // The settled ones are staged in the journal: make sure one more synced
    // batch went after them, as any later publish does.
    ASSERT_EQ(publish_and_wait(*bus, kExchange, job(100), 10s), PublishStatus::confirmed);
    consumer.reset();  // the rest go back to the queue, still journaled
  }
  auto broker = open();
  ASSERT_NE(broker, nullptr);
  auto bus = connect_inproc(broker);
  ASSERT_TRUE(bus->declare_queue(spec_));
  Collector<std::string> bodies;
  Collector<bool> redelivered;
  auto consumer = bus->consume(spec_.name, 200, [&](std::unique_ptr<Delivery> d) {
    bodies.push(d->message().body);
    redelivered.push(d->redelivered());
    EXPECT_FALSE(d->message().headers.at("x-request-id").empty());
    d->ack();
  });
  EXPECT_EQ(bodies.wait_for(56, 10s), 56U) << "jobs 45..100 must be back";
  const auto got = bodies.items();
  std::set<std::string> unique(got.begin(), got.end());
  EXPECT_EQ(unique.size(), got.size());
  for (int n = 45; n <= 100; ++n) EXPECT_TRUE(unique.contains("job " + std::to_string(n))) << n;
  for (bool flag : redelivered.items()) EXPECT_TRUE(flag);

  Collector<std::string> dead;
  auto dead_consumer = bus->consume(std::string(kDeadLetterQueue), 10, [&](std::unique_ptr<Delivery> d) {
    dead.push(d->message().body);
    d->ack();
  });
  EXPECT_EQ(dead.wait_for(5, 10s), 5U) << "dead-lettered jobs are journaled too";
}

TEST_F(JournalTest, AckedJobsAreGoneAfterARestart) {
  {
    auto broker = open();
    auto bus = connect_inproc(broker);
    ASSERT_TRUE(bus->declare_queue(spec_));
    Collector<int> acked;
    auto consumer = bus->consume(spec_.name, 10, [&](std::unique_ptr<Delivery> d) {
      d->ack();
      acked.push(1);
    });
    for (int n = 0; n < 20; ++n)
      ASSERT_EQ(publish_and_wait(*bus, kExchange, job(n), 10s), PublishStatus::confirmed);
    ASSERT_EQ(acked.wait_for(20), 20U);
    consumer.reset();
  }  // the broker writes what was staged when it stops
  auto broker = open();
  EXPECT_EQ(inproc_pending(*broker, spec_.name), 0U);
}

// The bodies of the jobs in the journal's files at `path`, as another
// process would read them (read-only: the broker holds the lock).
std::set<std::string> journaled_bodies(const std::string& path) {
  std::set<std::string> bodies;
  rocksdb::DB* raw = nullptr;
  const auto opened = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path, &raw);
  EXPECT_TRUE(opened.ok()) << opened.ToString();
  if (!opened.ok()) return bodies;
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    JournalRecord record;
    if (decode_record(std::string_view(it->value().data(), it->value().size()), record)) {
      bodies.insert(record.envelope.body);
    }
  }
  return bodies;
}

// The journal is written on its own thread while the dispatcher goes on; a
// job reaches a consumer only once it is in the journal's files and its
// publisher was told (a consumer never acts on a job whose publisher could
// still be told it failed).
TEST_F(JournalTest, AJobIsHandedOutOnlyOnceItIsJournaledAndConfirmed) {
  auto broker = open();
  ASSERT_NE(broker, nullptr);
  auto bus = connect_inproc(broker);
  ASSERT_TRUE(bus->declare_queue(spec_));
  constexpr int kJobs = 60;
  std::array<std::atomic<bool>, kJobs> confirmed{};
  Collector<std::string> early;
  Collector<int> handled;
  auto consumer = bus->consume(spec_.name, 100, [&](std::unique_ptr<Delivery> d) {
    const int n = std::stoi(d->message().body.substr(4));  // "job N"
    if (!confirmed[static_cast<std::size_t>(n)]) early.push(d->message().body);
    // A sample, on the dispatcher thread before it hands out anything else:
    // reading the files takes a while.
    if (n % 20 == 0 && !journaled_bodies(path_).contains(d->message().body)) {
      early.push(d->message().body + " (not in the files)");
    }
    d->ack();
    handled.push(1);
  });
  Collector<PublishStatus> confirms;
  for (int n = 0; n < kJobs; ++n) {
    bus->publish(kExchange, job(n), 10s, [&, n](PublishStatus status) {
      confirmed[static_cast<std::size_t>(n)] = true;
      confirms.push(status);
    });
  }
  ASSERT_EQ(confirms.wait_for(kJobs), static_cast<std::size_t>(kJobs));
  for (const auto status : confirms.items()) EXPECT_EQ(status, PublishStatus::confirmed);
  ASSERT_EQ(handled.wait_for(kJobs), static_cast<std::size_t>(kJobs));
  EXPECT_EQ(early.size(), 0U) << "handed out too early: " << early.items().front();
}

// Opens the broker `runs` times; each run takes the job in hand and "crashes"
// (the broker goes away with it never settled). With `publish_first`, the
// first run also publishes it. Returns the delivery count each run saw, then
// what the dead-letter queue and `queue` hold at the next start.
struct CrashLoop {
  std::vector<std::uint32_t> counts;
  std::vector<std::string> dead_letters;  // body|reason
  std::size_t handed_out_again = 0;
};

CrashLoop crash_loop(const std::function<std::shared_ptr<InprocBroker>()>& open, const QueueSpec& queue,
                     const Envelope& job, int runs, bool publish_first) {
  CrashLoop out;
  for (int run = 0; run < runs; ++run) {
    std::shared_ptr<Delivery> in_hand;  // outlives the broker: never settled while it ran
    auto broker = open();
    auto bus = connect_inproc(broker);
    EXPECT_TRUE(bus->declare_queue(queue));
    if (run == 0 && publish_first) {
      EXPECT_EQ(publish_and_wait(*bus, kExchange, job, 10s), PublishStatus::confirmed);
    }
    Collector<std::shared_ptr<Delivery>> got;
    auto consumer = bus->consume(queue.name, 1, [&](std::unique_ptr<Delivery> d) { got.push(std::move(d)); });
    EXPECT_EQ(got.wait_for(1), 1U) << "run " << run;
    if (got.size() == 0) return out;
    in_hand = got.items().front();
    out.counts.push_back(in_hand->delivery_count());
    consumer->pause();
    bus.reset();
    broker.reset();
  }
  auto broker = open();
  auto bus = connect_inproc(broker);
  EXPECT_TRUE(bus->declare_queue(queue));
  Collector<std::string> reasons;
  auto dead = bus->consume(std::string(kDeadLetterQueue), 10, [&](std::unique_ptr<Delivery> d) {
    reasons.push(d->message().body + "|" + d->message().headers.at("x-first-death-reason"));
    d->ack();
  });
  Collector<std::string> again;
  auto consumer = bus->consume(queue.name, 1, [&](std::unique_ptr<Delivery> d) {
    again.push(d->message().body);
    d->ack();
  });
  reasons.wait_for(1);
  out.dead_letters = reasons.items();
  out.handed_out_again = again.size();
  return out;
}

// A job whose handling kills the process is counted each time it was handed
// out, across restarts, and dead-lettered at its queue's limit instead of
// being handed out again for ever.
TEST_F(JournalTest, AJobThatCrashesTheProcessEachTimeIsDeadLetteredAtTheLimit) {
  QueueSpec limited = spec_;
  limited.delivery_limit = 3;
  {
    auto broker = open();
    auto bus = connect_inproc(broker);
    ASSERT_TRUE(bus->declare_queue(limited));
    ASSERT_EQ(publish_and_wait(*bus, kExchange, job(1), 10s), PublishStatus::confirmed);
  }
  const auto loop = crash_loop([&] { return open(); }, limited, job(1), 3, false);
  EXPECT_EQ(loop.counts, (std::vector<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(loop.dead_letters, (std::vector<std::string>{"job 1|delivery_limit"}));
  EXPECT_EQ(loop.handed_out_again, 0U) << "handed out a fourth time";
}

// A first delivery is not written (the common case costs no write): a job
// published and handed out in the run it crashes comes back as a redelivery
// with no count, and is counted from then on: dead-lettered one crash later.
TEST_F(JournalTest, AJobCrashingTheRunThatPublishedItIsCountedFromItsRedelivery) {
  QueueSpec limited = spec_;
  limited.delivery_limit = 3;
  const auto loop = crash_loop([&] { return open(); }, limited, job(1), 4, true);
  EXPECT_EQ(loop.counts, (std::vector<std::uint32_t>{0, 0, 1, 2}));
  EXPECT_EQ(loop.dead_letters, (std::vector<std::string>{"job 1|delivery_limit"}));
  EXPECT_EQ(loop.handed_out_again, 0U) << "handed out a fifth time";
}

TEST_F(JournalTest, ALockedJournalIsAClearError) {
  auto first = open();
  ASSERT_NE(first, nullptr);
  auto second = open_inproc_broker(path_);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("bus journal"), std::string::npos) << second.error().message;
}

}  // namespace
}  // namespace intercomm::bus
