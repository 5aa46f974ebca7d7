// Inboxes on every store backend: per-user seq 1, 2, 3 ... with no hole,
// given atomically with the entry, idempotent by message id, in order.
#include "store/store.hpp"  // first: the header is self-contained

#include "core/ids.hpp"
#include "integration/store_fixture.hpp"
#include "store/buckets.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

namespace intercomm::store {
namespace {

class InboxConformance : public StoreFixture {
 protected:
  // A user name no other test (or build sharing the Redis) uses.
  std::string user(const std::string& name) { return name + "_" + suffix_; }

  static NewMessage message(const std::string& from, const std::string& to) {
    NewMessage out;
    out.message_id = core::new_message_id();
    out.value = "from " + from + " to " + to + " " + out.message_id;
    out.inboxes = {from};
    if (to != from) out.inboxes.push_back(to);
    return out;
  }

  std::vector<InboxEntry> all(const std::string& owner, Order order = Order::ascending) {
    std::vector<InboxEntry> out;
    InboxQuery query;
    query.order = order;
    query.limit = 100;
    while (true) {
      auto page = store_->inbox_range(owner, query);
      EXPECT_TRUE(page) << page.error().message;
      if (!page) break;
      out.insert(out.end(), page->entries.begin(), page->entries.end());
      if (!page->more) break;
      (order == Order::ascending ? query.after_seq : query.before_seq) = page->entries.back().seq;
    }
    return out;
  }

  std::string suffix_ = core::new_message_id();
};

TEST_P(InboxConformance, EachInboxNumbersItsMessagesFromOneWithoutHoles) {
  const auto alice = user("alice"), bob = user("bob"), carol = user("carol");
  const std::vector<NewMessage> batch{message(alice, bob), message(bob, alice), message(carol, bob),
                                      message(alice, alice)};
  const auto stored = store_->store_messages(batch);
  ASSERT_FALSE(stored.error) << stored.error->message;
  EXPECT_FALSE(stored.existing_index);
  ASSERT_EQ(stored.seqs.size(), batch.size());
  EXPECT_EQ(stored.seqs[0], (std::vector<std::uint64_t>{1, 1}));  // alice 1, bob 1
  EXPECT_EQ(stored.seqs[1], (std::vector<std::uint64_t>{2, 2}));  // bob 2, alice 2
  EXPECT_EQ(stored.seqs[2], (std::vector<std::uint64_t>{1, 3}));  // carol 1, bob 3
  EXPECT_EQ(stored.seqs[3], (std::vector<std::uint64_t>{3}));     // a note to self: one entry

  EXPECT_EQ(all(bob), (std::vector<InboxEntry>{
                          {1, batch[0].message_id}, {2, batch[1].message_id}, {3, batch[2].message_id}}));
  EXPECT_EQ(all(alice, Order::descending),
            (std::vector<InboxEntry>{
                {3, batch[3].message_id}, {2, batch[1].message_id}, {1, batch[0].message_id}}));
  EXPECT_EQ(*store_->inbox_last_seq(bob), 3U);
  EXPECT_EQ(*store_->inbox_last_seq(user("nobody")), 0U);
  EXPECT_EQ(*store_->inbox_seq(bob, batch[2].message_id), std::optional<std::uint64_t>(3));
  EXPECT_EQ(*store_->inbox_seq(carol, batch[0].message_id), std::nullopt);
  for (const auto& sent : batch) {
    EXPECT_EQ(*store_->get(kMessages, sent.message_id), std::optional<std::string>(sent.value));
  }
}

TEST_P(InboxConformance, AStoredIdStopsTheCallSoItsInboxEntriesCanBeRepairedFirst) {
  const auto alice = user("alice"), bob = user("bob");
  const auto first = message(alice, bob);
  ASSERT_FALSE(store_->store_messages(std::vector{first}).error);

  auto again = first;
  again.value = "another value under the same id";
  const std::vector<NewMessage> batch{message(alice, bob), again, message(alice, bob)};
  const auto stored = store_->store_messages(batch);
  ASSERT_FALSE(stored.error);
  ASSERT_EQ(stored.seqs.size(), 1U) << "the message before the known id is stored";
  EXPECT_EQ(stored.seqs[0], (std::vector<std::uint64_t>{2, 2}));
  ASSERT_EQ(stored.existing_index, std::optional<std::size_t>(1));
  EXPECT_EQ(stored.existing_value, first.value) << "the first value is kept and handed back";
  EXPECT_EQ(*store_->get(kMessages, batch[2].message_id), std::nullopt) << "nothing after it is touched";
  EXPECT_EQ(all(bob).size(), 2U);

  // Repairing is idempotent: the seq it already has.
  EXPECT_EQ(*store_->inbox_append(bob, first.message_id, alice, true), 1U);
  EXPECT_EQ(*store_->inbox_append(bob, batch[2].message_id, alice, true), 3U);
  EXPECT_EQ(*store_->inbox_append(bob, batch[2].message_id, alice, true), 3U);
  EXPECT_EQ(*store_->inbox_last_seq(bob), 3U);
}

TEST_P(InboxConformance, TheSameIdTwiceInOneCallStopsAtTheSecond) {
  const auto alice = user("alice"), bob = user("bob");
  const auto sent = message(alice, bob);
  const auto stored = store_->store_messages(std::vector{sent, sent});
  ASSERT_FALSE(stored.error);
  EXPECT_EQ(stored.seqs.size(), 1U);
  EXPECT_EQ(stored.existing_index, std::optional<std::size_t>(1));
  EXPECT_EQ(stored.existing_value, sent.value);
  EXPECT_EQ(all(bob).size(), 1U);
}

TEST_P(InboxConformance, ConcurrentWritersToOneInboxGetEverySeqOnceAndKeepTheirOwnOrder) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  const auto bob = user("bob");
  std::vector<std::vector<std::string>> sent(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto sender = user("sender" + std::to_string(t));
      for (int i = 0; i < kPerThread; ++i) {
        // Alternate single messages and small batches.
        std::vector<NewMessage> batch{message(sender, bob)};
        if (i % 3 == 0) batch.push_back(message(sender, bob));
        const auto stored = store_->store_messages(batch);
        ASSERT_FALSE(stored.error) << stored.error->message;
        ASSERT_EQ(stored.seqs.size(), batch.size());
        for (const auto& m : batch) sent[t].push_back(m.message_id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const auto entries = all(bob);
  std::size_t total = 0;
  for (const auto& ids : sent) total += ids.size();
  ASSERT_EQ(entries.size(), total);
  std::map<std::string, std::uint64_t> seq_of;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].seq, i + 1) << "no hole, no repeat";
    EXPECT_TRUE(seq_of.emplace(entries[i].message_id, entries[i].seq).second) << "each message once";
  }
  for (const auto& ids : sent) {
    for (std::size_t i = 1; i < ids.size(); ++i) {
      EXPECT_LT(seq_of[ids[i - 1]], seq_of[ids[i]]) << "a writer's later message gets a later seq";
    }
  }
  EXPECT_EQ(*store_->inbox_last_seq(bob), total);
}

TEST_P(InboxConformance, PagesBySeqHaveExclusiveBoundsInBothDirections) {
  const auto alice = user("alice"), bob = user("bob");
  std::vector<NewMessage> batch;
  for (int i = 0; i < 250; ++i) batch.push_back(message(alice, bob));
  ASSERT_FALSE(store_->store_messages(batch).error);

  InboxQuery query;
  query.order = Order::ascending;
  query.after_seq = 10;
  query.limit = 5;
  auto page = store_->inbox_range(bob, query);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 5U);
  EXPECT_EQ(page->entries.front().seq, 11U);
  EXPECT_EQ(page->entries.back().seq, 15U);
  EXPECT_EQ(page->entries.front().message_id, batch[10].message_id);
  EXPECT_TRUE(page->more);

