#include "bus/rpc_client.hpp"  // first: the header is self-contained

#include "bus/inproc.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

namespace intercomm::bus {
namespace {

// An in-process bus whose publish confirms wait until the test releases them,
// as a broker's confirm may arrive after its caller is gone.
class HeldConfirmsBus : public Bus {
 public:
  HeldConfirmsBus() : inner_(connect_inproc(make_inproc_broker())) {}

  void release_confirms(PublishStatus status) {
    std::vector<PublishCallback> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& done : held) done(status);
  }

  void publish(std::string_view, Envelope, Clock::duration, PublishCallback done) override {
    std::lock_guard lock(mu_);
    held_.push_back(std::move(done));
  }
  core::Result<void> declare_queue(const QueueSpec& spec) override { return inner_->declare_queue(spec); }
  core::Result<void> declare_exchange(const ExchangeSpec& spec) override { return inner_->declare_exchange(spec); }
  core::Result<void> unbind(std::string_view source, std::string_view destination, std::string_view key,
                            bool to_exchange) override {
    return inner_->unbind(source, destination, key, to_exchange);
  }
  void publish_reply(Envelope message) override { inner_->publish_reply(std::move(message)); }
  std::unique_ptr<Subscription> consume(const std::string& queue, std::uint16_t prefetch,
                                        DeliveryHandler handler) override {
    return inner_->consume(queue, prefetch, std::move(handler));
  }
  core::Result<void> open_reply_queue(std::function<void(Envelope)> on_reply) override {
    return inner_->open_reply_queue(std::move(on_reply));
  }
  std::string reply_queue() const override { return inner_->reply_queue(); }
  void bind_reply_queue(std::string exchange, std::string key, bool bind,
                        std::function<void(core::Result<void>)> done) override {
    inner_->bind_reply_queue(std::move(exchange), std::move(key), bind, std::move(done));
  }
  bool connected() const override { return inner_->connected(); }
  core::Result<std::uint64_t> queue_depth(const std::string& queue) override { return inner_->queue_depth(queue); }
  void on_reconnected(std::function<void()> callback) override { inner_->on_reconnected(std::move(callback)); }

 private:
  std::unique_ptr<Bus> inner_;
  std::mutex mu_;
  std::vector<PublishCallback> held_;
};

TEST(RpcClient, AFailedPublishFinishesTheCallWithTheBusError) {
  HeldConfirmsBus bus;
  auto client = RpcClient::open(bus);
  ASSERT_TRUE(client);
  std::vector<RpcResult> results;
  (*client)->call("send_message", {}, std::chrono::seconds(30), {},
                  [&](RpcResult result) { results.push_back(std::move(result)); });
  EXPECT_TRUE(results.empty());
  bus.release_confirms(PublishStatus::unroutable);
  ASSERT_EQ(results.size(), 1U);
  ASSERT_FALSE(results[0]);
  EXPECT_EQ(results[0].error().code, core::ErrorCode::unavailable);
  EXPECT_NE(results[0].error().message.find("send_message"), std::string::npos);
}

// A confirm that arrives after the client was destroyed reaches nothing (the
// sanitizer build reports a use after free if it did), and each call still
// finished exactly once: "client closed" when the client went.
TEST(RpcClient, AConfirmAfterTheClientIsGoneIsIgnored) {
  HeldConfirmsBus bus;
  std::vector<RpcResult> results;
  {
    auto client = RpcClient::open(bus);
    ASSERT_TRUE(client);
    for (int i = 0; i < 3; ++i) {
      (*client)->call("list_messages", {}, std::chrono::seconds(30), {},
                      [&](RpcResult result) { results.push_back(std::move(result)); });
    }
  }
  ASSERT_EQ(results.size(), 3U);
  for (const auto& result : results) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, core::ErrorCode::unavailable);
  }
  bus.release_confirms(PublishStatus::failed);
  EXPECT_EQ(results.size(), 3U);
}

}  // namespace
}  // namespace intercomm::bus
