// The delivery contract end to end (DESIGN.md § Delivery contract), on
// `intercomm run` and on split mode with two MTAs, two MDAs and two gateways
// (senders on one gateway, the receiver's socket on the other): per-inbox seq,
// send order, gap-free sockets, resume, catch-up of any size, slow readers,
// sizes that agree end to end.
#include "core/ids.hpp"
#include "core/limits.hpp"
#include "core/message.hpp"
#include "support/deployment.hpp"
#include "support/http_client.hpp"
#include "support/ws_client.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <map>
#include <random>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::Client;
using intercomm::testing::Deployment;
using intercomm::testing::DeploymentOptions;
using intercomm::testing::WsClient;
using namespace std::chrono_literals;

constexpr const char* kSecret = "delivery-secret-0123456789abcdef0123456789abcdef";

// A message frame as the socket delivered it.
struct Frame {
  std::uint64_t seq = 0;
  std::string message_id;
  std::string sender;
  std::string body;
};

std::vector<std::uint64_t> one_to(std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t seq = 1; seq <= last; ++seq) out.push_back(seq);
  return out;
}

class Delivery : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = intercomm::core::new_message_id();
    bob_ = user("bob");
  }

  void deploy(DeploymentOptions options = {}) {
    if (GetParam() == "split") options.mtas = options.mdas = 2;
    // These tests send thousands of messages as one user as fast as they can.
    options.extra_args.insert(options.extra_args.end(), {"--rate-limits", "send=off"});
    deployment_ = std::make_unique<Deployment>(GetParam(), kSecret, options);
    ASSERT_TRUE(deployment_->started()) << deployment_->error();
  }

  void TearDown() override {
    if (deployment_) {
      EXPECT_TRUE(deployment_->stop()) << "a process did not stop cleanly on SIGTERM";
    }
  }

  std::string user(const std::string& name) const { return name + "_" + suffix_; }
  std::uint16_t senders_port() const { return deployment_->port(0); }
  std::uint16_t bob_port() const { return deployment_->port(1); }

  // `from` sends `body` to bob through the senders' gateway, on `client`; the message id.
  std::string send(Client& client, const std::string& from, const std::string& body) {
    auto response = client.request(
        "POST", "/v1/messages", json::serialize(json::object{{"receiver", bob_}, {"body", body}}),
        {"Authorization: Bearer " + deployment_->token(from), "Content-Type: application/json"});
    EXPECT_EQ(response.status, 202) << response.body.substr(0, 300);
    return response.status == 202 ? std::string(json::parse(response.body).at("message_id").as_string()) : "";
  }

  // Bob's socket, opened with `query` ("" or "?after_seq=N").
  std::unique_ptr<WsClient> open_bob(const std::string& query = "") {
    auto ws = std::make_unique<WsClient>();
    EXPECT_TRUE(
        ws->connect(bob_port(), "/v1/stream" + query, {"Authorization: Bearer " + deployment_->token(bob_)}))
        << "upgrade refused: " << ws->refused_status();
    return ws;
  }

  // The next frame: a message (into `frame`, returns "message") or the type of another.
  static std::string next(WsClient& ws, Frame& frame, std::chrono::milliseconds timeout = 60s) {
    auto text = ws.read(timeout);
    if (!text) return ws.closed() ? "closed" : "timeout";
    auto event = json::parse(*text).as_object();
    const std::string type(event.at("type").as_string());
    if (type == "message") {
      const auto& message = event.at("message").as_object();
      frame =
          Frame{event.at("seq").to_number<std::uint64_t>(), std::string(message.at("message_id").as_string()),
                std::string(message.at("sender").as_string()), std::string(message.at("body").as_string())};
    }
    return type;
  }

  // Reads until `count` message frames came (other frames skipped); stops at a close or a timeout.
  static std::vector<Frame> read_messages(WsClient& ws, std::size_t count) {
    std::vector<Frame> frames;
    Frame frame;
    while (frames.size() < count) {
      const auto type = next(ws, frame);
      if (type == "message") frames.push_back(frame);
      if (type == "closed" || type == "timeout") break;
    }
    return frames;
  }

  static std::vector<std::uint64_t> seqs_of(const std::vector<Frame>& frames) {
    std::vector<std::uint64_t> out;
    for (const auto& frame : frames) out.push_back(frame.seq);
    return out;
  }

  // Every message of bob's inbox, oldest first, paging with after_seq.
  std::vector<json::object> bob_inbox(std::size_t limit = 100) {
    std::vector<json::object> all;
    std::string target = "/v1/users/" + bob_ + "/messages?after_seq=0&limit=" + std::to_string(limit);
    Client client(bob_port());
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = client.request("GET", target, "", {"Authorization: Bearer " + deployment_->token(bob_)});
      EXPECT_EQ(page.status, 200) << page.body.substr(0, 300);
      if (page.status != 200) break;
      auto body = json::parse(page.body).as_object();
      if (body.at("messages").as_array().size() > 1) {  // one message alone may be larger than the budget
        EXPECT_LE(page.body.size(), intercomm::core::kPageBudgetBytes + 4096)
            << "a page past its byte budget";
      }
      for (auto& item : body.at("messages").as_array()) all.push_back(item.as_object());
      if (body.at("next_seq").is_null()) break;
      target = "/v1/users/" + bob_ + "/messages?limit=" + std::to_string(limit) +
               "&after_seq=" + std::to_string(body.at("next_seq").to_number<std::uint64_t>());
    }
    return all;
  }

  // `senders` threads, each sending `each` messages to bob, one after the
  // other's 202; returns every sender's ids in send order.
  std::map<std::string, std::vector<std::string>> send_concurrently(int senders, int each,
                                                                    std::size_t body_bytes = 0) {
    std::map<std::string, std::vector<std::string>> sent;
    std::vector<std::thread> threads;
    std::mutex mu;
    for (int s = 0; s < senders; ++s) {
      threads.emplace_back([&, s] {
        const std::string from = user("sender" + std::to_string(s));
        Client client(senders_port());
        std::vector<std::string> ids;
        for (int i = 0; i < each; ++i) {
          std::string body = from + " #" + std::to_string(i);
          if (body.size() < body_bytes) body.append(body_bytes - body.size(), 'x');
          ids.push_back(send(client, from, body));
        }
        std::lock_guard lock(mu);
        sent[from] = std::move(ids);
      });
    }
    for (auto& thread : threads) thread.join();
    return sent;
  }

  std::string suffix_, bob_;
  std::unique_ptr<Deployment> deployment_;
};

