// One behavioural suite for every bus backend: in-process and RabbitMQ.
#include "bus/bus.hpp"  // first: the header is self-contained

#include "bus/topology.hpp"
#include "support/bus_backends.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

namespace intercomm::bus {
namespace {

using intercomm::testing::BusFactory;
using intercomm::testing::Collector;
using intercomm::testing::unique_name;
using namespace std::chrono_literals;

constexpr auto kTimeout = 10s;

class BusConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BusFactory>(GetParam());
    bus_ = factory_->connect();
    ASSERT_NE(bus_, nullptr);
    queue_ = unique_name("test_q");
    key_ = unique_name("job");
  }

  // Declares this test's queue bound to inter_comm with this test's key.
  void declare(std::uint32_t delivery_limit = 0, QueueType type = QueueType::quorum) {
    ASSERT_TRUE(bus_->declare_queue(
        QueueSpec{queue_, {key_}, type, delivery_limit, std::nullopt, {}, {}, {}, false}));
  }

  Envelope job(std::string body) {
    Envelope envelope;
    envelope.routing_key = key_;
    envelope.body = std::move(body);
    return envelope;
  }

  // Consumes `queue` into a collector of deliveries.
  std::unique_ptr<Subscription> collect(const std::string& queue, Collector<std::shared_ptr<Delivery>>& into,
                                        std::uint16_t prefetch = 16, Bus* bus = nullptr) {
    auto subscription =
        (bus ? bus : bus_.get())->consume(queue, prefetch, [&into](std::unique_ptr<Delivery> d) {
          into.push(std::shared_ptr<Delivery>(std::move(d)));
        });
    EXPECT_NE(subscription, nullptr);
    return subscription;
  }

  // Waits for a message with `body` in dead_letters and acks it; other
  // tests' dead letters are put back. Returns its envelope, or nullopt.
  std::optional<Envelope> find_dead_letter(const std::string& body) {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Envelope> found;
    auto subscription = bus_->consume(std::string(kDeadLetterQueue), 8, [&](std::unique_ptr<Delivery> d) {
      if (d->message().body == body) {
        std::lock_guard lock(mu);
        found = d->message();
        d->ack();
        cv.notify_all();
      } else {
        d->reject(true);
      }
    });
    std::unique_lock lock(mu);
    cv.wait_for(lock, kTimeout, [&] { return found.has_value(); });
    lock.unlock();
    subscription.reset();
    return found;
  }

  std::unique_ptr<BusFactory> factory_;
  std::unique_ptr<Bus> bus_;
  std::string queue_;
  std::string key_;
};

TEST_P(BusConformance, ConfirmedPublishReachesTheBoundQueueIntact) {
  declare();
  Envelope sent = job(R"({"jsonrpc":"2.0","method":"x","params":{"a":{"b":1}}})");
  sent.reply_to = "somewhere";
  sent.correlation_id = "corr-1";
  sent.headers = {{"x-request-id", "req-1"}, {"x-user", "alice"}};
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, sent, kTimeout), PublishStatus::confirmed);

  Collector<std::shared_ptr<Delivery>> got;
  auto subscription = collect(queue_, got);
  ASSERT_EQ(got.wait_for(1), 1U);
  const auto& received = got.items()[0]->message();
  EXPECT_EQ(received.body, sent.body);
  EXPECT_EQ(received.routing_key, key_);
  EXPECT_EQ(received.reply_to, "somewhere");
  EXPECT_EQ(received.correlation_id, "corr-1");
  EXPECT_EQ(received.headers.at("x-request-id"), "req-1");
  EXPECT_EQ(received.headers.at("x-user"), "alice");
  EXPECT_FALSE(got.items()[0]->redelivered());
  got.items()[0]->ack();
}

