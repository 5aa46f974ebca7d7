// The worker framework and the RPC client, against every bus backend.
#include "worker/worker.hpp"  // first: the header is self-contained

#include "bus/rpc_client.hpp"
#include "bus/topology.hpp"
#include "core/jsonrpc.hpp"
#include "support/bus_backends.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace intercomm::worker {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using intercomm::testing::BusFactory;
using intercomm::testing::Collector;
using intercomm::testing::unique_name;
using namespace std::chrono_literals;

constexpr auto kTimeout = 10s;

class WorkerSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BusFactory>(GetParam());
    worker_bus_ = factory_->connect();
    client_bus_ = factory_->connect();
    ASSERT_TRUE(worker_bus_ && client_bus_);
    name_ = unique_name("w");
    // Job names are global on inter_comm: make them unique to this test.
    get_ = unique_name("get_message");
    fail_ = unique_name("always_fails");
    flaky_ = unique_name("flaky");
    boom_ = unique_name("boom");
    slow_ = unique_name("slow");
    note_ = unique_name("note");
    hold_ = unique_name("hold");
  }

  void TearDown() override {
    {
      std::lock_guard lock(hold_mu_);
      released_ = true;
    }
    hold_cv_.notify_all();
    if (worker_) worker_->stop();
  }

  // A worker serving the seed's get_message from a map, plus jobs that fail
  // in each way the framework distinguishes.
  void start_worker(WorkerOptions options = {}) {
    worker_ = std::make_unique<Worker>(*worker_bus_, name_, options);
    worker_->on(get_, [](const json::object& params, const JobContext&) -> core::Result<json::value> {
      const auto* id = params.if_contains("message_id");
      if (id == nullptr || !id->is_string()) return Error::of(ErrorCode::invalid_params);
      if (id->get_string() != "X9J0UI76GBWQTF") return Error::of(ErrorCode::not_found, "message: not found");
      return json::parse(R"({"sender": "user_1", "receiver":"user_2", "body": "merhaba"})");
    });
    // "The store" is down while store_down_ is set.
    worker_->on(fail_, [this](const json::object&, const JobContext&) -> core::Result<json::value> {
      fail_calls_.fetch_add(1);
      if (store_down_.load()) return Error::of(ErrorCode::unavailable, "store down");
      return json::value("stored");
    });
    worker_->on(flaky_, [this](const json::object&, const JobContext&) -> core::Result<json::value> {
      if (flaky_calls_.fetch_add(1) < 2) return Error::of(ErrorCode::unavailable, "not yet");
      return json::value("done");
    });
    worker_->on(boom_, [](const json::object&, const JobContext&) -> core::Result<json::value> {
      throw std::runtime_error("secret internal detail");
    });
    worker_->on(slow_, [](const json::object&, const JobContext&) -> core::Result<json::value> {
      std::this_thread::sleep_for(300ms);
      return json::value("late");
    });
    worker_->on(hold_, [this](const json::object&, const JobContext&) -> core::Result<json::value> {
      held_.push(1);
      std::unique_lock lock(hold_mu_);
      hold_cv_.wait_for(lock, 10s, [&] { return released_; });
      return json::value("late");
    });
    worker_->on(note_,
                [this](const json::object& params, const JobContext& context) -> core::Result<json::value> {
                  notes_.push(json::serialize(params) + "|" + context.request_id + "|" + context.user);
                  return json::value(nullptr);
                });
    ASSERT_TRUE(worker_->start());
  }

  std::unique_ptr<bus::RpcClient> client() {
    auto opened = bus::RpcClient::open(*client_bus_);
    EXPECT_TRUE(opened);
    return opened ? std::move(*opened) : nullptr;
  }

  // Publishes a raw body with a reply_to and returns the raw reply body.
  std::string raw_call(const std::string& routing_key, const std::string& body) {
    Collector<bus::Envelope> replies;
    auto raw_bus = factory_->connect();
    EXPECT_TRUE(raw_bus->open_reply_queue([&](bus::Envelope e) { replies.push(std::move(e)); }));
    bus::Envelope request;
    request.routing_key = routing_key;
    request.body = body;
    request.reply_to = raw_bus->reply_queue();
    request.correlation_id = "raw-1";
    EXPECT_EQ(bus::publish_and_wait(*raw_bus, bus::kExchange, request, kTimeout),
              bus::PublishStatus::confirmed);
    if (replies.wait_for(1) < 1) return {};
    EXPECT_EQ(replies.items()[0].correlation_id, "raw-1");
    return replies.items()[0].body;
  }

  std::unique_ptr<BusFactory> factory_;
  std::unique_ptr<bus::Bus> worker_bus_;
  std::unique_ptr<bus::Bus> client_bus_;
  std::unique_ptr<Worker> worker_;
  std::string name_, get_, fail_, flaky_, boom_, slow_, note_, hold_;
  // hold_ blocks until released (or 10 s): for replies that must arrive late.
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool released_ = false;
  Collector<int> held_;
  std::atomic<int> fail_calls_{0};
  std::atomic<bool> store_down_{true};
  std::atomic<int> flaky_calls_{0};
  Collector<std::string> notes_;
};