TEST_P(Delivery, ThreeSendersKeepTheirOrderInTheInboxAndOnTheSocket) {
  deploy();
  auto bob = open_bob();
  Frame frame;
  ASSERT_EQ(next(*bob, frame), "live");
  const auto sent = send_concurrently(3, 200);

  const auto frames = read_messages(*bob, 600);
  EXPECT_EQ(seqs_of(frames), one_to(600)) << "the socket's seqs are 1..600, no hole, no repeat";
  std::map<std::string, std::vector<std::string>> on_socket;
  for (const auto& f : frames) on_socket[f.sender].push_back(f.message_id);
  EXPECT_EQ(on_socket, sent) << "each sender's messages reach the socket in send order";

  std::map<std::string, std::vector<std::string>> in_inbox;
  const auto inbox = bob_inbox();
  ASSERT_EQ(inbox.size(), 600U);
  for (std::size_t i = 0; i < inbox.size(); ++i) {
    EXPECT_EQ(inbox[i].at("seq").to_number<std::uint64_t>(), i + 1);
    in_inbox[std::string(inbox[i].at("sender").as_string())].push_back(
        std::string(inbox[i].at("message_id").as_string()));
  }
  EXPECT_EQ(in_inbox, sent) << "each sender's messages are stored in send order";
}

TEST_P(Delivery, AClientResumingFromRandomPointsGetsEverySeqOnceInOrder) {
  deploy();
  constexpr std::uint64_t kMessages = 300;
  const std::string alice = user("alice");
  std::thread sender([&] {
    Client client(senders_port());
    for (std::uint64_t i = 0; i < kMessages; ++i) send(client, alice, "resume " + std::to_string(i));
  });
  const unsigned seed = std::random_device{}();
  std::mt19937 random(seed);
  std::vector<std::uint64_t> seen;
  for (int reconnects = 0; reconnects <= 20 && seen.size() < kMessages; ++reconnects) {
    const std::uint64_t cursor = seen.empty() ? 0 : seen.back();
    auto bob = open_bob("?after_seq=" + std::to_string(cursor));
    // The last round reads to the end; the others leave after a few frames.
    const std::size_t want = reconnects == 20 ? kMessages - seen.size() : 1 + random() % 25;
    for (const auto& frame : read_messages(*bob, want)) seen.push_back(frame.seq);
    bob->close();
  }
  sender.join();
  if (seen.size() < kMessages) {
    auto bob = open_bob("?after_seq=" + std::to_string(seen.empty() ? 0 : seen.back()));
    for (const auto& frame : read_messages(*bob, kMessages - seen.size())) seen.push_back(frame.seq);
  }
  EXPECT_EQ(seen, one_to(kMessages)) << "random seed " << seed;
}

TEST_P(Delivery, TenThousandMissedMessagesCatchUpOnOneSocket) {
  deploy();
  constexpr int kSenders = 8, kEach = 1250;
  send_concurrently(kSenders, kEach);
  ASSERT_EQ(intercomm::testing::wait_for_inbox(bob_port(), deployment_->token(bob_), bob_, kSenders * kEach),
            static_cast<std::uint64_t>(kSenders * kEach));

  auto bob = open_bob("?after_seq=0");
  const auto frames = read_messages(*bob, kSenders * kEach);
  EXPECT_EQ(seqs_of(frames), one_to(kSenders * kEach));
  Frame frame;
  EXPECT_EQ(next(*bob, frame), "replayed");
  EXPECT_EQ(next(*bob, frame), "live");
  EXPECT_FALSE(bob->closed()) << bob->close_code() << " " << bob->close_reason();
}

