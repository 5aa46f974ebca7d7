// Redis backend: the Store operations as Redis commands, on one node or routed by slot.
#include "store/redis_store.hpp"
#include "store/redis_detail.hpp"

#include "store/buckets.hpp"
#include "store/redis_node.hpp"
#include "store/redis_scripts.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <functional>

namespace intercomm::store::redis_detail {
namespace {

using core::Error;
using core::ErrorCode;
using redis::Command;
using redis::Reply;

std::string value_key(const Bucket& bucket, std::string_view key) {
  return fmt::format("rh:{}:{}:{}", bucket.type, bucket.name, key);
}

std::string index_key_of(const Bucket& bucket, std::string_view index_key) {
  return fmt::format("rh:idx:{{{}}}:{}:{}", index_key, bucket.type, bucket.name);
}

std::optional<std::uint64_t> number_of(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0)
    return static_cast<std::uint64_t>(reply->integer);
  if (reply->type != REDIS_REPLY_STRING) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(reply->str, reply->str + reply->len, value);
  if (ec != std::errc() || end != reply->str + reply->len) return std::nullopt;
  return value;
}

class RedisStore final : public Store {
 public:
  RedisStore(Executor executor, bool cluster) : run_(std::move(executor)), cluster_(cluster) {}

  core::Result<std::optional<std::string>> get(const Bucket& bucket, std::string_view key) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = read(full_key, {"GET", full_key});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::optional<std::string>();
    if ((*reply)->type != REDIS_REPLY_STRING) return unexpected("GET");
    return std::optional<std::string>(std::string((*reply)->str, (*reply)->len));
  }