TEST_P(BusConformance, PublishWithNoBindingIsUnroutable) {
  Envelope lost;
  lost.routing_key = unique_name("nobody_serves");
  lost.body = "{}";
  EXPECT_EQ(publish_and_wait(*bus_, kExchange, lost, kTimeout), PublishStatus::unroutable);
  lost.routing_key = unique_name("no_such_queue");
  EXPECT_EQ(publish_and_wait(*bus_, "", lost, kTimeout), PublishStatus::unroutable);
}

TEST_P(BusConformance, DeclaringTwiceIsHarmless) {
  declare();
  declare();
  EXPECT_EQ(publish_and_wait(*bus_, kExchange, job("once"), kTimeout), PublishStatus::confirmed);
  Collector<std::shared_ptr<Delivery>> got;
  auto subscription = collect(queue_, got);
  ASSERT_EQ(got.wait_for(1), 1U);
  got.items()[0]->ack();
  EXPECT_EQ(got.wait_for(2, 300ms), 1U) << "a double binding delivered the message twice";
}

TEST_P(BusConformance, RejectedWithRequeueComesBackMarkedRedelivered) {
  declare();
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, job("again"), kTimeout), PublishStatus::confirmed);
  Collector<std::shared_ptr<Delivery>> got;
  auto subscription = collect(queue_, got);
  ASSERT_EQ(got.wait_for(1), 1U);
  got.items()[0]->reject(true);
  ASSERT_EQ(got.wait_for(2), 2U);
  const auto second = got.items()[1];
  EXPECT_EQ(second->message().body, "again");
  EXPECT_TRUE(second->redelivered());
  EXPECT_GE(second->delivery_count(), 1U);
  second->ack();
}

TEST_P(BusConformance, UnsettledDeliveriesReturnWhenTheConsumerStops) {
  declare();
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, job("held"), kTimeout), PublishStatus::confirmed);
  {
    Collector<std::shared_ptr<Delivery>> first;
    auto subscription = collect(queue_, first);
    ASSERT_EQ(first.wait_for(1), 1U);
    subscription.reset();  // stops consuming with the delivery unsettled
  }
  auto other = factory_->connect();
  Collector<std::shared_ptr<Delivery>> second;
  auto subscription = collect(queue_, second, 16, other.get());
  ASSERT_EQ(second.wait_for(1), 1U);
  EXPECT_EQ(second.items()[0]->message().body, "held");
  EXPECT_TRUE(second.items()[0]->redelivered());
  second.items()[0]->ack();
}

// Acks settle exactly their own deliveries, in whatever order they come (the
// AMQP backend sends the ones that, with all before them, are all the channel
// has in hand as one ack with `multiple`): the deliveries left unsettled, and
// only those, come back once the consumer stops.
TEST_P(BusConformance, AcksInAnyOrderSettleTheirOwnDeliveriesOnly) {
  declare();
  constexpr int kCount = 20;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(publish_and_wait(*bus_, kExchange, job(std::to_string(i)), kTimeout), PublishStatus::confirmed);
  }
  const std::set<std::string> unsettled{"5", "9", "19"};
  {
    Collector<std::shared_ptr<Delivery>> got;
    auto subscription = collect(queue_, got, 32);
    ASSERT_EQ(got.wait_for(kCount), static_cast<std::size_t>(kCount));
    std::map<std::string, std::shared_ptr<Delivery>> by_body;
    for (auto& delivery : got.items()) by_body[delivery->message().body] = delivery;
    ASSERT_EQ(by_body.size(), static_cast<std::size_t>(kCount));
    // Oldest first behind a gap, then newest first, then the oldest of all last.
    for (const char* body : {"2", "1", "3", "4", "6", "8", "7", "18", "17", "16", "15", "14", "13", "12", "11",
                             "10", "0"}) {
      by_body.at(body)->ack();
    }
    std::this_thread::sleep_for(300ms);  // the acks reach the broker before the channel closes
    subscription.reset();
  }
  auto other = factory_->connect();
  Collector<std::shared_ptr<Delivery>> again;
  auto subscription = collect(queue_, again, 32, other.get());
  ASSERT_EQ(again.wait_for(unsettled.size()), unsettled.size());
  std::this_thread::sleep_for(500ms);  // and nothing more
  std::set<std::string> back;
  for (auto& delivery : again.items()) {
    back.insert(delivery->message().body);
    EXPECT_TRUE(delivery->redelivered());
    delivery->ack();
  }
  EXPECT_EQ(again.size(), unsettled.size());
  EXPECT_EQ(back, unsettled);
}

