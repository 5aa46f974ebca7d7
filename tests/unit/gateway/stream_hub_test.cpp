// The stream hub's seq order on one socket, with the in-process bus: live
// frames reordered, repeated or missing, catch-ups paced by the client, slow
// readers. A test worker serves list_messages from an inbox held here; the
// socket is a recording double of WsConnection.
#include "gateway/stream.hpp"  // first: the header is self-contained

#include "bus/inproc.hpp"
#include "bus/rpc_client.hpp"
#include "core/errors.hpp"
#include "worker/worker.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// A socket that records what it was sent. Writes complete at once, or only
// when the test lets them (`hold_writes`).
class RecordingConnection : public WsConnection, public std::enable_shared_from_this<RecordingConnection> {
 public:
  using WsConnection::send;

  bool send(std::string text, std::function<void()> written) override {
    std::function<void()> run_now;
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      frames_.push_back(std::move(text));
      ++unwritten_;
      max_unwritten_ = std::max(max_unwritten_, unwritten_);
      if (hold_writes_) {
        pending_.push_back(std::move(written));
      } else {
        --unwritten_;
        run_now = std::move(written);
      }
    }
    cv_.notify_all();
    if (run_now) std::thread([run_now] { run_now(); }).detach();  // as the socket's strand would, later
    return true;
  }

  void close(std::uint16_t code, std::string reason) override {
    std::lock_guard lock(mu_);
    closed_ = true;
    close_code_ = code;
    close_reason_ = std::move(reason);
    cv_.notify_all();
  }

  // As the real socket does, later on its strand: the frame being written
  // (the oldest held one) still completes, the rest are dropped.
  void close_with(std::uint16_t code, std::function<std::string()> reason) override {
    std::thread([self = shared_from_this(), code, reason = std::move(reason)] {
      const std::string text = reason();  // decided first, then the frame in flight completes
      std::function<void()> in_flight;
      {
        std::lock_guard lock(self->mu_);
        if (!self->pending_.empty()) {
          in_flight = std::move(self->pending_.front());
          self->pending_.clear();
          self->unwritten_ = 0;
        }
      }
      if (in_flight) in_flight();
      self->close(code, text);
    }).detach();
  }

  void after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    std::thread([delay, fn] {
      std::this_thread::sleep_for(delay);
      fn();
    }).detach();
  }

  void hold_writes(bool hold) {
    std::deque<std::function<void()>> release;
    {
      std::lock_guard lock(mu_);
      hold_writes_ = hold;
      if (!hold) release.swap(pending_);
      unwritten_ -= release.size();
    }
    for (auto& written : release) {
      if (written) written();
    }
  }

  // Completes up to `count` held writes, the way a reader that reads slowly would.
  void write_some(std::size_t count) {
    std::deque<std::function<void()>> release;
    {
      std::lock_guard lock(mu_);
      while (count-- > 0 && !pending_.empty()) {
        release.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      unwritten_ -= release.size();
    }
    for (auto& written : release) {
      if (written) written();
    }
  }

  // The seqs of the message frames so far, once `count` of them came (or 10 s).
  std::vector<std::uint64_t> seqs(std::size_t count) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [&] { return message_seqs_locked().size() >= count || closed_; });
    return message_seqs_locked();
  }

  // The first frame of `type`, once it came (or 10 s): empty when none.
  json::object frame_of_type(const std::string& type) {
    std::unique_lock lock(mu_);
    json::object found;
    cv_.wait_for(lock, 10s, [&] {
      for (const auto& text : frames_) {
        auto frame = json::parse(text).as_object();
        if (frame.at("type").as_string() == type) {
          found = frame;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  bool wait_closed() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return closed_; });
  }

  std::uint16_t close_code() {
    std::lock_guard lock(mu_);
    return close_code_;
  }
  std::string close_reason() {
    std::lock_guard lock(mu_);
    return close_reason_;
  }
  std::size_t max_unwritten() {
    std::lock_guard lock(mu_);
    return max_unwritten_;
  }

 private:
  std::vector<std::uint64_t> message_seqs_locked() const {
    std::vector<std::uint64_t> out;
    for (const auto& text : frames_) {
      auto frame = json::parse(text).as_object();
      if (frame.at("type").as_string() == "message")
        out.push_back(frame.at("seq").to_number<std::uint64_t>());
    }
    return out;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> frames_;
  bool hold_writes_ = false;
  std::deque<std::function<void()>> pending_;
  std::size_t unwritten_ = 0;
  std::size_t max_unwritten_ = 0;
  bool closed_ = false;
  std::uint16_t close_code_ = 0;
  std::string close_reason_;
};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (auto seq = first; seq <= last; ++seq) out.push_back(seq);
  return out;
}

class StreamHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = bus::make_inproc_broker();
    worker_bus_ = bus::connect_inproc(broker_);
    gateway_bus_ = bus::connect_inproc(broker_);
    worker_ =
        std::make_unique<worker::Worker>(*worker_bus_, "inbox_for_stream_test", worker::WorkerOptions{});
    worker_->on("list_messages", [this](const json::object& params, const worker::JobContext&) {
      return list_messages(params);
    });
    worker_->on("record_delivered", [this](const json::object& params, const worker::JobContext&) {
      std::lock_guard lock(mu_);
      receipts_.push_back(params);
      receipts_cv_.notify_all();
      return core::Result<json::value>(json::object{});
    });
    ASSERT_TRUE(worker_->start());
  }

  void TearDown() override {
    if (handler_) handler_->on_close();  // as the server does when a socket goes
    handler_.reset();
    worker_->stop();
  }

  // bob's inbox gets messages up to `last`.
  void store_up_to(std::uint64_t last) {
    std::lock_guard lock(mu_);
    while (inbox_size_ < last) ++inbox_size_;
  }

  // The test's list_messages: bob's inbox 1..inbox_size_, as the MTA pages it.
  core::Result<json::value> list_messages(const json::object& params) {
    std::lock_guard lock(mu_);
    ++list_calls_;
    const auto limit = static_cast<std::uint64_t>(params.at("limit").as_int64());
    json::array messages;
    json::object result;
    if (const auto* after = params.if_contains("after_seq")) {
      const auto from = after->to_number<std::uint64_t>();
      auto seq = from + 1;
      for (; seq <= inbox_size_ && messages.size() < limit; ++seq) messages.push_back(item(seq));
      result["next_seq"] = seq <= inbox_size_ ? json::value(seq - 1) : json::value(nullptr);
      result["after_seq"] = from;
    } else {
      for (auto seq = inbox_size_; seq >= 1 && messages.size() < limit; --seq) messages.push_back(item(seq));
      result["next_seq"] = nullptr;
    }
    result["messages"] = std::move(messages);
    result["next"] = nullptr;
    return result;
  }

  // Message `seq` of bob's inbox: from alice, but bob's own where the test says.
  json::object item(std::uint64_t seq) const {
    const bool own = sent_by_bob_.contains(seq);
    json::object message{{"seq", seq},
                         {"message_id", "M" + std::to_string(1000000 + seq)},
                         {"sender", own ? "bob" : "alice"},
                         {"receiver", own ? "alice" : "bob"},
                         {"body", "message " + std::to_string(seq)},
                         {"created_at", "2026-11-28T10:00:00.000Z"}};
    if (retracted_.contains(seq)) {
      message["body"] = "";
      message["retracted_at"] = "2026-11-28T10:00:01.000Z";
    }
    return message;
  }

  // The message ids of the record_delivered jobs the socket queued, once
  // `count` came (or what came in 10 s).
  std::vector<std::string> receipts(std::size_t count) {
    std::unique_lock lock(mu_);
    const auto ids = [&] {
      std::vector<std::string> out;
      for (const auto& job : receipts_) {
        for (const auto& item : job.at("messages").as_array()) {
          EXPECT_EQ(item.at("receiver"), "bob");
          EXPECT_EQ(item.at("sender"), "alice");
          out.emplace_back(item.at("message_id").as_string());
        }
      }
      return out;
    };
    receipts_cv_.wait_for(lock, 10s, [&] { return ids().size() >= count; });
    return ids();
  }

  // Opens bob's socket on a hub with `options` (gap waits shortened).
  void open(StreamCursor cursor = {}, StreamOptions options = {}) {
    if (options.gap_wait == StreamOptions{}.gap_wait) options.gap_wait = 50ms;
    hub_ = std::make_shared<StreamHub>(*gateway_bus_, options);
    auto rpc =
        bus::RpcClient::open(*gateway_bus_, [hub = hub_](bus::Envelope& e) { return hub->deliver(e); });
    ASSERT_TRUE(rpc);
    rpc_ = std::move(*rpc);
    hub_->set_rpc(*rpc_);
    handler_ = hub_->open("bob", std::move(cursor), "req-1");
    handler_->on_open(connection_);
  }

  // A live frame for bob, as the MDA publishes it.
  void live(std::uint64_t seq) {
    bus::Envelope envelope;
    envelope.routing_key = "user.bob";
    json::object message = item(seq);
    message.erase("seq");
    envelope.body = json::serialize(json::object{{"type", "message"}, {"seq", seq}, {"message", message}});
    hub_->deliver(envelope);
  }

  std::size_t list_calls() {
    std::lock_guard lock(mu_);
    return list_calls_;
  }

  std::shared_ptr<bus::InprocBroker> broker_;
  std::unique_ptr<bus::Bus> worker_bus_, gateway_bus_;
  std::unique_ptr<worker::Worker> worker_;
  std::shared_ptr<StreamHub> hub_;
  std::unique_ptr<bus::RpcClient> rpc_;
  std::shared_ptr<WsHandler> handler_;
  std::shared_ptr<RecordingConnection> connection_ = std::make_shared<RecordingConnection>();
  std::mutex mu_;
  std::uint64_t inbox_size_ = 0;
  std::size_t list_calls_ = 0;
  std::set<std::uint64_t> sent_by_bob_, retracted_;
  std::vector<json::object> receipts_;
  std::condition_variable receipts_cv_;
};

