#include "catalog/mount_session.h"

#include <algorithm>

namespace samplefs {

namespace {

// Runs one statement with its parameters in a short transaction (waiting
// at most `wait_ms` for a lock: a heartbeat never queues behind a long
// writer). Returns the first column of the first row, if any.
Result<int64_t> WriteOne(Catalog& catalog, const std::string& sql, const std::vector<std::string>& text,
                         const std::vector<int64_t>& ints, int wait_ms) {
  Transaction txn(catalog, wait_ms);
  SFS_RETURN_IF_ERROR(txn.status());
  int64_t first = 0;
  {
    SFS_ASSIGN_OR_RETURN(Statement * st, catalog.db().Prepare(sql));
    StatementScope scope(*st);  // reset before the commit
    int i = 1;
    for (const auto& t : text) st->Bind(i++, std::string_view(t));
    for (int64_t v : ints) st->Bind(i++, v);
    for (bool first_row = true;; first_row = false) {
      SFS_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      if (first_row) first = st->Int(0);
    }
  }
  SFS_RETURN_IF_ERROR(txn.Commit());
  return first;
}

}  // namespace

Result<int64_t> RegisterMountSession(Catalog& catalog, const std::string& host, int64_t pid,
                                     const std::string& mountpoint, int64_t now) {
  return WriteOne(catalog,
                  "INSERT INTO mount_session(id, host, mountpoint, pid, started, heartbeat) VALUES (" +
                      catalog.db().NewIdSql("mount_session") + ", ?, ?, ?, ?, ?) RETURNING id",
                  {host, mountpoint}, {pid, now, now}, 2000);
}

Status HeartbeatMountSession(Catalog& catalog, const MountSession& s, int64_t now) {
  SFS_ASSIGN_OR_RETURN(int64_t found,
                       WriteOne(catalog, "UPDATE mount_session SET heartbeat = ? WHERE id = ? RETURNING id", {},
                                {now, s.id}, 200));
  if (found) return Status::Ok();
  // Removed behind our back (fsck --repair during an outage): back again.
  return WriteOne(catalog,
                  "INSERT INTO mount_session(host, mountpoint, id, pid, started, heartbeat) "
                  "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                  {s.host, s.mountpoint}, {s.id, s.pid, s.started, now}, 200)
      .status();
}

Status EndMountSession(Catalog& catalog, int64_t id) { return DeleteMountSession(catalog, id); }

Status DeleteMountSession(Catalog& catalog, int64_t id) {
  return WriteOne(catalog, "DELETE FROM mount_session WHERE id = ?", {}, {id}, 2000).status();
}

Result<std::vector<MountSession>> ListMountSessions(Catalog& catalog) {
  std::vector<MountSession> out;
  SFS_ASSIGN_OR_RETURN(Statement * st, catalog.db().Prepare(
                                           "SELECT id, host, pid, mountpoint, started, heartbeat "
                                           "FROM mount_session ORDER BY id"));
  StatementScope scope(*st);
  for (;;) {
    SFS_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    MountSession s;
    s.id = st->Int(0);
    s.host = st->Text(1);
    s.pid = st->Int(2);
    s.mountpoint = st->Text(3);
    s.started = st->Int(4);
    s.heartbeat = st->Int(5);
    out.push_back(std::move(s));
  }
  return out;
}

bool SessionIsLive(const MountSession& s, int64_t now) { return now - s.heartbeat < kLiveSessionSec; }
bool SessionIsStale(const MountSession& s, int64_t now) { return now - s.heartbeat > kStaleSessionSec; }

int64_t GcCutoff(const std::vector<MountSession>& sessions, int64_t now, int64_t grace_sec) {
  int64_t cutoff = now - grace_sec;
  for (const auto& s : sessions)
    // Objects carry whole seconds: one from the start's own second is spared.
    if (SessionIsLive(s, now)) cutoff = std::min(cutoff, s.started - grace_sec - 1);
  return cutoff;
}

}  // namespace samplefs