TEST_P(BusConformance, CompetingConsumersShareTheQueueAndSeeEachMessageOnce) {
  declare();
  auto other = factory_->connect();
  ASSERT_NE(other, nullptr);
  Collector<std::string> seen_a;
  Collector<std::string> seen_b;
  const auto consumer = [](Collector<std::string>& into) {
    return [&into](std::unique_ptr<Delivery> d) {
      into.push(d->message().body);
      d->ack();
    };
  };
  auto a = bus_->consume(queue_, 4, consumer(seen_a));
  auto b = other->consume(queue_, 4, consumer(seen_b));
  ASSERT_TRUE(a && b);
  constexpr int kCount = 200;
  Collector<PublishStatus> confirms;
  for (int i = 0; i < kCount; ++i) {
    bus_->publish(kExchange, job(std::to_string(i)), kTimeout, [&](PublishStatus s) { confirms.push(s); });
  }
  ASSERT_EQ(confirms.wait_for(kCount), static_cast<std::size_t>(kCount));
  for (auto status : confirms.items()) EXPECT_EQ(status, PublishStatus::confirmed);

  const auto deadline = Clock::now() + kTimeout;
  while (seen_a.size() + seen_b.size() < kCount && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  std::multiset<std::string> all;
  for (auto& body : seen_a.items()) all.insert(body);
  for (auto& body : seen_b.items()) all.insert(body);
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(all.count(std::to_string(i)), 1U) << i;
  EXPECT_GT(seen_a.size(), 0U);
  EXPECT_GT(seen_b.size(), 0U);
}

TEST_P(BusConformance, AHashExchangeSendsEachKeyToOneLaneInPublishOrder) {
  const std::string lanes_exchange = unique_name("test_lanes");
  ASSERT_TRUE(bus_->declare_exchange(ExchangeSpec{
      lanes_exchange, ExchangeType::consistent_hash, "x-order-key", std::string(kExchange), {key_}}));
  std::vector<std::string> lanes;
  for (int i = 0; i < 4; ++i) {
    lanes.push_back(queue_ + "_lane" + std::to_string(i));
    ASSERT_TRUE(bus_->declare_queue(
        QueueSpec{lanes.back(), {"10"}, QueueType::quorum, 0, std::nullopt, {}, {}, lanes_exchange, true}));
  }
  // 20 keys, 10 messages each, interleaved; the body says which and in what order.
  constexpr int kKeys = 20, kEach = 10;
  Collector<PublishStatus> confirms;
  for (int n = 0; n < kEach; ++n) {
    for (int k = 0; k < kKeys; ++k) {
      auto envelope = job(std::to_string(k) + "/" + std::to_string(n));
      envelope.headers["x-order-key"] = "conversation-" + std::to_string(k);
      bus_->publish(kExchange, std::move(envelope), kTimeout, [&](PublishStatus s) { confirms.push(s); });
    }
  }
  ASSERT_EQ(confirms.wait_for(kKeys * kEach), static_cast<std::size_t>(kKeys * kEach));
  for (auto status : confirms.items()) ASSERT_EQ(status, PublishStatus::confirmed);

  std::vector<Collector<std::string>> seen(lanes.size());
  std::vector<std::unique_ptr<Subscription>> subscriptions;
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    subscriptions.push_back(bus_->consume(lanes[i], 32, [&seen, i](std::unique_ptr<Delivery> d) {
      seen[i].push(d->message().body);
      d->ack();
    }));
    ASSERT_NE(subscriptions.back(), nullptr);
  }
  const auto deadline = Clock::now() + kTimeout;
  const auto total = [&] {
    std::size_t n = 0;
    for (auto& lane : seen) n += lane.size();
    return n;
  };
  while (total() < kKeys * kEach && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(total(), static_cast<std::size_t>(kKeys * kEach));
  std::map<std::string, std::size_t> lane_of_key;
  std::size_t lanes_used = 0;
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    std::map<std::string, int> next;  // key -> the n expected next in this lane
    const auto bodies = seen[i].items();
    lanes_used += !bodies.empty();
    for (const auto& body : bodies) {
      const std::string k = body.substr(0, body.find('/'));
      const int n = std::stoi(body.substr(body.find('/') + 1));
      EXPECT_TRUE(lane_of_key.emplace(k, i).first->second == i) << "key " << k << " in two lanes";
      EXPECT_EQ(n, next[k]++) << "key " << k << " out of publish order in lane " << i;
    }
  }
  EXPECT_EQ(lane_of_key.size(), static_cast<std::size_t>(kKeys));
  EXPECT_GT(lanes_used, 1U) << "20 keys all hashed to one lane";
}

