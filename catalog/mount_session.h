// Live mounts (schema v4, table mount_session): each daemon registers a row
// at mount, refreshes its heartbeat every kHeartbeatSec and deletes the row
// at a clean exit. `samplectl gc` reads them: an object a live mount has
// published may be referenced only by a commit that mount has still to make
// (closed files waiting for a locked or unreachable catalog, retries), so
// gc spares what could be such an object (GcCutoff). A row whose heartbeat
// is older than kStaleSessionSec is a mount that died without cleaning up:
// ignored by gc, reported by fsck (and removed by fsck --repair).
//
// Times are Unix seconds of the machine that wrote them (the store's
// object mtimes are compared with them: keep the facility's clocks in sync,
// as NFS needs anyway).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace samplefs {

inline constexpr int64_t kHeartbeatSec = 10;
// A session whose heartbeat is younger than this is live (six missed beats).
inline constexpr int64_t kLiveSessionSec = 60;
// Older than this: a dead mount's row (fsck reports it).
inline constexpr int64_t kStaleSessionSec = 300;

struct MountSession {
  int64_t id = 0;
  std::string host;
  int64_t pid = 0;
  std::string mountpoint;
  int64_t started = 0;    // Unix seconds
  int64_t heartbeat = 0;  // Unix seconds
};

// Registers this mount; returns its session id.
Result<int64_t> RegisterMountSession(Catalog& catalog, const std::string& host, int64_t pid,
                                     const std::string& mountpoint, int64_t now);
// Refreshes the heartbeat (re-registers under the same id if the row was
// removed, e.g. by fsck --repair while the catalog was unreachable).
Status HeartbeatMountSession(Catalog& catalog, const MountSession& session, int64_t now);
Status EndMountSession(Catalog& catalog, int64_t id);
Result<std::vector<MountSession>> ListMountSessions(Catalog& catalog);
Status DeleteMountSession(Catalog& catalog, int64_t id);

// gc's rule: an unreferenced object may be removed only if its mtime is at
// or before the returned time: now - grace, and for every live session
// (heartbeat within kLiveSessionSec of now) its start - grace - 1. Objects a
// live mount published (or touched by deduplication) are all younger than
// its start, so none it may still commit is removed; stale sessions are
// ignored.
int64_t GcCutoff(const std::vector<MountSession>& sessions, int64_t now, int64_t grace_sec);
bool SessionIsLive(const MountSession& s, int64_t now);
bool SessionIsStale(const MountSession& s, int64_t now);

}  // namespace samplefs