TEST_P(WorkerSuite, DeclaresItsOwnQueueNamedAfterTheWorker) {
  start_worker();
  EXPECT_EQ(worker_->queue(), "rpc_queue_" + name_);
}

TEST_P(WorkerSuite, SeedGetMessageRoundTrip) {
  start_worker();
  auto rpc = client();
  auto result = rpc->call_and_wait(get_, json::object{{"message_id", "X9J0UI76GBWQTF"}}, kTimeout);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result, json::parse(R"({"sender": "user_1", "receiver":"user_2", "body": "merhaba"})"));
}

TEST_P(WorkerSuite, TypedErrorsArriveWithTheirCodes) {
  start_worker();
  auto rpc = client();
  auto missing = rpc->call_and_wait(get_, json::object{{"message_id", "ZZZZZZZZZZZZZZ"}}, kTimeout);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
  auto invalid = rpc->call_and_wait(get_, json::object{{"message_id", 42}}, kTimeout);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code, ErrorCode::invalid_params);
  EXPECT_EQ(invalid.error().message, "Invalid params");
}

TEST_P(WorkerSuite, SeedRequestGetsTheSeedShapedReply) {
  start_worker();
  const std::string reply =
      raw_call(get_, R"({"jsonrpc":"2.0","method":")" + get_ +
                         R"(","params":{"message_id":"X9J0UI76GBWQTF"},"id":"eyJhIjozLCJiIjo0fQ"})");
  EXPECT_EQ(json::parse(reply),
            json::parse(R"({"jsonrpc":"2.0","result":{"sender":"user_1","receiver":"user_2",
      "body":"merhaba"},"id":"eyJhIjozLCJiIjo0fQ"})"));
}

TEST_P(WorkerSuite, JobKeyIsAcceptedAsMethod) {
  start_worker();
  const std::string reply = raw_call(
      get_, R"({"jsonrpc":"2.0","job":")" + get_ + R"(","params":{"message_id":"X9J0UI76GBWQTF"},"id":7})");
  EXPECT_EQ(json::parse(reply).at("result").at("body").as_string(), "merhaba");
}

TEST_P(WorkerSuite, EnvelopeErrorsGetJsonRpcErrors) {
  start_worker();
  struct Case {
    std::string body;
    std::int64_t code;
  };
  for (const auto& c : {
           Case{"{not json", -32700},
           Case{R"({"jsonrpc":"1.0","method":"x","id":1})", -32600},
           Case{R"({"jsonrpc":"2.0","method":")" + get_ + R"(","params":["X9J0UI76GBWQTF"],"id":1})", -32602},
           Case{R"({"jsonrpc":"2.0","method":"not_served_here","id":1})", -32601},
       }) {
    const std::string reply = raw_call(get_, c.body);
    ASSERT_FALSE(reply.empty()) << c.body;
    EXPECT_EQ(json::parse(reply).at("error").at("code").as_int64(), c.code) << c.body << " -> " << reply;
  }
}