TEST_F(StreamHubTest, WithoutACursorTheSocketGoesLiveAtTheEndOfTheInbox) {
  store_up_to(3);
  open();
  EXPECT_EQ(connection_->frame_of_type("live").at("seq").to_number<std::uint64_t>(), 3U);
  store_up_to(4);
  live(4);
  EXPECT_EQ(connection_->seqs(1), (std::vector<std::uint64_t>{4}));
}

TEST_F(StreamHubTest, FramesThatOvertookOthersAreSentInSeqOrder) {
  open();
  ASSERT_FALSE(connection_->frame_of_type("live").empty());
  store_up_to(5);
  for (std::uint64_t seq : {3, 1, 5, 2, 4}) live(seq);
  EXPECT_EQ(connection_->seqs(5), range(1, 5));
}

TEST_F(StreamHubTest, RepeatedFramesAreDroppedAndStaleOnesIgnored) {
  open();
  ASSERT_FALSE(connection_->frame_of_type("live").empty());
  store_up_to(3);
  for (std::uint64_t seq : {1, 1, 2, 1, 2, 3, 3}) live(seq);
  EXPECT_EQ(connection_->seqs(3), range(1, 3));
  store_up_to(4);
  live(4);
  EXPECT_EQ(connection_->seqs(4), range(1, 4)) << "nothing after the repeats but the next seq";
}