TEST_P(BusConformance, ASingleActiveConsumerQueueFeedsOneConsumerUntilItGoes) {
  ASSERT_TRUE(
      bus_->declare_queue(QueueSpec{queue_, {key_}, QueueType::quorum, 0, std::nullopt, {}, {}, {}, true}));
  auto other = factory_->connect();
  ASSERT_NE(other, nullptr);
  Collector<std::string> seen_a, seen_b;
  const auto consumer = [](Collector<std::string>& into) {
    return [&into](std::unique_ptr<Delivery> d) {
      d->ack();  // first: a delivery counted as seen is settled
      into.push(d->message().body);
    };
  };
  auto a = bus_->consume(queue_, 4, consumer(seen_a));
  ASSERT_NE(a, nullptr);
  auto b = other->consume(queue_, 4, consumer(seen_b));
  ASSERT_NE(b, nullptr);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(publish_and_wait(*bus_, kExchange, job("first " + std::to_string(i)), kTimeout),
              PublishStatus::confirmed);
  }
  ASSERT_EQ(seen_a.wait_for(50), 50U);
  EXPECT_EQ(seen_b.size(), 0U) << "the second consumer is standing by";
  a.reset();  // the active consumer goes: the other takes over
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(publish_and_wait(*bus_, kExchange, job("second " + std::to_string(i)), kTimeout),
              PublishStatus::confirmed);
  }
  ASSERT_EQ(seen_b.wait_for(10), 10U);
  EXPECT_EQ(seen_b.items().front(), "second 0");
}

TEST_P(BusConformance, PrefetchBoundsUnsettledDeliveries) {
  declare();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(publish_and_wait(*bus_, kExchange, job(std::to_string(i)), kTimeout), PublishStatus::confirmed);
  }
  Collector<std::shared_ptr<Delivery>> got;
  auto subscription = collect(queue_, got, 2);
  ASSERT_EQ(got.wait_for(2), 2U);
  EXPECT_EQ(got.wait_for(3, 300ms), 2U) << "more than prefetch deliveries in hand";
  got.items()[0]->ack();
  EXPECT_EQ(got.wait_for(3), 3U);
  for (auto& d : got.items()) d->ack();
  EXPECT_EQ(got.wait_for(5), 5U);
  for (auto& d : got.items()) d->ack();
}

TEST_P(BusConformance, RejectedWithoutRequeueIsDeadLettered) {
  declare();
  const std::string body = unique_name("poison");
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, job(body), kTimeout), PublishStatus::confirmed);
  Collector<std::shared_ptr<Delivery>> got;
  auto subscription = collect(queue_, got);
  ASSERT_EQ(got.wait_for(1), 1U);
  got.items()[0]->reject(false);
  auto dead = find_dead_letter(body);
  ASSERT_TRUE(dead.has_value()) << "not in " << kDeadLetterQueue;
  EXPECT_EQ(dead->headers["x-first-death-reason"], "rejected");
  EXPECT_EQ(dead->headers["x-first-death-queue"], queue_);
}