TEST_P(WorkerSuite, BatchGetsOneArrayReplyWithoutNotifications) {
  start_worker();
  const std::string reply = raw_call(get_, R"([{"jsonrpc":"2.0","method":")" + get_ +
                                               R"(","params":{"message_id":"X9J0UI76GBWQTF"},"id":"a"},
               {"jsonrpc":"2.0","method":")" + note_ +
                                               R"(","params":{"n":1}},
               {"jsonrpc":"2.0","method":")" + get_ +
                                               R"(","params":{"message_id":"NOPE00000000"},"id":"b"}])");
  const auto array = json::parse(reply).as_array();
  ASSERT_EQ(array.size(), 2U) << reply;
  EXPECT_EQ(array[0].at("id").as_string(), "a");
  EXPECT_EQ(array[1].at("error").at("code").as_int64(), -32004);
  EXPECT_EQ(notes_.wait_for(1), 1U) << "the notification in the batch was not run";
}

TEST_P(WorkerSuite, HandlerThrowingIsInternalErrorWithoutDetail) {
  start_worker();
  auto rpc = client();
  auto result = rpc->call_and_wait(boom_, {}, kTimeout);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::internal_error);
  EXPECT_EQ(result.error().message.find("secret"), std::string::npos) << result.error().message;
}

TEST_P(WorkerSuite, NotificationsRunWithHeadersAndGetNoReply) {
  start_worker();
  bus::Envelope note;
  note.routing_key = note_;
  note.body =
      R"({"jsonrpc":"2.0","method":")" + note_ + R"(","params":{"message":{"sender":"a","body":"x"}}})";
  note.headers = {{"x-request-id", "req-77"}, {"x-user", "alice"}};
  ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, note, kTimeout),
            bus::PublishStatus::confirmed);
  ASSERT_EQ(notes_.wait_for(1), 1U);
  EXPECT_EQ(notes_.items()[0], R"({"message":{"sender":"a","body":"x"}}|req-77|alice)");
  intercomm::testing::wait_until([&] { return worker_->stats().acked >= 1; });
  EXPECT_EQ(worker_->stats().acked, 1U);
  EXPECT_EQ(notes_.wait_for(2, 300ms), 1U) << "acked, yet delivered again";
  EXPECT_EQ(worker_->stats().replies, 0U);
}

TEST_P(WorkerSuite, ATransientFailureIsRetriedInPlaceWithoutSpendingDeliveries) {
  WorkerOptions options;
  options.retry_first = 5ms;
  start_worker(options);
  bus::Envelope job;
  job.routing_key = flaky_;
  job.body = R"({"jsonrpc":"2.0","method":")" + flaky_ + R"(","params":{}})";
  ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, job, kTimeout),
            bus::PublishStatus::confirmed);
  intercomm::testing::wait_until([&] { return worker_->stats().acked >= 1; });
  EXPECT_EQ(worker_->stats().acked, 1U);
  EXPECT_EQ(flaky_calls_.load(), 3);
  EXPECT_EQ(worker_->stats().retried_in_place, 2U);
  EXPECT_EQ(worker_->stats().requeued, 0U) << "the broker saw no failed delivery";
}

// An outage longer than the delivery budget dead-letters nothing: the jobs in
// hand are retried in place, the worker stops taking more (circuit open), and
// everything is done once the store is back.
TEST_P(WorkerSuite, AnOutageSpendsNoBudgetAndOpensTheCircuitUntilAJobSucceeds) {
  WorkerOptions options;
  options.max_deliveries = 2;
  options.breaker_threshold = 3;
  options.retry_first = 5ms;
  options.retry_last = 20ms;
  options.prefetch = 2;
  start_worker(options);
  bus::Envelope job;
  job.routing_key = fail_;
  job.body = R"({"jsonrpc":"2.0","method":")" + fail_ + R"(","params":{}})";
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, job, kTimeout),
              bus::PublishStatus::confirmed);
  }
  ASSERT_TRUE(intercomm::testing::wait_until([&] { return worker_->stats().circuit_open; }))
      << "the circuit never opened";
  const int calls = fail_calls_.load();
  ASSERT_TRUE(intercomm::testing::wait_until([&] { return fail_calls_.load() > calls + 10; }))
      << "the jobs in hand are retried meanwhile";
  EXPECT_LE(worker_->stats().held, 2U) << "no more than it had in hand";
  EXPECT_EQ(worker_->stats().dead_lettered, 0U);
  EXPECT_EQ(worker_->stats().requeued, 0U);

  store_down_ = false;
  ASSERT_TRUE(intercomm::testing::wait_until([&] { return worker_->stats().acked >= 6; }, 20s));
  EXPECT_EQ(worker_->stats().acked, 6U) << "every job done once the store was back";
  EXPECT_FALSE(worker_->stats().circuit_open);
  EXPECT_EQ(worker_->stats().dead_lettered, 0U);
}

