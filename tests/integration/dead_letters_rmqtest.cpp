// dead_letters as something to act on (bus/dead_letters.hpp and `intercomm
// dlq`), on the in-process broker with its journal and on RabbitMQ: letters
// are listed with stable ids, replayed to their queue exactly once, purged,
// filtered by job, id and age; every letter not taken stays.
#include "bus/dead_letters.hpp"
#include "bus/topology.hpp"
#include "support/bus_backends.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <set>
#include <thread>

namespace {

using namespace intercomm::bus;
using intercomm::testing::BusFactory;
using intercomm::testing::Collector;
using intercomm::testing::unique_name;
using namespace std::chrono_literals;

constexpr int kLetters = 30;

class DeadLetters : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BusFactory>(GetParam());
    bus_ = factory_->connect();
    ASSERT_NE(bus_, nullptr);
    queue_ = unique_name("dlq_q");
    job_ = unique_name("dlq_job");
    ASSERT_TRUE(bus_->declare_queue(QueueSpec{queue_, {job_}, QueueType::quorum, 0, std::nullopt, {}, {}, {}, false}));
  }

  // kLetters jobs published, taken and rejected: the broker dead-letters them.
  void make_letters() {
    for (int i = 0; i < kLetters; ++i) {
      Envelope envelope;
      envelope.routing_key = job_;
      envelope.body = "{\"n\":" + std::to_string(i) + "}";
      envelope.headers["x-request-id"] = "req-" + std::to_string(i);
      ASSERT_EQ(publish_and_wait(*bus_, kExchange, std::move(envelope), 10s), PublishStatus::confirmed);
    }
    Collector<std::shared_ptr<Delivery>> taken;
    auto subscription = bus_->consume(queue_, 64, [&](std::unique_ptr<Delivery> d) { taken.push(std::move(d)); });
    ASSERT_EQ(taken.wait_for(kLetters, 10s), static_cast<std::size_t>(kLetters)) << "jobs never came";
    for (auto& delivery : taken.items()) delivery->reject(false);
  }

  // This test's letters (other tests' stay where they are), once `count` are there.
  DeadLetterScan letters(std::size_t count, DeadLetterFilter filter = {}) {
    filter.job = job_;
    filter.limit = 1000;
    DeadLetterScan scan;
    const auto until = std::chrono::steady_clock::now() + 20s;
    do {
      auto result = scan_dead_letters(*bus_, filter, DeadLetterAction::list, 300ms);
      EXPECT_TRUE(result) << result.error().message;
      if (result) scan = std::move(*result);
    } while (scan.matched.size() != count && std::chrono::steady_clock::now() < until);
    return scan;
  }

  std::unique_ptr<BusFactory> factory_;
  std::unique_ptr<Bus> bus_;
  std::string queue_, job_;
};

TEST_P(DeadLetters, AreListedReplayedOnceAndPurged) {
  make_letters();
  auto listed = letters(kLetters);
  ASSERT_EQ(listed.matched.size(), static_cast<std::size_t>(kLetters));
  std::set<std::string> ids, bodies;
  for (const auto& letter : listed.matched) {
    ids.insert(letter.id);
    bodies.insert(letter.envelope.body);
    EXPECT_EQ(letter.job, job_);
    EXPECT_EQ(letter.id, dead_letter_id(letter.job, letter.envelope.body));
    ASSERT_TRUE(letter.died_at.has_value()) << "no death time on " << letter.id;
    EXPECT_LT(std::abs(*letter.died_at - std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count()),
              120);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kLetters));
  EXPECT_EQ(bodies.size(), static_cast<std::size_t>(kLetters));
  // Listing took nothing away, and the ids are the same the second time.
  auto again = letters(kLetters);
  std::set<std::string> ids_again;
  for (const auto& letter : again.matched) ids_again.insert(letter.id);
  EXPECT_EQ(ids_again, ids);

  // Fresh letters are not older than an hour.
  DeadLetterFilter old;
  old.older_than = std::chrono::hours(1);
  EXPECT_EQ(letters(0, old).matched.size(), 0U);

  // Replay 10 by id: each comes back to the job's queue once, with its own headers.
  DeadLetterFilter chosen;
  chosen.job = job_;
  std::set<std::string> replayed_bodies;
  for (const auto& letter : listed.matched) {
    if (chosen.ids.size() == 10) break;
    chosen.ids.push_back(letter.id);
    replayed_bodies.insert(letter.envelope.body);
  }
  auto replay = scan_dead_letters(*bus_, chosen, DeadLetterAction::replay, 300ms);
  ASSERT_TRUE(replay) << replay.error().message;
  // A scan may miss letters another test holds for a moment: replay until all 10 went.
  std::size_t replayed = replay->acted;
  for (int round = 0; round < 20 && replayed < 10; ++round) {
    auto more = scan_dead_letters(*bus_, chosen, DeadLetterAction::replay, 300ms);
    ASSERT_TRUE(more);
    replayed += more->acted;
  }
  EXPECT_EQ(replayed, 10U);
  Collector<std::shared_ptr<Delivery>> back;
  auto subscription = bus_->consume(queue_, 64, [&](std::unique_ptr<Delivery> d) { back.push(std::move(d)); });
  ASSERT_EQ(back.wait_for(10, 10s), 10U) << "replayed jobs never came back";
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(back.size(), 10U) << "a job was replayed twice";
  std::set<std::string> came_back;
  for (auto& delivery : back.items()) {
    came_back.insert(delivery->message().body);
    EXPECT_EQ(delivery->message().headers.count("x-request-id"), 1U);
    EXPECT_EQ(delivery->message().headers.count("x-first-death-reason"), 0U);
    delivery->ack();
  }
  EXPECT_EQ(came_back, replayed_bodies);
  subscription.reset();

  // A second replay of the same ids finds nothing: each letter went once.
  auto twice = scan_dead_letters(*bus_, chosen, DeadLetterAction::replay, 300ms);
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->acted, 0U);
  EXPECT_EQ(letters(kLetters - 10).matched.size(), static_cast<std::size_t>(kLetters - 10));

  // Purge the rest of this job's letters.
  DeadLetterFilter rest;
  rest.job = job_;
  rest.limit = 1000;
  std::size_t purged = 0;
  for (int round = 0; round < 20 && purged < kLetters - 10; ++round) {
    auto purge = scan_dead_letters(*bus_, rest, DeadLetterAction::purge, 300ms);
    ASSERT_TRUE(purge);
    purged += purge->acted;
  }
  EXPECT_EQ(purged, static_cast<std::size_t>(kLetters - 10));
  EXPECT_EQ(letters(0).matched.size(), 0U);
}

