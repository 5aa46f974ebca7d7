// The gateway's block-list cache with the in-process bus: one RPC per
// receiver while its list is known, shared by concurrent checks, dropped by
// the MTA's blocks signal (and never kept when the signal overtook the RPC).
// A test worker serves list_blocks from lists held here.
#include "gateway/blocks.hpp"  // first: the header is self-contained

#include "bus/inproc.hpp"
#include "bus/topology.hpp"
#include "jobs/jobs.hpp"
#include "worker/worker.hpp"

#include <gtest/gtest.h>
#include <boost/json/serialize.hpp>

#include <condition_variable>
#include <future>
#include <mutex>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class BlockListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = bus::make_inproc_broker();
    worker_bus_ = bus::connect_inproc(broker_);
    gateway_bus_ = bus::connect_inproc(broker_);
    worker_ = std::make_unique<worker::Worker>(*worker_bus_, "blocks_for_test", worker::WorkerOptions{});
    worker_->on(std::string(jobs::ListBlocks::name), [this](const json::object& params, const worker::JobContext&) {
      return list_blocks(params);
    });
    ASSERT_TRUE(worker_->start());
    blocks_ = std::make_shared<BlockList>(*gateway_bus_, options(2s));
    auto rpc = bus::RpcClient::open(*gateway_bus_, [blocks = blocks_](bus::Envelope& e) { return blocks->deliver(e); });
    ASSERT_TRUE(rpc);
    rpc_ = std::move(*rpc);
    blocks_->set_rpc(*rpc_);
    std::promise<core::Result<void>> bound;
    blocks_->start([&](core::Result<void> result) { bound.set_value(result); });
    ASSERT_TRUE(bound.get_future().get());
  }

  void TearDown() override { worker_->stop(); }

  static BlockListOptions options(std::chrono::milliseconds rpc_timeout,
                                  std::chrono::milliseconds patience = std::chrono::milliseconds(0)) {
    BlockListOptions options;
    options.rpc_timeout = rpc_timeout;
    options.patience = patience;
    return options;
  }

  core::Result<json::value> list_blocks(const json::object& params) {
    std::unique_lock lock(mu_);
    ++calls_;
    cv_.wait(lock, [&] { return !hold_; });
    json::array users;
    for (const auto& user : lists_[std::string(params.at("user").as_string())]) users.emplace_back(user);
    return json::object{{"blocks", std::move(users)}};
  }

  bool blocked(const std::string& receiver, const std::string& sender) {
    std::promise<core::Result<bool>> answer;
    blocks_->check(receiver, sender, [&](core::Result<bool> result) { answer.set_value(result); });
    auto result = answer.get_future().get();
    EXPECT_TRUE(result) << result.error().message;
    return result && *result;
  }

  void set_list(const std::string& user, std::vector<std::string> list) {
    std::lock_guard lock(mu_);
    lists_[user] = std::move(list);
  }

  // As the MTA tells every gateway after a change.
  void signal_changed(const std::string& user) {
    bus::Envelope signal = jobs::signal(user, json::object{{"type", "blocks"}, {"user", user}});
    signal.routing_key = std::string(jobs::kBlocksKey);
    ASSERT_EQ(bus::publish_and_wait(*worker_bus_, bus::kLiveExchange, std::move(signal), 2s),
              bus::PublishStatus::confirmed);
  }

  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

  std::shared_ptr<bus::InprocBroker> broker_;
  std::unique_ptr<bus::Bus> worker_bus_, gateway_bus_;
  std::unique_ptr<worker::Worker> worker_;
  std::unique_ptr<bus::RpcClient> rpc_;
  std::shared_ptr<BlockList> blocks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  int calls_ = 0;
  std::map<std::string, std::vector<std::string>> lists_;
};

TEST_F(BlockListTest, AReceiversListIsReadOnceThenAnsweredFromMemory) {
  set_list("bob", {"alice", "mallory"});
  EXPECT_TRUE(blocked("bob", "alice"));
  EXPECT_TRUE(blocked("bob", "mallory"));
  EXPECT_FALSE(blocked("bob", "carol"));
  EXPECT_FALSE(blocked("carol", "bob"));
  EXPECT_EQ(calls(), 2) << "one RPC for bob, one for carol";
  EXPECT_EQ(blocks_->lookups(), 2U);
}