TEST_P(WorkerSuite, AJobThatMakesTheHandlerThrowIsDeadLetteredAfterMaxDeliveries) {
  WorkerOptions options;
  options.max_deliveries = 3;
  start_worker(options);
  bus::Envelope job;
  job.routing_key = boom_;
  job.body = R"({"jsonrpc":"2.0","method":")" + boom_ + R"(","params":{}})";
  ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, job, kTimeout),
            bus::PublishStatus::confirmed);
  intercomm::testing::wait_until([&] { return worker_->stats().dead_lettered >= 1; });
  EXPECT_EQ(worker_->stats().dead_lettered, 1U);
  EXPECT_EQ(worker_->stats().requeued, 2U) << "requeued twice, dead-lettered at the third delivery";
}

TEST_P(WorkerSuite, GarbageJobIsDeadLetteredAtOnce) {
  start_worker();
  bus::Envelope job;
  job.routing_key = get_;
  job.body = "definitely not json";
  ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, job, kTimeout),
            bus::PublishStatus::confirmed);
  intercomm::testing::wait_until([&] { return worker_->stats().dead_lettered >= 1; });
  EXPECT_EQ(worker_->stats().dead_lettered, 1U);
  EXPECT_EQ(worker_->stats().requeued, 0U);
}

TEST_P(WorkerSuite, CallWithNoWorkerBoundIsUnavailable) {
  auto rpc = client();
  auto result = rpc->call_and_wait(unique_name("nobody"), {}, kTimeout);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::unavailable);
  EXPECT_EQ(core::http_status(result.error().code), 503);
}

TEST_P(WorkerSuite, SlowReplyTimesOutAndTheLateReplyIsCounted) {
  start_worker();
  Collector<bus::RpcResult> results;
  auto rpc = client();
  rpc->call(hold_, {}, 1s, {}, [&](bus::RpcResult result) { results.push(std::move(result)); });
  ASSERT_EQ(held_.wait_for(1), 1U) << "the worker never took the call";
  ASSERT_EQ(results.wait_for(1), 1U);
  ASSERT_FALSE(results.items()[0]);
  EXPECT_EQ(results.items()[0].error().code, ErrorCode::timeout);
  EXPECT_EQ(rpc->timeouts(), 1U);
  {
    std::lock_guard lock(hold_mu_);
    released_ = true;
  }
  hold_cv_.notify_all();
  intercomm::testing::wait_until([&] { return rpc->late_replies() >= 1; });
  EXPECT_EQ(rpc->late_replies(), 1U);
  EXPECT_EQ(results.size(), 1U) << "a late reply completed the call a second time";
}

TEST_P(WorkerSuite, ThousandsOfCallsInFlightAllAnswered) {
  WorkerOptions options;
  options.prefetch = 128;
  options.threads = 4;
  start_worker(options);
  Collector<bool> answers;  // before the client: pending calls complete into it
  auto rpc = client();
  constexpr int kCalls = 2000;
  for (int i = 0; i < kCalls; ++i) {
    rpc->call(get_, json::object{{"message_id", "X9J0UI76GBWQTF"}}, 30s, {}, [&](bus::RpcResult result) {
      answers.push(result && result->at("body").as_string() == "merhaba");
    });
  }
  ASSERT_EQ(answers.wait_for(kCalls, 60s), static_cast<std::size_t>(kCalls));
  for (bool ok : answers.items()) ASSERT_TRUE(ok);
  EXPECT_EQ(rpc->late_replies(), 0U);
}

