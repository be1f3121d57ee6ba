// Recovery of versions sealed by a process that died (SPEC section 3:
// after a daemon's death, `kill -9`, an abort, an OOM kill, nothing whose
// close() returned 0 is lost).
//
// A mount seals each version when a close() of it returns, and durably at
// fsync (catalog/object_store.h, "Seals": a line of the session's
// seals.log, catalog/seal_log.h; a `<staging>.seal` file of its own from a
// daemon older than issue 16). RecoverSealedVersions takes the
// staging sessions of dead processes, re-hashes each sealed staging file
// against its seal and, for what verifies, publishes the object and
// records it on the file's record in one transaction per version, oldest
// seal first, so the last close wins. A version that does not verify (its
// bytes changed after the seal, a seal cut short), whose record is gone, or
// whose seal does not parse (a damaged record of the log) is dropped and
// reported; a record cut short at the log's end (a power cut during the
// append, so no close() had returned) is ignored. Staging files without
// a seal were never closed: removed, never committed.
//
// Run by the mount before it serves (mount/main.cc) and by
// `samplectl fsck --repair`. Safe with live mounts of the same store:
// their sessions are locked and left alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "catalog/status.h"

namespace samplefs {

struct RecoveryReport {
  int committed = 0;        // sealed versions verified and recorded
  int dropped = 0;          // sealed versions that could not be (see problems)
  int never_closed = 0;     // unsealed staging files removed
  std::vector<std::string> problems;  // one line per dropped version
};

// Returns kBusy (and keeps the sessions for a later try) if the catalog
// cannot be written; per-version failures are in the report.
Result<RecoveryReport> RecoverSealedVersions(Catalog& catalog, ObjectStore& store);

}  // namespace samplefs
