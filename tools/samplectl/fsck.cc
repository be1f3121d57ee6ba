// samplectl fsck (check catalog and store against each other) and
// samplectl gc (remove objects no record references).
#include <spdlog/spdlog.h>

#include <ctime>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "catalog/crash_point.h"
#include "catalog/hash.h"
#include "catalog/mount_session.h"
#include "catalog/recovery.h"
#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

constexpr int64_t kStaleStagingSec = 24 * 3600;

// Runs a query that returns text rows; each row's columns joined by " ".
Status ForTextRows(Database& db, const std::string& sql,
                   const std::function<void(const Statement&)>& fn) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  for (;;) {
    SFS_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return Status::Ok();
    fn(*st);
  }
}

// Every referenced hash with its recorded size and one entry that uses it
// (for messages), and how many entries use it.
struct Reference {
  uint64_t size = 0;
  int64_t example_entry = 0;
  int64_t uses = 0;
  bool size_conflict = false;  // entries disagree on the size of one hash
};

Status LoadReferences(Database& db, std::unordered_map<std::string, Reference>* refs) {
  return ForTextRows(db,
                     "SELECT hash, min(size), max(size), min(id), count(*) FROM entry "
                     "WHERE type = 'file' GROUP BY hash",
                     [&](const Statement& st) {
                       Reference r;
                       r.size = static_cast<uint64_t>(st.Int(1));
                       r.size_conflict = st.Int(1) != st.Int(2);
                       r.example_entry = st.Int(3);
                       r.uses = st.Int(4);
                       (*refs)[st.Text(0)] = r;
                     });
}

// ---------------------------------------------------------------------------
// fsck

struct FsckOptions {
  bool verify = false;
  bool repair = false;
};

class Fsck {
 public:
  Fsck(Context& ctx, const FsckOptions& o) : ctx_(ctx), o_(o), db_(ctx.catalog->db()) {}

  int Run() {
    CheckCatalog();
    CheckObjects();
    CheckStaging();
    CheckSessions();
    Print("");
    std::string summary = std::to_string(problems_) + " problem" + (problems_ == 1 ? "" : "s");
    if (problems_) summary += " (" + Join(problem_kinds_) + ")";
    summary += "; info: " + std::to_string(unreferenced_) + " unreferenced object" +
               (unreferenced_ == 1 ? "" : "s") + " (" + HumanBytes(unreferenced_bytes_) +
               ", 'samplectl gc' removes them), " + std::to_string(stale_staging_) +
               " stale staging file" + (stale_staging_ == 1 ? "" : "s");
    if (o_.repair) summary += ", " + std::to_string(repaired_) + " repaired";
    std::printf("fsck: %s\n", summary.c_str());
    return problems_ ? kExitProblems : kExitOk;
  }

 private:
  static std::string Join(const std::map<std::string, int64_t>& kinds) {
    std::string out;
    for (const auto& [k, n] : kinds) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + k;
    return out;
  }