TEST_P(BusConformance, DeliveryLimitDeadLettersAMessageThatKeepsFailing) {
  declare(/*delivery_limit=*/2);
  const std::string body = unique_name("keeps_failing");
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, job(body), kTimeout), PublishStatus::confirmed);
  Collector<int> attempts;
  auto subscription = bus_->consume(queue_, 1, [&](std::unique_ptr<Delivery> d) {
    attempts.push(1);
    d->reject(true);
  });
  auto dead = find_dead_letter(body);
  ASSERT_TRUE(dead.has_value()) << "never dead-lettered after " << attempts.size() << " attempts";
  EXPECT_GE(attempts.size(), 2U);
  EXPECT_LE(attempts.size(), 4U);
}

TEST_P(BusConformance, ExpiredMessagesDieInTheQueue) {
  declare();
  const std::string body = unique_name("stale");
  Envelope stale = job(body);
  stale.expiration = 50ms;
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, stale, kTimeout), PublishStatus::confirmed);
  std::this_thread::sleep_for(400ms);
  ASSERT_EQ(publish_and_wait(*bus_, kExchange, job("fresh"), kTimeout), PublishStatus::confirmed);
  Collector<std::shared_ptr<Delivery>> got;
  auto subscription = collect(queue_, got);
  ASSERT_GE(got.wait_for(1), 1U);
  EXPECT_EQ(got.wait_for(2, 300ms), 1U);
  EXPECT_EQ(got.items()[0]->message().body, "fresh");
  for (auto& d : got.items()) d->ack();
}

TEST_P(BusConformance, ReplyQueueReceivesWhatIsSentToItsName) {
  Collector<Envelope> replies;
  ASSERT_TRUE(bus_->open_reply_queue([&](Envelope e) { replies.push(std::move(e)); }));
  EXPECT_FALSE(bus_->open_reply_queue([](Envelope) {})) << "a second reply queue on one connection";
  const std::string name = bus_->reply_queue();
  ASSERT_FALSE(name.empty());

  auto worker_side = factory_->connect();
  Envelope reply;
  reply.routing_key = name;
  reply.correlation_id = "c-9";
  reply.body = R"({"jsonrpc":"2.0","result":1,"id":"c-9"})";
  reply.persistent = false;
  ASSERT_EQ(publish_and_wait(*worker_side, "", reply, kTimeout), PublishStatus::confirmed);
  ASSERT_EQ(replies.wait_for(1), 1U);
  EXPECT_EQ(replies.items()[0].correlation_id, "c-9");
  EXPECT_EQ(replies.items()[0].body, reply.body);
}