TEST_P(Delivery, AHundredMissedMessagesOf64KiBCatchUpAndListAcrossPages) {
  deploy();
  constexpr std::size_t kBody = intercomm::core::kDefaultMaxBodyBytes;
  const auto sent = send_concurrently(4, 25, kBody);
  ASSERT_EQ(intercomm::testing::wait_for_inbox(bob_port(), deployment_->token(bob_), bob_, 100), 100U);

  auto bob = open_bob("?after_seq=0");
  const auto frames = read_messages(*bob, 100);
  EXPECT_EQ(seqs_of(frames), one_to(100));
  for (const auto& f : frames) EXPECT_EQ(f.body.size(), kBody);
  EXPECT_FALSE(bob->closed()) << bob->close_code() << " " << bob->close_reason();

  const auto inbox = bob_inbox(100);  // pages shorter than 100: cut by bytes, continued by next_seq
  ASSERT_EQ(inbox.size(), 100U);
  for (std::size_t i = 0; i < inbox.size(); ++i)
    EXPECT_EQ(inbox[i].at("seq").to_number<std::uint64_t>(), i + 1);
}

TEST_P(Delivery, AReaderThatStopsReadingIsClosedWith1013AndResumesWhereItStopped) {
  deploy();
  auto bob = open_bob();
  Frame frame;
  ASSERT_EQ(next(*bob, frame), "live");
  // 700 x 64 KiB: more than loopback's socket buffers (~10 MB) and the 256 unwritten frames together.
  constexpr int kMessages = 700;
  send_concurrently(1, kMessages, intercomm::core::kDefaultMaxBodyBytes);
  // Stored before bob reads a frame: on a loaded machine the frames would
  // otherwise trickle out as slowly as they are stored, and bob keep up.
  ASSERT_EQ(intercomm::testing::wait_for_inbox(bob_port(), deployment_->token(bob_), bob_, kMessages),
            static_cast<std::uint64_t>(kMessages));

  std::vector<std::uint64_t> seen;
  std::string type;
  while ((type = next(*bob, frame)) == "message") seen.push_back(frame.seq);
  ASSERT_EQ(type, "closed") << "a reader that fell behind was never closed";
  EXPECT_EQ(bob->close_code(), 1013);
  const std::string prefix = "too slow: resume with after_seq=";
  ASSERT_EQ(bob->close_reason().rfind(prefix, 0), 0U) << bob->close_reason();
  const auto resume = std::stoull(bob->close_reason().substr(prefix.size()));
  EXPECT_EQ(seen, one_to(resume)) << "the frames before the close end exactly at the seq to resume from";

  auto again = open_bob("?after_seq=" + std::to_string(resume));
  for (const auto& f : read_messages(*again, kMessages - resume)) seen.push_back(f.seq);
  EXPECT_EQ(seen, one_to(kMessages));
}

TEST_P(Delivery, TheLargestBodyAllowedIsAcceptedStoredReadAndDelivered) {
  const std::string limit = std::to_string(intercomm::core::kMaxBodyBytesLimit);
  DeploymentOptions options;
  options.extra_args = {"--max-body-bytes", limit};
  options.worker_args = {"--max-body-bytes", limit};
  deploy(options);
  auto bob = open_bob();
  Frame frame;
  ASSERT_EQ(next(*bob, frame), "live");

  // Every byte a control character: the most a body can grow once JSON-escaped (\u0001).
  const std::string body(intercomm::core::kMaxBodyBytesLimit, '\x01');
  Client client(senders_port());
  const std::string id = send(client, user("alice"), body);
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(next(*bob, frame), "message");
  EXPECT_EQ(frame.message_id, id);
  EXPECT_TRUE(frame.body == body) << "the live frame carries the whole body";

  Client reader(bob_port());
  auto got =
      reader.request("GET", "/v1/messages/" + id, "", {"Authorization: Bearer " + deployment_->token(bob_)});
  ASSERT_EQ(got.status, 200) << got.body.substr(0, 300);
  EXPECT_TRUE(json::parse(got.body).at("body").as_string() == body);
  const auto inbox = bob_inbox();
  ASSERT_EQ(inbox.size(), 1U);
  EXPECT_TRUE(inbox[0].at("body").as_string() == body);

  const std::string one_more = json::serialize(json::object{{"receiver", bob_}, {"body", body + "x"}});
  auto refused = client.request(
      "POST", "/v1/messages", one_more,
      {"Authorization: Bearer " + deployment_->token(user("alice")), "Content-Type: application/json"});
  EXPECT_EQ(refused.status, 400) << "one byte more is refused before anything is queued";
}

INSTANTIATE_TEST_SUITE_P(Modes, Delivery, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