  query.before_seq = 14;
  query.limit = 10;
  page = store_->inbox_range(bob, query);
  ASSERT_EQ(page->entries.size(), 3U);  // 11, 12, 13
  EXPECT_FALSE(page->more);

  query = InboxQuery{};
  query.before_seq = 3;
  page = store_->inbox_range(bob, query);  // newest first
  ASSERT_EQ(page->entries.size(), 2U);
  EXPECT_EQ(page->entries[0].seq, 2U);
  EXPECT_EQ(page->entries[1].seq, 1U);
  EXPECT_FALSE(page->more);

  query = InboxQuery{};
  query.after_seq = 250;
  query.order = Order::ascending;
  EXPECT_TRUE(store_->inbox_range(bob, query)->entries.empty());
  query = InboxQuery{};
  query.before_seq = 1;
  EXPECT_TRUE(store_->inbox_range(bob, query)->entries.empty());

  EXPECT_EQ(all(bob).size(), 250U);
  const auto newest_first = all(bob, Order::descending);
  ASSERT_EQ(newest_first.size(), 250U);
  EXPECT_EQ(newest_first.front().seq, 250U);
  EXPECT_EQ(newest_first.back().seq, 1U);
}

TEST_P(InboxConformance, InboxesOutliveTheConnection) {
  const auto alice = user("alice"), bob = user("bob");
  const auto sent = message(alice, bob);
  ASSERT_FALSE(store_->store_messages(std::vector{sent}).error);
  store_.reset();
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(all(bob), (std::vector<InboxEntry>{{1, sent.message_id}}));
  const auto next = message(bob, alice);
  const auto stored = store_->store_messages(std::vector{next});
  ASSERT_EQ(stored.seqs.size(), 1U);
  EXPECT_EQ(stored.seqs[0], (std::vector<std::uint64_t>{2, 2})) << "numbering goes on after a reopen";
}

INSTANTIATE_TEST_SUITE_P(Backends, InboxConformance, ::testing::Values("rocksdb", "redis", "redis_cluster"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace intercomm::store
