// The Store's step-by-step operations, for backends that cannot write a
// message and its inbox entries in one atomic step.
#include "store/store.hpp"

#include "store/buckets.hpp"

namespace intercomm::store {

std::vector<core::Result<bool>> Store::put_if_absent_many(const Bucket& bucket,
                                                          std::span<const KeyValue> entries) {
  std::vector<core::Result<bool>> outcomes;
  outcomes.reserve(entries.size());
  for (const auto& entry : entries) {
    if (!outcomes.empty() && !outcomes.back()) {
      outcomes.push_back(outcomes.back().error());
      continue;
    }
    outcomes.push_back(put_if_absent(bucket, entry.key, entry.value));
  }
  return outcomes;
}

StoredMessages Store::store_messages_in_steps(std::span<const NewMessage> messages) {
  StoredMessages out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& message = messages[i];
    // The message first: an inbox entry then never points to a missing message.
    auto written = put_if_absent(kMessages, message.message_id, message.value);
    if (!written) {
      out.error = written.error();
      return out;
    }
    if (!*written) {
      auto existing = get(kMessages, message.message_id);
      if (!existing || !existing->has_value()) {
        out.error = existing ? core::Error::of(core::ErrorCode::unavailable, "store: a message vanished")
                             : existing.error();
        return out;
      }
      out.existing_index = i;
      out.existing_value = std::move(**existing);
      return out;
    }
    std::vector<std::uint64_t> seqs;
    for (std::size_t inbox = 0; inbox < message.inboxes.size(); ++inbox) {
      const auto side = side_of(message, inbox);
      auto seq = inbox_append(message.inboxes[inbox], message.message_id, side.peer, side.received);
      if (!seq) {
        out.error = seq.error();
        return out;
      }
      seqs.push_back(*seq);
    }
    out.seqs.push_back(std::move(seqs));
  }
  return out;
}

}  // namespace intercomm::store