TEST_F(BlockListTest, TheBlocksSignalMakesTheNextCheckReadTheListAgain) {
  EXPECT_FALSE(blocked("bob", "alice"));
  set_list("bob", {"alice"});
  EXPECT_FALSE(blocked("bob", "alice")) << "still the list read before";
  signal_changed("bob");
  // The signal is delivered on a bus thread: wait (bounded) until it was taken.
  bool now_blocked = false;
  for (int i = 0; i < 200 && !now_blocked; ++i) {
    now_blocked = blocked("bob", "alice");
    if (!now_blocked) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(now_blocked);
  signal_changed("carol");  // another user's change keeps bob's list
  const int before = calls();
  EXPECT_TRUE(blocked("bob", "alice"));
  EXPECT_EQ(calls(), before);
}

TEST_F(BlockListTest, ConcurrentChecksShareOneRpcAndAForgetDuringItIsNotCached) {
  set_list("bob", {"alice"});
  {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  std::vector<std::future<core::Result<bool>>> answers;
  std::vector<std::shared_ptr<std::promise<core::Result<bool>>>> promises;
  for (const char* sender : {"alice", "carol", "alice", "dave"}) {
    auto promise = std::make_shared<std::promise<core::Result<bool>>>();
    answers.push_back(promise->get_future());
    blocks_->check("bob", sender, [promise](core::Result<bool> result) { promise->set_value(result); });
    promises.push_back(promise);
  }
  for (int i = 0; i < 200 && calls() == 0; ++i) std::this_thread::sleep_for(5ms);
  blocks_->forget("bob");  // the list changed while it was being read
  {
    std::lock_guard lock(mu_);
    hold_ = false;
  }
  cv_.notify_all();
  std::vector<bool> got;
  for (auto& answer : answers) {
    auto result = answer.get();
    ASSERT_TRUE(result);
    got.push_back(*result);
  }
  EXPECT_EQ(got, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(calls(), 1) << "four checks, one RPC";
  EXPECT_TRUE(blocked("bob", "alice"));
  EXPECT_EQ(calls(), 2) << "the list read during a forget was not kept";
}

// Without an answer the check asks again until its patience is spent (as a
// send waits for the broker), then fails: it never lets a message through.
TEST_F(BlockListTest, NoAnswerIsAnErrorNotAPass) {
  worker_->stop();
  auto quick = std::make_shared<BlockList>(*gateway_bus_, options(200ms, 1s));
  quick->set_rpc(*rpc_);
  std::promise<core::Result<bool>> answer;
  quick->check("bob", "alice", [&](core::Result<bool> result) { answer.set_value(result); });
  auto result = answer.get_future().get();
  ASSERT_FALSE(result) << "an unknown list must not let a message through";
  const auto code = result.error().code;
  EXPECT_TRUE(code == core::ErrorCode::unavailable || code == core::ErrorCode::timeout) << result.error().message;
}

TEST_F(BlockListTest, AListThatCannotBeReadYetIsAskedAgainWithinPatience) {
  worker_->stop();
  auto patient = std::make_shared<BlockList>(*gateway_bus_, options(200ms, 20s));
  patient->set_rpc(*rpc_);
  set_list("bob", {"alice"});
  std::promise<core::Result<bool>> answer;
  patient->check("bob", "alice", [&](core::Result<bool> result) { answer.set_value(result); });
  auto future = answer.get_future();
  EXPECT_EQ(future.wait_for(600ms), std::future_status::timeout) << "no answer while nobody serves list_blocks";
  // The MTA is back: the check's next try gets the list.
  worker_ = std::make_unique<worker::Worker>(*worker_bus_, "blocks_for_test", worker::WorkerOptions{});
  worker_->on(std::string(jobs::ListBlocks::name), [this](const json::object& params, const worker::JobContext&) {
    return list_blocks(params);
  });
  ASSERT_TRUE(worker_->start());
  auto result = future.get();
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(*result);
}

}  // namespace
}  // namespace intercomm::gateway