TEST_F(StreamHubTest, AHoleThatStaysOpenIsFilledFromTheInbox) {
  store_up_to(2);
  open();
  ASSERT_EQ(connection_->frame_of_type("live").at("seq").to_number<std::uint64_t>(), 2U);
  const auto calls_before = list_calls();
  store_up_to(6);
  live(6);  // 3, 4 and 5 never come live (a lost hop)
  EXPECT_EQ(connection_->seqs(4), range(3, 6));
  EXPECT_GT(list_calls(), calls_before) << "the hole was read from the inbox";
}

TEST_F(StreamHubTest, ResumingAfterASeqReplaysExactlyTheRestThenGoesLive) {
  store_up_to(5);
  open(StreamCursor{2, std::nullopt});
  EXPECT_EQ(connection_->seqs(3), range(3, 5));
  EXPECT_EQ(connection_->frame_of_type("replayed").at("count").to_number<std::uint64_t>(), 3U);
  EXPECT_EQ(connection_->frame_of_type("live").at("seq").to_number<std::uint64_t>(), 5U);
  store_up_to(6);
  live(5);  // already replayed
  live(6);
  EXPECT_EQ(connection_->seqs(4), range(3, 6));
}

// What a catch-up hands over is delivered: the socket queues one
// record_delivered job per page read, with the messages bob received (not
// his own, not retracted ones); live frames are the MDA's to count.
TEST_F(StreamHubTest, ACatchUpReportsTheMessagesItDeliveredPerPage) {
  sent_by_bob_ = {4};
  retracted_ = {5};
  store_up_to(12);
  StreamOptions options;
  options.page = 5;
  open(StreamCursor{2, std::nullopt}, options);
  EXPECT_EQ(connection_->seqs(10), range(3, 12));
  std::vector<std::string> expected;
  for (std::uint64_t seq : {3, 6, 7, 8, 9, 10, 11, 12}) expected.push_back("M" + std::to_string(1000000 + seq));
  EXPECT_EQ(receipts(expected.size()), expected);
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(receipts_.size(), 2U) << "one job per page (3-7, 8-12)";
  }
  store_up_to(13);
  live(13);
  EXPECT_EQ(connection_->seqs(11), range(3, 13));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(receipts(expected.size()).size(), expected.size()) << "a live frame is not reported by the gateway";
}

