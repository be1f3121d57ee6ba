#include "catalog/recovery.h"

#include <spdlog/spdlog.h>

namespace samplefs {

namespace {

// The record update of one verified version (in the caller's transaction).
// Returns false if the file's record is gone.
Result<bool> RecordSealed(Catalog& catalog, const Seal& seal, const PublishedObject& obj) {
  auto e = catalog.EntryById(seal.entry_id);
  if (!e.ok()) {
    if (e.status().is_not_found()) return false;
    return e.status();
  }
  if (e->type != EntryType::kFile) return false;
  e->hash = obj.hash.hex();
  e->size = obj.size;
  e->mtime_ns = seal.mtime_ns;
  if (seal.mode >= 0) e->mode = static_cast<uint32_t>(seal.mode);
  SFS_RETURN_IF_ERROR(catalog.UpdateEntry(*e));
  return true;
}

}  // namespace

Result<RecoveryReport> RecoverSealedVersions(Catalog& catalog, ObjectStore& store) {
  RecoveryReport report;
  SFS_ASSIGN_OR_RETURN(std::vector<ObjectStore::Orphan> orphans, store.TakeOrphanedSessions(&report.never_closed));
  auto drop = [&](const std::string& what, const std::string& why) {
    ++report.dropped;
    report.problems.push_back(what + ": " + why);
  };
  for (auto& o : orphans) {
    if (!o.seal.ok()) {
      drop(o.seal_path, o.seal.status().message());
      continue;
    }
    const Seal& seal = *o.seal;
    const std::string what = seal.path.empty() ? "file #" + std::to_string(seal.entry_id) : seal.path;
    PublishedObject obj;
    if (o.writer) {
      if (o.writer->size() != seal.size) {
        drop(what, "the staging file is " + std::to_string(o.writer->size()) + " bytes, " +
                       std::to_string(seal.size) + " were sealed; not recorded");
        continue;
      }
      // Publish re-hashes the bytes from disk; only a match is recorded.
      auto hashed = o.writer->Digest();
      if (!hashed.ok()) {
        drop(what, hashed.status().message());
        continue;
      }
      if (*hashed != seal.hash) {
        drop(what, "its bytes changed after it was sealed (hash " + hashed->hex() + ", sealed " +
                       seal.hash.hex() + "); not recorded");
        continue;
      }
      auto published = o.writer->Publish();
      if (!published.ok()) {
        drop(what, published.status().message());
        continue;
      }
      obj = *published;
    } else if (store.Exists(seal.hash)) {
      // Published before the death, not yet recorded.
      auto info = store.Stat(seal.hash);
      if (!info.ok() || info->size != seal.size) {
        drop(what, "its object does not match the seal");
        continue;
      }
      obj.hash = seal.hash;
      obj.size = seal.size;
      (void)store.Touch(seal.hash);  // spared by gc until recorded
    } else {
      drop(what, "its staging file is gone and no object holds it");
      continue;
    }
    Transaction txn(catalog);
    if (!txn.status().ok()) {
      store.FinishOrphanedSessions(false);
      return txn.status();
    }
    auto recorded = RecordSealed(catalog, seal, obj);
    Status s = recorded.ok() ? txn.Commit() : recorded.status();
    if (!s.ok()) {
      if (s.code() == Code::kBusy) {  // the sessions stay for a later try
        store.FinishOrphanedSessions(false);
        return s;
      }
      drop(what, s.message());
      continue;
    }
    if (!*recorded) {
      drop(what, "its record was deleted before the version could be recorded");
      continue;
    }
    ++report.committed;
  }
  store.FinishOrphanedSessions();
  return report;
}

}  // namespace samplefs
