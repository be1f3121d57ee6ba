#include "catalog/ingest.h"

namespace samplefs {

std::vector<Result<PublishedObject>> PublishBatch(std::span<ObjectWriter* const> writers) {
  std::vector<ObjectWriter*> present;
  present.reserve(writers.size());
  for (ObjectWriter* w : writers)
    if (w) present.push_back(w);
  auto published = ObjectWriter::PublishAll(present);
  std::vector<Result<PublishedObject>> out;
  out.reserve(writers.size());
  size_t next = 0;
  for (ObjectWriter* w : writers) {
    if (w) out.push_back(std::move(published[next++]));
    else out.emplace_back(Status(Code::kNotFound, "no content to publish"));
  }
  return out;
}

std::vector<Status> RecordBatch(Catalog& catalog, size_t n, const std::function<bool(size_t)>& wanted,
                                const std::function<Status(size_t)>& record, const RecordOptions& options) {
  std::vector<Status> out(n, Status::Ok());
  bool any = false;
  for (size_t i = 0; i < n && !any; ++i) any = wanted(i);
  if (!any) return out;
  bool began = false;
  auto run = [&](size_t from, size_t to, int wait_ms) -> Status {
    Transaction txn(catalog, wait_ms);
    SFS_RETURN_IF_ERROR(txn.status());
    began = true;
    for (size_t i = from; i < to; ++i) {
      if (!wanted(i)) continue;
      SFS_RETURN_IF_ERROR(record(i));
    }
    return txn.Commit();
  };
  Status all = run(0, n, options.wait_ms);
  if (all.ok()) return out;
  for (size_t i = 0; i < n; ++i) {
    if (!wanted(i)) continue;
    // The catalog could not be had (locked): that is every item's answer.
    // A failure inside the transaction: one at a time, if asked.
    out[i] = began && options.item_wait_ms ? run(i, i + 1, options.item_wait_ms(i)) : all;
  }
  return out;
}

}  // namespace samplefs