TEST_F(StreamHubTest, ACursorPastTheEndOfTheInboxIsRefused) {
  store_up_to(5);
  open(StreamCursor{9, std::nullopt});
  ASSERT_TRUE(connection_->wait_closed());
  EXPECT_EQ(connection_->close_code(), kClosePolicyViolation);
  EXPECT_NE(connection_->close_reason().find("last seq 5"), std::string::npos) << connection_->close_reason();
}

TEST_F(StreamHubTest, ALongCatchUpIsPacedByWhatTheClientRead) {
  store_up_to(1000);
  connection_->hold_writes(true);
  StreamOptions options;
  options.page = 100;
  options.low_water = 32;
  options.max_unwritten = 256;
  open(StreamCursor{0, std::nullopt}, options);
  std::vector<std::uint64_t> seqs;
  for (int turns = 0; turns < 10000 && seqs.size() < 1000; ++turns) {
    connection_->write_some(20);  // a reader taking 20 frames at a time
    std::this_thread::sleep_for(1ms);
    seqs = connection_->seqs(0);
  }
  connection_->hold_writes(false);
  EXPECT_EQ(connection_->seqs(1000), range(1, 1000));
  EXPECT_LE(connection_->max_unwritten(), options.low_water + options.page + 2)
      << "a page was read before the client had room for it";
  EXPECT_EQ(connection_->close_code(), 0) << connection_->close_reason();
}

TEST_F(StreamHubTest, AReaderThatFallsBehindLiveTrafficIsClosedWithTheSeqToResumeFrom) {
  StreamOptions options;
  options.max_unwritten = 8;
  open(StreamCursor{}, options);
  ASSERT_FALSE(connection_->frame_of_type("live").empty());
  connection_->hold_writes(true);
  store_up_to(3);
  for (std::uint64_t seq : {1, 2, 3}) live(seq);
  connection_->write_some(100);  // the client read 1, 2, 3 (and the live frame)
  store_up_to(20);
  for (std::uint64_t seq = 4; seq <= 20; ++seq) live(seq);  // and then nothing more
  ASSERT_TRUE(connection_->wait_closed());
  EXPECT_EQ(connection_->close_code(), kCloseTryAgainLater);
  // 1-3 were read; 4 was being written when the socket gave up, so it reaches the client too.
  EXPECT_EQ(connection_->close_reason(), "too slow: resume with after_seq=4");
}

// A client's frames go to the frame handler one at a time, in order: the
// next waits until the handler says it is done with the one before; frames
// piling up past 256 close the socket (1008).
TEST_F(StreamHubTest, AClientsFramesAreHandledOneAtATimeAndAFloodCloses) {
  open();
  std::mutex mu;
  std::vector<std::string> seen;
  std::vector<std::function<void()>> dones;
  hub_->set_frame_handler([&](const std::string& user, const std::string&, std::string_view text,
                              std::function<void(std::string)>, std::function<void()> done) {
    EXPECT_EQ(user, "bob");
    std::lock_guard lock(mu);
    seen.emplace_back(text);
    dones.push_back(std::move(done));
  });
  const auto handled = [&] {
    std::lock_guard lock(mu);
    return seen;
  };
  const auto finish = [&](std::size_t i) {
    std::function<void()> done;
    {
      std::lock_guard lock(mu);
      done = dones.at(i);
    }
    done();
  };
  handler_->on_text("a");
  handler_->on_text("b");
  handler_->on_text("c");
  EXPECT_EQ(handled(), (std::vector<std::string>{"a"})) << "b waits for a";
  finish(0);
  EXPECT_EQ(handled(), (std::vector<std::string>{"a", "b"}));
  finish(1);
  EXPECT_EQ(handled(), (std::vector<std::string>{"a", "b", "c"}));
  // c is still being handled: 256 frames may wait behind it, one more closes.
  for (int i = 0; i < 256; ++i) handler_->on_text("x");
  EXPECT_EQ(connection_->close_code(), 0);
  handler_->on_text("one too many");
  EXPECT_EQ(connection_->close_code(), kClosePolicyViolation);
}

}  // namespace
}  // namespace intercomm::gateway