TEST(DeadLettersCli, ListsShowsReplaysAndPurgesOverRabbitMq) {
  const std::string url = intercomm::testing::test_amqp_url();
  ASSERT_FALSE(url.empty()) << "INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh";
  BusFactory factory("amqp");
  auto bus = factory.connect();
  ASSERT_NE(bus, nullptr);
  const std::string queue = unique_name("dlq_cli_q"), job = unique_name("dlq_cli_job");
  ASSERT_TRUE(bus->declare_queue(QueueSpec{queue, {job}, QueueType::quorum, 0, std::nullopt, {}, {}, {}, false}));
  Envelope envelope;
  envelope.routing_key = job;
  envelope.body = R"({"jsonrpc":"2.0","method":"x","params":{"n":1}})";
  ASSERT_EQ(publish_and_wait(*bus, kExchange, envelope, 10s), PublishStatus::confirmed);
  {
    Collector<std::shared_ptr<Delivery>> taken;
    auto subscription = bus->consume(queue, 4, [&](std::unique_ptr<Delivery> d) { taken.push(std::move(d)); });
    ASSERT_EQ(taken.wait_for(1, 10s), 1U);
    taken.items().front()->reject(false);
  }
  const std::string id = dead_letter_id(job, envelope.body);
  // Exit code and everything printed (stdout and stderr).
  const auto run = [&](const std::string& args) {
    const std::string command = std::string(INTERCOMM_BINARY) + " " + args + " --amqp '" + url + "' 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char chunk[4096];
    while (pipe != nullptr && std::fgets(chunk, sizeof chunk, pipe) != nullptr) output += chunk;
    const int status = pipe == nullptr ? -1 : pclose(pipe);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, output);
  };
  std::pair<int, std::string> listed;
  for (int round = 0; round < 20; ++round) {
    listed = run("dlq list --job " + job);
    if (listed.second.find(id) != std::string::npos) break;
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(listed.first, 0);
  EXPECT_NE(listed.second.find(id + "  " + job), std::string::npos) << listed.second;
  const auto shown = run("dlq show " + id);
  EXPECT_EQ(shown.first, 0);
  EXPECT_NE(shown.second.find(envelope.body), std::string::npos) << shown.second;
  EXPECT_NE(shown.second.find("reason:  rejected"), std::string::npos) << shown.second;
  const auto unknown = run("dlq show 000000000000");
  EXPECT_EQ(unknown.first, 1);
  const auto unbounded = run("dlq purge");
  EXPECT_EQ(unbounded.first, 2) << "a purge must say which letters";
  const auto bad_age = run("dlq list --older-than soon");
  EXPECT_EQ(bad_age.first, 2);
  const auto replayed = run("dlq replay --id " + id);
  EXPECT_EQ(replayed.first, 0) << replayed.second;
  EXPECT_NE(replayed.second.find("replayed 1 of 1"), std::string::npos) << replayed.second;
  Collector<std::shared_ptr<Delivery>> back;
  auto subscription = bus->consume(queue, 4, [&](std::unique_ptr<Delivery> d) { back.push(std::move(d)); });
  ASSERT_EQ(back.wait_for(1, 10s), 1U) << "the replayed job never came back";
  EXPECT_EQ(back.items().front()->message().body, envelope.body);
  back.items().front()->ack();
}

INSTANTIATE_TEST_SUITE_P(Backends, DeadLetters, ::testing::Values("inproc_journal", "amqp"));

}  // namespace