  core::Result<void> put(const Bucket& bucket, std::string_view key, std::string_view value) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = write(full_key, {"SET", full_key, value});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_STATUS) return unexpected("SET");
    return {};
  }

  core::Result<bool> put_if_absent(const Bucket& bucket, std::string_view key,
                                   std::string_view value) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = write(full_key, {"SET", full_key, value, "NX"});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return false;
    if ((*reply)->type != REDIS_REPLY_STATUS) return unexpected("SET NX");
    return true;
  }

  // One pipeline of SET NX on a single node; in a cluster the keys live in
  // different slots, so one by one.
  std::vector<core::Result<bool>> put_if_absent_many(const Bucket& bucket,
                                                     std::span<const KeyValue> entries) override {
    if (cluster_ || entries.size() < 2) return Store::put_if_absent_many(bucket, entries);
    std::vector<std::string> keys;
    keys.reserve(entries.size());  // the commands point into it
    std::vector<Command> commands;
    for (const auto& entry : entries) {
      keys.push_back(value_key(bucket, entry.key));
      commands.push_back({"SET", keys.back(), entry.value, "NX"});
    }
    std::vector<core::Result<bool>> outcomes;
    auto replies = checked(keys.front(), commands, true);
    if (!replies) {
      outcomes.assign(entries.size(), replies.error());
      return outcomes;
    }
    for (const auto& reply : *replies) {
      if (reply->type == REDIS_REPLY_NIL) {
        outcomes.emplace_back(false);
      } else if (reply->type == REDIS_REPLY_STATUS) {
        outcomes.emplace_back(true);
      } else {
        outcomes.emplace_back(unexpected("SET NX"));
      }
    }
    return outcomes;
  }

  core::Result<bool> remove(const Bucket& bucket, std::string_view key) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = write(full_key, {"DEL", full_key});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("DEL");
    return (*reply)->integer > 0;
  }

  core::Result<void> index_add(const Bucket& bucket, std::string_view index_key,
                               std::string_view entry) override {
    const std::string key = index_key_of(bucket, index_key);
    auto reply = write(key, {"ZADD", key, "0", entry});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("ZADD");
    return {};
  }

  core::Result<bool> index_remove(const Bucket& bucket, std::string_view index_key,
                                  std::string_view entry) override {
    const std::string key = index_key_of(bucket, index_key);
    auto reply = write(key, {"ZREM", key, entry});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("ZREM");
    return (*reply)->integer > 0;
  }

  core::Result<Page> range(const Bucket& bucket, std::string_view index_key,
                           const RangeQuery& query) override {
    const std::string key = index_key_of(bucket, index_key);
    const std::string count = std::to_string(query.limit + 1);  // one more: is there a next page?
    const std::string low = query.after ? "(" + *query.after : "-";
    const std::string high = query.before ? "(" + *query.before : "+";
    auto reply = query.order == Order::ascending
                     ? read(key, {"ZRANGEBYLEX", key, low, high, "LIMIT", "0", count})
                     : read(key, {"ZREVRANGEBYLEX", key, high, low, "LIMIT", "0", count});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ARRAY) return unexpected("ZRANGEBYLEX");
    Page page;
    for (std::size_t i = 0; i < (*reply)->elements && i < query.limit; ++i) {
      const redisReply* element = (*reply)->element[i];
      page.entries.emplace_back(element->str, element->len);
    }
    if ((*reply)->elements > query.limit && !page.entries.empty()) page.next = page.entries.back();
    return page;
  }

  // Standalone: one script for the whole call (one round trip, atomic).
  // Cluster: a message and its inboxes live in different slots, so the steps
  // go one by one, each atomic in its slot and idempotent.
  StoredMessages store_messages(std::span<const NewMessage> messages) override {
    if (cluster_) return store_messages_in_steps(messages);
    StoredMessages out;
    if (messages.empty()) return out;
    std::vector<std::string> keys;
    std::vector<std::string> args{std::to_string(messages.size())};  // as the script reads ARGV
    for (const auto& message : messages) {
      keys.push_back(value_key(kMessages, message.message_id));
      args.push_back(message.message_id);
      args.push_back(message.value);
      args.push_back(std::to_string(message.inboxes.size()));
      for (std::size_t inbox = 0; inbox < message.inboxes.size(); ++inbox) {
        const auto side = side_of(message, inbox);
        for (auto& key : append_keys(message.inboxes[inbox], side.peer)) keys.push_back(std::move(key));
        args.emplace_back(side.peer);
        args.emplace_back(side.received ? "1" : "0");
      }
    }
    const std::string key_count = std::to_string(keys.size());
    Command command{"EVAL", kStoreMessagesScript, key_count};
    command.insert(command.end(), keys.begin(), keys.end());
    command.insert(command.end(), args.begin(), args.end());
    auto reply = write(keys.front(), std::move(command));
    if (!reply) {
      out.error = reply.error();
      return out;
    }
    const redisReply* top = reply->get();
    if (top->type != REDIS_REPLY_ARRAY || top->elements < 1 || top->element[0]->type != REDIS_REPLY_ARRAY) {
      out.error = unexpected("EVAL store_messages");
      return out;
    }
    for (std::size_t m = 0; m < top->element[0]->elements; ++m) {
      const redisReply* seqs = top->element[0]->element[m];
      std::vector<std::uint64_t> parsed;
      for (std::size_t i = 0; seqs->type == REDIS_REPLY_ARRAY && i < seqs->elements; ++i) {
        auto seq = number_of(seqs->element[i]);
        if (!seq) {
          out.error = unexpected("EVAL store_messages");
          return out;
        }
        parsed.push_back(*seq);
      }
      out.seqs.push_back(std::move(parsed));
    }
    if (top->elements == 3) {
      auto index = number_of(top->element[1]);
      if (!index || *index < 1 || top->element[2]->type != REDIS_REPLY_STRING) {
        out.error = unexpected("EVAL store_messages");
        return out;
      }
      out.existing_index = *index - 1;
      out.existing_value.assign(top->element[2]->str, top->element[2]->len);
    }
    return out;
  }

  core::Result<std::uint64_t> inbox_append(std::string_view user, std::string_view message_id,
                                           std::string_view peer, bool received) override {
    const auto keys = append_keys(user, peer);
    static_assert(kAppendKeys == 6);
    Command command{"EVAL", kInboxAppendScript, "6"};
    command.insert(command.end(), keys.begin(), keys.end());
    command.insert(command.end(), {message_id, peer, received ? "1" : "0"});
    auto reply = write(keys.front(), std::move(command));
    if (!reply) return reply.error();
    auto seq = number_of(reply->get());
    if (!seq) return unexpected("EVAL inbox_append");
    return *seq;
  }

  core::Result<std::optional<std::uint64_t>> inbox_seq(std::string_view user,
                                                       std::string_view message_id) override {
    const std::string set = inbox_set_key(user);
    auto reply = read(set, {"ZSCORE", set, message_id});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::optional<std::uint64_t>();
    auto seq = number_of(reply->get());
    if (!seq) return unexpected("ZSCORE");
    return std::optional<std::uint64_t>(*seq);
  }

  core::Result<std::uint64_t> inbox_last_seq(std::string_view user) override {
    const std::string last = inbox_last_key(user);
    auto reply = read(last, {"GET", last});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::uint64_t{0};
    auto seq = number_of(reply->get());
    if (!seq) return unexpected("GET");
    return *seq;
  }

  core::Result<InboxPage> inbox_range(std::string_view user, const InboxQuery& query) override {
    return seq_range(inbox_set_key(user), query);
  }

  core::Result<ConversationsPage> conversations(std::string_view user,
                                                std::optional<std::uint64_t> before_seq,
                                                std::size_t limit) override {
    const std::string list = conversations_key(user);
    const std::string high = before_seq ? "(" + std::to_string(*before_seq) : "+inf";
    const std::string count = std::to_string(limit + 1);  // one more: is there a next page?
    auto reply = read(list, {"ZREVRANGEBYSCORE", list, high, "-inf", "LIMIT", "0", count});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ARRAY) return unexpected("ZREVRANGEBYSCORE");
    ConversationsPage page;
    page.more = (*reply)->elements > limit;
    std::vector<std::string> peers;
    for (std::size_t i = 0; i < (*reply)->elements && i < limit; ++i) {
      const redisReply* peer = (*reply)->element[i];
      if (peer->type != REDIS_REPLY_STRING) return unexpected("ZREVRANGEBYSCORE");
      peers.emplace_back(peer->str, peer->len);
    }
    if (peers.empty()) return page;
    // Every summary in one round trip: the keys share the user's slot.
    std::vector<std::string> keys;
    keys.reserve(2 * peers.size());
    std::vector<Command> commands;
    for (const auto& peer : peers) {
      keys.push_back(conversation_key(user, 'h', peer));
      keys.push_back(conversation_key(user, 'r', peer));
    }
    for (std::size_t i = 0; i < peers.size(); ++i) {
      commands.push_back(Command{"EVAL", kConversationScript, "2", keys[2 * i], keys[2 * i + 1]});
    }
    auto replies = checked(list, commands);
    if (!replies) return replies.error();
    for (std::size_t i = 0; i < peers.size(); ++i) {
      auto conversation = summary_of((*replies)[i].get(), peers[i]);
      if (!conversation) return conversation.error();
      if (*conversation) page.conversations.push_back(std::move(**conversation));
    }
    return page;
  }

  core::Result<std::optional<Conversation>> conversation(std::string_view user,
                                                         std::string_view peer) override {
    const std::string hash = conversation_key(user, 'h', peer);
    const std::string received = conversation_key(user, 'r', peer);
    auto reply = read(hash, {"EVAL", kConversationScript, "2", hash, received});
    if (!reply) return reply.error();
    return summary_of(reply->get(), peer);
  }

  core::Result<InboxPage> conversation_range(std::string_view user, std::string_view peer,
                                             const InboxQuery& query) override {
    return seq_range(conversation_key(user, 'm', peer), query);
  }

  core::Result<Conversation> mark_read(const ReadMark& mark) override {
    const std::string hash = conversation_key(mark.user, 'h', mark.peer);
    const std::string received = conversation_key(mark.user, 'r', mark.peer);
    const std::string marks = conversation_key(mark.user, 'k', mark.peer);
    const std::string seq = std::to_string(mark.seq);
    auto reply = write(hash, {"EVAL", kMarkReadScript, "3", hash, received, marks, seq, mark.at});
    if (!reply) return reply.error();
    auto conversation = summary_of(reply->get(), mark.peer);
    if (!conversation) return conversation.error();
    if (!*conversation) return Conversation{mark.peer, 0, {}, 0, 0};  // no conversation: nothing marked
    return std::move(**conversation);
  }

  core::Result<std::optional<std::string>> read_at(std::string_view user, std::string_view peer,
                                                   std::uint64_t seq) override {
    const std::string marks = conversation_key(user, 'k', peer);
    auto reply = read(marks, {"ZRANGEBYSCORE", marks, std::to_string(seq), "+inf", "LIMIT", "0", "1"});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ARRAY) return unexpected("ZRANGEBYSCORE");
    if ((*reply)->elements == 0) return std::optional<std::string>();
    const redisReply* member = (*reply)->element[0];
    const std::string_view text(member->str, member->type == REDIS_REPLY_STRING ? member->len : 0);
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) return unexpected("ZRANGEBYSCORE");
    return std::optional<std::string>(std::string(text.substr(colon + 1)));
  }

  bool ping() override {
    auto reply = read("ping", {"PING"});
    return reply && (*reply)->type == REDIS_REPLY_STATUS;
  }

 private:
  static Error unexpected(std::string_view what) {
    return Error::of(ErrorCode::unavailable, fmt::format("store: unexpected Redis reply to {}", what));
  }

  // A page of a sorted set of message ids scored by seq, as inbox_range pages.
  core::Result<InboxPage> seq_range(const std::string& set, const InboxQuery& query) {
    const std::string count = std::to_string(query.limit + 1);  // one more: is there a next page?
    const std::string low = query.after_seq ? "(" + std::to_string(*query.after_seq) : "-inf";
    const std::string high = query.before_seq ? "(" + std::to_string(*query.before_seq) : "+inf";
    auto reply = query.order == Order::ascending
                     ? read(set, {"ZRANGEBYSCORE", set, low, high, "WITHSCORES", "LIMIT", "0", count})
                     : read(set, {"ZREVRANGEBYSCORE", set, high, low, "WITHSCORES", "LIMIT", "0", count});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ARRAY || (*reply)->elements % 2 != 0)
      return unexpected("ZRANGEBYSCORE");
    InboxPage page;
    const std::size_t found = (*reply)->elements / 2;
    for (std::size_t i = 0; i < found && i < query.limit; ++i) {
      const redisReply* member = (*reply)->element[2 * i];
      auto seq = number_of((*reply)->element[2 * i + 1]);
      if (!seq || member->type != REDIS_REPLY_STRING) return unexpected("ZRANGEBYSCORE");
      page.entries.push_back(InboxEntry{*seq, std::string(member->str, member->len)});
    }
    page.more = found > query.limit;
    return page;
  }

  // The summary script's reply: {last_seq, last_id, read_seq, unread} or nil.
  static core::Result<std::optional<Conversation>> summary_of(const redisReply* reply,
                                                              std::string_view peer) {
    if (reply->type == REDIS_REPLY_NIL) return std::optional<Conversation>();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[1]->type != REDIS_REPLY_STRING)
      return unexpected("EVAL conversation");
    const auto last_seq = number_of(reply->element[0]);
    const auto read_seq = number_of(reply->element[2]);
    const auto unread = number_of(reply->element[3]);
    if (!last_seq || !read_seq || !unread) return unexpected("EVAL conversation");
    return std::optional<Conversation>(
        Conversation{std::string(peer), *last_seq,
                     std::string(reply->element[1]->str, reply->element[1]->len), *read_seq, *unread});
  }

  // The replies of one pipeline, with Redis error replies turned into errors.
  core::Result<std::vector<Reply>> checked(std::string_view routing_key, const std::vector<Command>& commands,
                                           bool durable = false) {
    auto replies = run_(routing_key, commands, durable);
    if (!replies) return replies.error();
    for (const auto& reply : *replies) {
      if (auto text = redis::error_text(reply); !text.empty()) {
        return Error::of(ErrorCode::unavailable, fmt::format("store: Redis error: {}", text));
      }
    }
    return replies;
  }

  core::Result<Reply> read(std::string_view routing_key, Command command) {
    auto replies = checked(routing_key, {std::move(command)});
    if (!replies) return replies.error();
    return std::move(replies->front());
  }

  // A write: acknowledged as the store's durability says.
  core::Result<Reply> write(std::string_view routing_key, Command command) {
    auto replies = checked(routing_key, {std::move(command)}, true);
    if (!replies) return replies.error();
    return std::move(replies->front());
  }

  Executor run_;
  bool cluster_;
};

}  // namespace

std::unique_ptr<Store> make_redis_store(Executor executor, bool cluster) {
  return std::make_unique<RedisStore>(std::move(executor), cluster);
}

}  // namespace intercomm::store::redis_detail