TEST_P(WorkerSuite, StopFinishesWorkInHandAndLeavesTheRestQueued) {
  WorkerOptions one_at_a_time;
  one_at_a_time.prefetch = 1;
  one_at_a_time.threads = 1;
  start_worker(one_at_a_time);
  Collector<std::string> answers;  // "late" from the first worker, 1 from the next
  auto rpc = client();
  for (int i = 0; i < 3; ++i) {
    rpc->call(slow_, {}, 30s, {},
              [&](bus::RpcResult result) { answers.push(result ? json::serialize(*result) : "error"); });
  }
  std::this_thread::sleep_for(100ms);
  worker_->stop();

  auto next_bus = factory_->connect();
  Worker next(*next_bus, name_);
  next.on(slow_,
          [](const json::object&, const JobContext&) -> core::Result<json::value> { return json::value(1); });
  ASSERT_TRUE(next.start());
  ASSERT_EQ(answers.wait_for(3), 3U);
  const auto items = answers.items();
  const auto by_first = std::count(items.begin(), items.end(), "\"late\"");
  const auto by_next = std::count(items.begin(), items.end(), "1");
  EXPECT_LE(by_first, 1) << "a stopping worker took more than it had in hand";
  EXPECT_EQ(by_first + by_next, 3) << "a call was lost or failed across the stop";
  next.stop();
}

// Jobs of a batch job that wait behind a busy handler thread are handed over
// together; each outcome is its job's own: a transient failure of one job is
// retried alone, in place, and the others of its batch are acked.
TEST_P(WorkerSuite, BatchJobsWaitingForAThreadAreHandedOverTogetherWithOutcomesOfTheirOwn) {
  const std::string batched = unique_name("batched");
  WorkerOptions options;
  options.threads = 1;
  options.retry_first = 5ms;
  worker_ = std::make_unique<Worker>(*worker_bus_, name_, options);
  Collector<std::size_t> batch_sizes;
  Collector<int> handled;  // each job's n, every time it was handed over
  std::atomic<bool> failed_once{false};
  worker_->on_batch(batched, [&](std::span<const BatchJob> jobs) {
    batch_sizes.push(jobs.size());
    std::vector<core::Result<json::value>> outcomes;
    for (const auto& job : jobs) {
      const int n = static_cast<int>(job.params->at("n").as_int64());
      handled.push(n);
      if (n == 0) {  // the first job holds the only thread while the others queue
        std::unique_lock lock(hold_mu_);
        hold_cv_.wait_for(lock, 10s, [&] { return released_; });
      }
      if (n == 3 && !failed_once.exchange(true)) {
        outcomes.emplace_back(Error::of(ErrorCode::unavailable, "not yet"));
      } else {
        outcomes.emplace_back(json::value(n));
      }
    }
    return outcomes;
  });
  ASSERT_TRUE(worker_->start());
  const auto publish = [&](int n) {
    bus::Envelope job;
    job.routing_key = batched;
    job.body = R"({"jsonrpc":"2.0","method":")" + batched + R"(","params":{"n":)" + std::to_string(n) + "}}";
    ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, job, kTimeout),
              bus::PublishStatus::confirmed);
  };
  publish(0);
  ASSERT_EQ(handled.wait_for(1), 1U);
  for (int n = 1; n < 10; ++n) publish(n);
  std::this_thread::sleep_for(500ms);  // the nine reach the worker (prefetch 64) and wait for its thread
  {
    std::lock_guard lock(hold_mu_);
    released_ = true;
  }
  hold_cv_.notify_all();
  intercomm::testing::wait_until([&] { return worker_->stats().acked >= 10; });
  EXPECT_EQ(worker_->stats().acked, 10U);
  EXPECT_EQ(worker_->stats().retried_in_place, 1U) << "only job 3 failed, once";
  EXPECT_EQ(worker_->stats().requeued, 0U);
  const auto sizes = batch_sizes.items();
  EXPECT_GT(*std::max_element(sizes.begin(), sizes.end()), 1U)
      << "jobs that waited were handed over one by one";
  auto seen = handled.items();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 3), 2) << "job 3: failed, then retried alone";
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkerSuite, ::testing::Values("inproc", "inproc_journal", "amqp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace intercomm::worker
