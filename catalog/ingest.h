// Ingest: the one path by which new content enters the catalog, shared by
// the mount's committer (fs/committer.h), `samplectl import` and the
// recovery of sealed versions (catalog/recovery.h).
//
// New content is written into staging files (ObjectWriter) by whoever has
// it. A batch of them is then
//   1. published together (ObjectWriter::PublishAll): each phase (fsync the
//      data, link, fsync the directories) runs over the whole batch, so a
//      journalling file system commits once per phase, not once per file;
//   2. recorded together, in one catalog transaction: a few hundred records
//      cost one BEGIN/COMMIT. Records are written by the caller's function,
//      in the batch's order, and only for what was published.
// SPEC section 3's order holds for every item: its object is durable
// before any record names it.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "catalog/status.h"

namespace samplefs {

// Step 1: one answer per writer, in order (a null writer answers kNotFound:
// an item that has no content to publish).
std::vector<Result<PublishedObject>> PublishBatch(std::span<ObjectWriter* const> writers);

struct RecordOptions {
  // How long the batch's transaction waits for another process's write
  // lock (Transaction's `wait_ms`; -1: the busy timeout).
  int wait_ms = -1;
  // If the batch's transaction fails after it began (one item's record
  // failed), each item is recorded again in a transaction of its own, so
  // that one item's failure is its own; `item_wait_ms(i)` is its wait.
  // Without it (null) the batch's failure is every item's answer.
  std::function<int(size_t)> item_wait_ms;
};

// Step 2: records items [0, n) in one transaction: `record(i)` for each i
// with `wanted(i)` (the others answer Ok and are not touched). Returns one
// status per item. If the transaction cannot begin (kBusy: the catalog is
// locked) that is every wanted item's answer; nothing is retried then.
// The caller holds whatever its records need locked (the Catalog's own
// lock is taken here, after the caller's: see fs/open_files.h).
std::vector<Status> RecordBatch(Catalog& catalog, size_t n, const std::function<bool(size_t)>& wanted,
                                const std::function<Status(size_t)>& record, const RecordOptions& options);

}  // namespace samplefs
