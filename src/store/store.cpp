// The Store's default composite operations, built from the primitive ones.
#include "store/store.hpp"

namespace intercomm::store {

core::Result<bool> Store::put_if_absent_indexed(const Bucket& bucket, std::string_view key,
                                                std::string_view value,
                                                const std::vector<IndexEntry>& indexes,
                                                std::string_view entry) {
  auto written = put_if_absent(bucket, key, value);
  if (!written || !*written) return written;
  for (const auto& index : indexes) {
    if (auto added = index_add(index.bucket, index.index_key, entry); !added) return added.error();
  }
  return true;
}

}  // namespace intercomm::store
