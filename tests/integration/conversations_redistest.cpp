// Conversations on every store backend: kept by the write that stores a
// message, listed by newest activity, paged by seq, with a read marker that
// only moves forward and unread counts that follow it.
#include "store/store.hpp"

#include "core/ids.hpp"
#include "integration/store_fixture.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace intercomm::store {
namespace {

class ConversationConformance : public StoreFixture {
 protected:
  std::string user(const std::string& name) { return name + "_" + suffix_; }

  // Stores one message from `from` to `to`: its seqs (sender's, receiver's).
  std::vector<std::uint64_t> send(const std::string& from, const std::string& to) {
    NewMessage message;
    message.message_id = core::new_message_id();
    message.value = "from " + from;
    message.inboxes = {from};
    if (to != from) message.inboxes.push_back(to);
    const auto stored = store_->store_messages(std::vector{message});
    EXPECT_FALSE(stored.error) << stored.error->message;
    ids_.push_back(message.message_id);
    return stored.seqs.empty() ? std::vector<std::uint64_t>{} : stored.seqs[0];
  }

  Conversation of(const std::string& owner, const std::string& peer) {
    auto found = store_->conversation(owner, peer);
    EXPECT_TRUE(found) << found.error().message;
    EXPECT_TRUE(found && *found) << owner << " has no conversation with " << peer;
    return found && *found ? **found : Conversation{};
  }

  std::vector<std::string> peers_of(const std::string& owner, std::optional<std::uint64_t> before = {},
                                    std::size_t limit = 50, bool* more = nullptr) {
    auto page = store_->conversations(owner, before, limit);
    EXPECT_TRUE(page) << page.error().message;
    std::vector<std::string> peers;
    if (!page) return peers;
    for (const auto& conversation : page->conversations) peers.push_back(conversation.peer);
    if (more) *more = page->more;
    return peers;
  }

  std::string suffix_ = core::new_message_id();
  std::vector<std::string> ids_;  // every message sent, in order
};

TEST_P(ConversationConformance, EachMessageUpdatesBothSidesConversationsInTheSameWrite) {
  const auto alice = user("alice"), bob = user("bob"), carol = user("carol");
  EXPECT_EQ(*store_->conversation(alice, bob), std::nullopt);
  EXPECT_TRUE(peers_of(alice).empty());

  send(alice, bob);                          // alice 1, bob 1
  send(bob, alice);                          // bob 2, alice 2
  const auto third = send(carol, alice);     // carol 1, alice 3
  send(alice, alice);                        // alice 4: a note to self

  EXPECT_EQ(of(alice, bob), (Conversation{bob, 2, ids_[1], 0, 1})) << "bob's one message is unread";
  EXPECT_EQ(of(bob, alice), (Conversation{alice, 2, ids_[1], 0, 1})) << "alice's one message is unread";
  EXPECT_EQ(of(alice, carol), (Conversation{carol, third[1], ids_[2], 0, 1}));
  EXPECT_EQ(of(carol, alice), (Conversation{alice, 1, ids_[2], 0, 0})) << "one's own messages are never unread";
  EXPECT_EQ(of(alice, alice), (Conversation{alice, 4, ids_[3], 0, 0}));
  EXPECT_EQ(peers_of(alice), (std::vector<std::string>{alice, carol, bob})) << "newest activity first";

  send(bob, alice);  // alice 5: bob's conversation comes back to the top
  EXPECT_EQ(peers_of(alice), (std::vector<std::string>{bob, alice, carol}));
  EXPECT_EQ(of(alice, bob).unread, 2U);
}

TEST_P(ConversationConformance, TheListPagesByLastSeq) {
  const auto owner = user("owner");
  std::vector<std::string> peers;
  for (int i = 0; i < 7; ++i) {
    peers.push_back(user("peer" + std::to_string(i)));
    send(peers.back(), owner);
  }
  bool more = false;
  EXPECT_EQ(peers_of(owner, std::nullopt, 3, &more), (std::vector<std::string>{peers[6], peers[5], peers[4]}));
  EXPECT_TRUE(more);
  const auto last_seq = of(owner, peers[4]).last_seq;
  EXPECT_EQ(peers_of(owner, last_seq, 3, &more), (std::vector<std::string>{peers[3], peers[2], peers[1]}));
  EXPECT_TRUE(more);
  EXPECT_EQ(peers_of(owner, of(owner, peers[1]).last_seq, 3, &more), (std::vector<std::string>{peers[0]}));
  EXPECT_FALSE(more);
  EXPECT_TRUE(peers_of(owner, 1).empty()) << "nothing has a last_seq below 1";
}

TEST_P(ConversationConformance, AConversationPagesItsOwnMessagesBySeq) {
  const auto alice = user("alice"), bob = user("bob"), carol = user("carol");
  std::vector<std::uint64_t> bob_seqs;  // of the alice-bob messages, in bob's inbox
  for (int i = 0; i < 10; ++i) {
    bob_seqs.push_back(send(i % 2 ? alice : bob, i % 2 ? bob : alice)[i % 2 ? 1 : 0]);
    send(carol, bob);  // interleaved: not in the conversation
  }
  InboxQuery query;
  query.order = Order::ascending;
  query.limit = 4;
  auto page = store_->conversation_range(bob, alice, query);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 4U);
  EXPECT_TRUE(page->more);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(page->entries[i].seq, bob_seqs[i]);
    EXPECT_EQ(page->entries[i].message_id, ids_[2 * i]);
  }
  query.after_seq = page->entries.back().seq;
  query.limit = 100;
  page = store_->conversation_range(bob, alice, query);
  ASSERT_EQ(page->entries.size(), 6U);
  EXPECT_FALSE(page->more);

  InboxQuery back;  // newest first, before a seq
  back.before_seq = bob_seqs[9];
  back.limit = 2;
  page = store_->conversation_range(bob, alice, back);
  ASSERT_EQ(page->entries.size(), 2U);
  EXPECT_EQ(page->entries[0].seq, bob_seqs[8]);
  EXPECT_EQ(page->entries[1].seq, bob_seqs[7]);
  EXPECT_TRUE(store_->conversation_range(bob, user("nobody"), InboxQuery{})->entries.empty());
}

