// The MTA's job table: which job runs which handler (the handlers are in
// send.cpp, reads.cpp, conversations.cpp, retract.cpp, presence.cpp, blocks.cpp and
// subscriptions.cpp).
#include "mta/mta.hpp"

#include "mta/jobs.hpp"

namespace intercomm::mta {

void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MtaOptions options) {
  auto context = std::make_shared<detail::Context>(detail::Context{store, bus, options});
  using Job = detail::JobResult (*)(detail::Context&, const boost::json::object&);
  const auto bind = [&](std::string_view name, Job job) {
    worker.on(std::string(name), [context, job](const boost::json::object& params, const worker::JobContext&) {
      return job(*context, params);
    });
  };
  worker.on_ordered(std::string(jobs::SendMessage::name), [context](std::span<const worker::BatchJob> batch) {
    return detail::send_messages(*context, batch);
  });
  bind(jobs::GetMessage::name, &detail::get_message);
  bind(jobs::ListMessages::name, &detail::list_messages);
  bind(jobs::SubscribeUser::name, &detail::subscribe_user);
  bind(jobs::ListSubscriptions::name, &detail::list_subscriptions);
  bind(jobs::UnsubscribeUser::name, &detail::unsubscribe_user);
  bind(jobs::ClaimIdempotencyKey::name, &detail::claim_idempotency_key);
  bind(jobs::ListDeliveries::name, &detail::list_deliveries);
  bind(jobs::ListConversations::name, &detail::list_conversations);
  bind(jobs::ListConversation::name, &detail::list_conversation);
  bind(jobs::MarkRead::name, &detail::mark_read);
  bind(jobs::GetReceipt::name, &detail::get_receipt);
  bind(jobs::RetractMessage::name, &detail::retract_message);
  bind(jobs::GetPresence::name, &detail::get_presence);
  bind(jobs::RecordLastSeen::name, &detail::record_last_seen);
  bind(jobs::BlockUser::name, &detail::block_user);
  bind(jobs::UnblockUser::name, &detail::unblock_user);
  bind(jobs::ListBlocks::name, &detail::list_blocks);
}

}  // namespace intercomm::mta