TEST_P(BusConformance, ReplyQueueBoundToTheLiveExchangeGetsItsKeysOnlyUntilUnbound) {
  Collector<Envelope> received;
  ASSERT_TRUE(bus_->open_reply_queue([&](Envelope e) { received.push(std::move(e)); }));
  const std::string key = "user." + unique_name("alice");
  const auto bind = [&](bool on) {
    Collector<bool> done;
    bus_->bind_reply_queue(std::string(kLiveExchange), key, on,
                           [&](core::Result<void> r) { done.push(bool(r)); });
    EXPECT_EQ(done.wait_for(1), 1U);
    return done.size() == 1 && done.items()[0];
  };
  const auto live = [&](std::string body, std::string routing_key) {
    Envelope envelope;
    envelope.routing_key = std::move(routing_key);
    envelope.body = std::move(body);
    envelope.persistent = false;
    return envelope;
  };
  auto mda_side = factory_->connect();
  EXPECT_EQ(publish_and_wait(*mda_side, kLiveExchange, live("before", key), kTimeout),
            PublishStatus::unroutable)
      << "nobody bound: offline";
  ASSERT_TRUE(bind(true));
  ASSERT_TRUE(bind(true)) << "binding twice is harmless";
  EXPECT_EQ(publish_and_wait(*mda_side, kLiveExchange, live("for alice", key), kTimeout),
            PublishStatus::confirmed);
  EXPECT_EQ(publish_and_wait(*mda_side, kLiveExchange, live("for bob", key + "_bob"), kTimeout),
            PublishStatus::unroutable);
  ASSERT_EQ(received.wait_for(1), 1U);
  EXPECT_EQ(received.items()[0].body, "for alice");
  EXPECT_EQ(received.items()[0].routing_key, key);
  ASSERT_TRUE(bind(false));
  EXPECT_EQ(publish_and_wait(*mda_side, kLiveExchange, live("after", key), kTimeout),
            PublishStatus::unroutable);
  EXPECT_EQ(received.size(), 1U);
}

TEST_P(BusConformance, ADelayQueueHandsItsMessagesBackAfterItsTtl) {
  declare();
  QueueSpec delay;
  delay.name = unique_name("test_delay");
  delay.type = QueueType::classic;
  delay.delivery_limit = 0;
  delay.message_ttl = 300ms;
  delay.dead_letter_exchange = std::string(kExchange);
  delay.dead_letter_routing_key = key_;
  ASSERT_TRUE(bus_->declare_queue(delay));
  Collector<std::string> bodies;
  auto subscription = bus_->consume(queue_, 10, [&](std::unique_ptr<Delivery> d) {
    bodies.push(d->message().body);
    d->ack();
  });
  Envelope retry;
  retry.routing_key = delay.name;  // the default exchange: straight into the delay queue
  retry.body = "retry me";
  const auto sent = Clock::now();
  ASSERT_EQ(publish_and_wait(*bus_, "", retry, kTimeout), PublishStatus::confirmed);
  ASSERT_EQ(bodies.wait_for(1, 10s), 1U);
  EXPECT_GE(Clock::now() - sent, 250ms) << "it must wait in the delay queue";
  EXPECT_EQ(bodies.items()[0], "retry me");
}

TEST_P(BusConformance, ThousandsOfPublishesInFlightAreAllConfirmed) {
  declare();
  constexpr int kCount = 3000;
  Collector<PublishStatus> confirms;
  for (int i = 0; i < kCount; ++i) {
    bus_->publish(kExchange, job(std::to_string(i)), kTimeout, [&](PublishStatus s) { confirms.push(s); });
  }
  ASSERT_EQ(confirms.wait_for(kCount), static_cast<std::size_t>(kCount));
  for (auto status : confirms.items()) ASSERT_EQ(status, PublishStatus::confirmed);
  Collector<std::string> bodies;
  auto subscription = bus_->consume(queue_, 256, [&](std::unique_ptr<Delivery> d) {
    bodies.push(d->message().body);
    d->ack();
  });
  ASSERT_EQ(bodies.wait_for(kCount), static_cast<std::size_t>(kCount));
  std::set<std::string> unique;
  for (auto& body : bodies.items()) unique.insert(body);
  EXPECT_EQ(unique.size(), static_cast<std::size_t>(kCount));
}

TEST_P(BusConformance, ConsumingAMissingQueueFails) {
  auto subscription = bus_->consume(unique_name("missing"), 1, [](std::unique_ptr<Delivery>) {});
  EXPECT_EQ(subscription, nullptr);
  // The connection is still usable afterwards.
  declare();
  EXPECT_EQ(publish_and_wait(*bus_, kExchange, job("after"), kTimeout), PublishStatus::confirmed);
}

INSTANTIATE_TEST_SUITE_P(Backends, BusConformance, ::testing::Values("inproc", "inproc_journal", "amqp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace intercomm::bus