TEST_P(ConversationConformance, TheReadMarkerMovesForwardOnlyAndUnreadFollowsIt) {
  const auto alice = user("alice"), bob = user("bob");
  std::vector<std::uint64_t> bob_seqs;
  for (int i = 0; i < 5; ++i) bob_seqs.push_back(send(alice, bob)[1]);  // bob 1..5
  send(bob, alice);                                                      // bob 6: his own
  EXPECT_EQ(of(bob, alice).unread, 5U);

  auto marked = store_->mark_read(ReadMark{bob, alice, bob_seqs[2], "2026-11-29T10:00:00Z"});
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_EQ(marked->read_seq, bob_seqs[2]);
  EXPECT_EQ(marked->unread, 2U);
  EXPECT_EQ(of(bob, alice), *marked);

  marked = store_->mark_read(ReadMark{bob, alice, bob_seqs[0], "2026-11-29T11:00:00Z"});
  ASSERT_TRUE(marked);
  EXPECT_EQ(marked->read_seq, bob_seqs[2]) << "never back";
  EXPECT_EQ(marked->unread, 2U);

  // read_at: when the marker first reached a seq.
  EXPECT_EQ(*store_->read_at(bob, alice, bob_seqs[0]), std::optional<std::string>("2026-11-29T10:00:00Z"));
  EXPECT_EQ(*store_->read_at(bob, alice, bob_seqs[2]), std::optional<std::string>("2026-11-29T10:00:00Z"));
  EXPECT_EQ(*store_->read_at(bob, alice, bob_seqs[3]), std::nullopt);

  marked = store_->mark_read(ReadMark{bob, alice, 6, "2026-11-29T12:00:00Z"});
  ASSERT_TRUE(marked);
  EXPECT_EQ(marked->unread, 0U);
  EXPECT_EQ(*store_->read_at(bob, alice, bob_seqs[4]), std::optional<std::string>("2026-11-29T12:00:00Z"));

  send(alice, bob);  // a new one after the marker
  EXPECT_EQ(of(bob, alice).unread, 1U);
  EXPECT_EQ(of(bob, alice).read_seq, 6U);
  EXPECT_EQ(of(alice, bob).unread, 1U) << "alice's own marker is her own";
}

TEST_P(ConversationConformance, ConcurrentSendersAndReadersKeepCountsExact) {
  constexpr int kSenders = 4;
  constexpr int kPerSender = 50;
  const auto bob = user("bob");
  std::vector<std::string> senders;
  for (int s = 0; s < kSenders; ++s) senders.push_back(user("s" + std::to_string(s)));
  std::vector<std::thread> threads;
  for (int s = 0; s < kSenders; ++s) {
    threads.emplace_back([&, s] {
      for (int i = 0; i < kPerSender; ++i) {
        NewMessage message;
        message.message_id = core::new_message_id();
        message.value = "x";
        message.inboxes = {senders[s], bob};
        const auto stored = store_->store_messages(std::vector{message});
        ASSERT_FALSE(stored.error);
        if (i == kPerSender / 2) {
          // bob reads up to here meanwhile
          ASSERT_TRUE(store_->mark_read(ReadMark{bob, senders[s], stored.seqs[0][1], "t"}));
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::uint64_t total_unread = 0;
  for (const auto& sender : senders) {
    const auto conversation = of(bob, sender);
    EXPECT_EQ(conversation.unread, static_cast<std::uint64_t>(kPerSender - kPerSender / 2 - 1));
    total_unread += conversation.unread;
  }
  EXPECT_EQ(total_unread, static_cast<std::uint64_t>(kSenders * (kPerSender - kPerSender / 2 - 1)));
  EXPECT_EQ(peers_of(bob).size(), static_cast<std::size_t>(kSenders));
}

TEST_P(ConversationConformance, RepairingAnInboxEntryAddsItToTheConversationOnce) {
  const auto alice = user("alice"), bob = user("bob");
  const std::string id = core::new_message_id();
  ASSERT_TRUE(store_->put_if_absent(bucket("message"), id, "v"));
  EXPECT_EQ(*store_->inbox_append(bob, id, alice, true), 1U);
  EXPECT_EQ(*store_->inbox_append(bob, id, alice, true), 1U) << "idempotent";
  EXPECT_EQ(of(bob, alice), (Conversation{alice, 1, id, 0, 1}));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConversationConformance,
                         ::testing::Values("rocksdb", "redis", "redis_cluster"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace intercomm::store