  void Print(const std::string& line) {
    if (progress_) progress_->Clear();
    if (!line.empty()) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  void Problem(const std::string& kind, const std::string& line) {
    ++problems_;
    ++problem_kinds_[kind];
    Print("PROBLEM " + line);
  }
  void Info(const std::string& line) {
    if (!ctx_.globals.quiet) Print("info    " + line);
  }

  std::string Where(int64_t entry_id) {
    auto p = EntryDisplayPath(*ctx_.catalog, entry_id);
    return p.ok() ? *p : "entry " + std::to_string(entry_id);
  }

  void CheckCatalog() {
    auto integrity = db_.IntegrityProblems();
    if (!integrity.ok())
      Problem("catalog integrity failure", "catalog: integrity check failed: " + integrity.status().message());
    else
      for (const auto& line : *integrity)
        Problem(line.find(" refers to a missing ") != std::string::npos ? "dangling reference"
                                                                       : "catalog integrity failure",
                "catalog: " + line);
    Status s;

    // Tags and annotations point at records through (entity, record_id),
    // which no foreign key can check; triggers keep them clean, so any
    // leftover means someone edited the catalog by hand.
    for (const char* table : {"tagging", "annotation"}) {
      std::string sql = std::string("SELECT entity, record_id FROM ") + table + " x WHERE NOT EXISTS (" +
                        "SELECT 1 FROM species WHERE x.entity = 'species' AND id = x.record_id UNION ALL "
                        "SELECT 1 FROM sample WHERE x.entity = 'sample' AND id = x.record_id UNION ALL "
                        "SELECT 1 FROM dye WHERE x.entity = 'dye' AND id = x.record_id UNION ALL "
                        "SELECT 1 FROM slide WHERE x.entity = 'slide' AND id = x.record_id UNION ALL "
                        "SELECT 1 FROM image WHERE x.entity = 'image' AND id = x.record_id UNION ALL "
                        "SELECT 1 FROM entry WHERE x.entity = 'entry' AND id = x.record_id)";
      s = ForTextRows(db_, sql, [&](const Statement& st) {
        Problem("dangling reference", std::string("catalog: a ") + table + " row points at " + st.Text(0) +
                                          " " + std::to_string(st.Int(1)) + ", which does not exist");
      });
      if (!s.ok()) Problem("catalog integrity failure", std::string("catalog: cannot check ") + table + ": " + s.message());
    }
  }

  void CheckObjects() {
    std::unordered_map<std::string, Reference> refs;
    Status s = LoadReferences(db_, &refs);
    if (!s.ok()) {
      Problem("catalog integrity failure", "catalog: cannot list referenced objects: " + s.message());
      return;
    }
    Progress progress(ctx_.progress(), o_.verify ? "verifying" : "checking", refs.size());
    progress_ = &progress;

    // Records first: every referenced object must exist, with the size the
    // records say (and the right bytes, with --verify).
    std::vector<std::string> hashes;
    hashes.reserve(refs.size());
    for (const auto& [h, r] : refs) hashes.push_back(h);
    std::sort(hashes.begin(), hashes.end());
    std::unordered_set<std::string> verified;
    for (const auto& h : hashes) {
      const Reference& r = refs[h];
      std::string users = Where(r.example_entry) +
                          (r.uses > 1 ? " and " + std::to_string(r.uses - 1) + " more" : "");
      auto hash = ContentHash::FromHex(h);
      if (!hash) {
        Problem("bad hash", users + ": recorded hash '" + h + "' is not 32 hex digits");
        progress.Add(1);
        continue;
      }
      if (r.size_conflict) Problem("size mismatch", users + ": records of object " + h + " disagree on its size");
      auto info = ctx_.store->Stat(*hash);
      if (!info.ok()) {
        if (info.status().is_not_found())
          Problem("missing object", users + ": object " + h + " is missing from the store");
        else
          Problem("unreadable object", users + ": object " + h + ": " + info.status().message());
        progress.Add(1);
        continue;
      }
      if (info->size != r.size) {
        Problem("size mismatch", users + ": object " + h + " has " + std::to_string(info->size) +
                                     " bytes, the record says " + std::to_string(r.size));
      }
      if (o_.verify) {
        Status v = ctx_.store->Verify(*hash);
        if (!v.ok())
          Problem(v.code() == Code::kCorrupt ? "corrupt object" : "unreadable object",
                  users + ": " + v.message());
        verified.insert(h);
      }
      progress.Add(1, o_.verify ? info->size : 0);
    }

    // Then the store: objects nobody references are reported (gc's job);
    // with --verify their bytes are checked too.
    s = ctx_.store->ForEachObject([&](const ObjectInfo& info) -> Status {
      std::string h = info.hash.hex();
      if (refs.count(h)) return Status::Ok();
      ++unreferenced_;
      unreferenced_bytes_ += info.size;
      Info("object " + h + " (" + std::to_string(info.size) + " bytes) is not referenced by any record");
      if (o_.verify) {
        Status v = ctx_.store->Verify(info.hash);
        if (!v.ok() && v.code() == Code::kCorrupt)
          Problem("corrupt object", "unreferenced " + v.message());
      }
      return Status::Ok();
    });
    if (!s.ok()) Problem("unreadable store", "store: cannot list objects: " + s.message());
    progress.Finish();
    progress_ = nullptr;
  }

  void CheckStaging() {
    if (o_.repair) {
      // Versions a mount sealed (closed, or fsynced) and could not record
      // before it died: verified and recorded, as the next mount would.
      auto recovered = RecoverSealedVersions(*ctx_.catalog, *ctx_.store);
      if (!recovered.ok()) {
        Problem("repair failure", "cannot recover sealed versions: " + recovered.status().message());
      } else {
        if (recovered->committed)
          Info("recorded " + std::to_string(recovered->committed) +
               " file version(s) sealed by a daemon that died before recording them");
        if (recovered->never_closed)
          Info("removed " + std::to_string(recovered->never_closed) +
               " staging file(s) of a dead daemon that were never closed");
        for (const auto& p : recovered->problems) Problem("unrecoverable version", "dropped " + p);
        repaired_ += recovered->committed + recovered->never_closed;
      }
    }
    auto stale = ctx_.store->StaleStaging(kStaleStagingSec);
    if (!stale.ok()) {
      Problem("unreadable store", "store: cannot list staging files: " + stale.status().message());
      return;
    }
    stale_staging_ = static_cast<int64_t>(stale->size());
    for (const auto& p : *stale) Info("stale staging file " + p + " (left by a crash; --repair removes it)");
    if (o_.repair && !stale->empty()) {
      auto removed = ctx_.store->CleanStaging(kStaleStagingSec);
      if (!removed.ok()) Problem("repair failure", "cannot remove stale staging files: " + removed.status().message());
      else repaired_ += *removed;
    }
  }

  // Rows of mounts whose heartbeat stopped (killed, or the machine died):
  // gc ignores them; reported, and removed with --repair.
  void CheckSessions() {
    auto sessions = ListMountSessions(*ctx_.catalog);
    if (!sessions.ok()) {
      Problem("catalog integrity failure", "catalog: cannot read mount_session: " + sessions.status().message());
      return;
    }
    const int64_t now = std::time(nullptr);
    for (const auto& m : *sessions) {
      if (!SessionIsStale(m, now)) continue;
      Info("mount session " + std::to_string(m.id) + " (" + m.host + " pid " + std::to_string(m.pid) + " on " +
           m.mountpoint + ") has no heartbeat for " + std::to_string(now - m.heartbeat) +
           " s: a mount that died; gc ignores it" + (o_.repair ? "" : " (--repair removes it)"));
      if (o_.repair) {
        Status s = DeleteMountSession(*ctx_.catalog, m.id);
        if (!s.ok()) Problem("repair failure", "cannot remove mount session " + std::to_string(m.id) + ": " + s.message());
        else ++repaired_;
      }
    }
  }

  Context& ctx_;
  const FsckOptions& o_;
  Database& db_;
  Progress* progress_ = nullptr;
  int64_t problems_ = 0, unreferenced_ = 0, stale_staging_ = 0, repaired_ = 0;
  uint64_t unreferenced_bytes_ = 0;
  std::map<std::string, int64_t> problem_kinds_;
};

int RunFsck(Context& ctx, const FsckOptions& o) {
  int rc = ctx.Open(o.repair ? OpenMode::kReadWrite : OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  Fsck fsck(ctx, o);
  return fsck.Run();
}

// ---------------------------------------------------------------------------
// gc

struct GcOptions {
  bool dry_run = false;
  bool ignore_live_mounts = false;
  std::string grace = "1h";
};

int RunGc(Context& ctx, const GcOptions& o) {
  auto grace = ParseDuration(o.grace);
  if (!grace.ok()) return UsageError("--grace: {}", grace.status().message());
  if (int rc = ctx.Open(o.dry_run ? OpenMode::kReadOnly : OpenMode::kReadWrite); rc != kExitOk) return rc;
  Catalog& cat = *ctx.catalog;
  ObjectStore& store = *ctx.store;
  // Live mounts (catalog/mount_session.h): what one published since it
  // started may be referenced only by a commit it has still to make (a
  // closed file waiting for a locked or unreachable catalog), so it is
  // spared as if the grace period ran from that mount's start.
  std::vector<MountSession> sessions;
  if (!o.ignore_live_mounts) {
    auto listed = ListMountSessions(cat);
    if (!listed.ok()) {
      spdlog::error("cannot read the live mounts (mount_session): {}", listed.status().message());
      return kExitProblems;
    }
    sessions = std::move(*listed);
  }
  int64_t live = 0;
  for (const auto& m : sessions) live += SessionIsLive(m, std::time(nullptr));
  auto old_enough = [&](int64_t mtime) { return mtime <= GcCutoff(sessions, std::time(nullptr), *grace); };

  // Order matters while a mount is running: candidates are listed before
  // the referenced set is read, so an object published and recorded
  // meanwhile is in that set; one published (or re-touched by a dedup)
  // after the listing is young and fails the mtime re-check below.
  std::vector<ObjectInfo> candidates;
  int64_t young = 0;
  Status s = store.ForEachObject([&](const ObjectInfo& info) -> Status {
    if (old_enough(info.mtime_sec)) candidates.push_back(info);
    else ++young;
    return Status::Ok();
  });
  if (!s.ok()) {
    spdlog::error("cannot list objects: {}", s.message());
    return kExitProblems;
  }
  std::unordered_set<std::string> referenced;
  s = cat.ForEachReferencedHash([&](const std::string& h) {
    referenced.insert(h);
    return Status::Ok();
  });
  if (!s.ok()) {
    spdlog::error("cannot read the referenced objects: {}", s.message());
    return kExitProblems;
  }

  std::sort(candidates.begin(), candidates.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.hash.hex() < b.hash.hex(); });
  Progress progress(ctx.progress() && !o.dry_run, "gc", candidates.size());
  int64_t removed = 0, kept_young = 0, failures = 0;
  uint64_t removed_bytes = 0;
  Database& db = cat.db();
  for (const auto& c : candidates) {
    progress.Add(1);
    std::string h = c.hash.hex();
    if (referenced.count(h)) continue;
    if (o.dry_run) {
      std::printf("would remove %s %llu\n", h.c_str(), static_cast<unsigned long long>(c.size));
      ++removed;
      removed_bytes += c.size;
      continue;
    }
    // Re-check just before removing: a dedup by a running mount touches
    // the object before its transaction references it.
    auto now = store.Stat(c.hash);
    if (!now.ok()) continue;  // already gone
    if (!old_enough(now->mtime_sec)) {
      ++kept_young;
      continue;
    }
    auto st = db.Prepare("SELECT 1 FROM entry WHERE hash = ? LIMIT 1");
    if (st.ok()) {
      StatementScope scope(**st);
      scope->Bind(1, std::string_view(h));
      auto row = scope->Step();
      if (!row.ok() || *row) continue;  // referenced now, or unknown: keep it
    }
    Status r = store.Remove(c.hash);
    if (!r.ok() && !r.is_not_found()) {
      progress.Clear();
      spdlog::error("{}", r.message());
      ++failures;
      continue;
    }
    ++removed;
    if (removed == 1) CrashPoint("during-gc");
    removed_bytes += now->size;
    if (ctx.globals.verbose) {
      progress.Clear();
      std::printf("removed %s %llu\n", h.c_str(), static_cast<unsigned long long>(now->size));
    }
  }
  progress.Finish();
  if (!ctx.globals.quiet || o.dry_run)
    std::printf("gc: %s %lld unreferenced object%s (%s); kept %lld object%s younger than the grace period (%s)\n",
                o.dry_run ? "would remove" : "removed", static_cast<long long>(removed),
                removed == 1 ? "" : "s", HumanBytes(removed_bytes).c_str(),
                static_cast<long long>(young + kept_young), young + kept_young == 1 ? "" : "s",
                (o.grace + (live ? " from the start of " + std::to_string(live) + " live mount" +
                                       (live == 1 ? "" : "s")
                                 : "")).c_str());
  return failures ? kExitProblems : kExitOk;
}

}  // namespace

void AddFsckCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<FsckOptions>(app, out, "fsck",
      "Check the catalog (integrity_check, foreign keys) and the store: records whose object is\n"
      "missing or has the wrong size, corrupt objects (--verify re-hashes every object),\n"
      "unreferenced objects and stale staging files (reported as info). Exit 1 when problems\n"
      "are found.", RunFsck);
  sub->add_flag("--verify", o->verify, "Re-hash every object (reads the whole store)");
  sub->add_flag("--repair", o->repair, "Apply lossless fixes: record versions a dead daemon sealed, remove staging files older than a day");
}

void AddGcCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<GcOptions>(app, out, "gc",
      "Remove objects that no record references and that are older than the grace period.\n"
      "Safe while the catalog is mounted.", RunGc);
  sub->add_flag("-n,--dry-run", o->dry_run, "List what would be removed (hash and size); change nothing");
  sub->add_option("--grace", o->grace,
                  "Spare objects younger than this (30s, 10m, 1h, 2d, 0); while a mount is live\n"
                  "(heartbeat in the last minute), objects younger than its start minus this")
      ->capture_default_str();
  sub->add_flag("--ignore-live-mounts", o->ignore_live_mounts,
                "Apply only --grace, as if no mount were live (a full disk with idle mounts: a version\n"
                "closed but not yet recorded that is older than the grace period may be lost)");
}

}  // namespace samplefs::ctl
