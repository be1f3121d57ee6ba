// samplefs: mounts a catalog.
//
//   samplefs [--config FILE] MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d] [-s]
//   samplefs SOURCE MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d] [-s]
//
// The second form is what mount(8) runs, through mount.fuse3 or our
// mount.samplefs helper, for `mount -t fuse.samplefs SOURCE MOUNTPOINT` and
// fstab lines: SOURCE is the configuration file (a word without '/', such
// as "samplefs", means the default configuration).
//
// Options: ro, allow_other, and any libfuse mount option; default_permissions
// is always on; fstab-only words (defaults, noauto, nofail, x-*, …) are
// dropped. Without -f the daemon detaches after the mount succeeded and
// logs to the configured log_file, or to syslog.
#include <fuse_lowlevel.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>
#include <cctype>
#include <cstdint>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/config.h"
#include "catalog/object_store.h"
#include "catalog/mount_session.h"
#include "catalog/recovery.h"
#include "catalog/unique_fd.h"
#include "fs/filesystem.h"

namespace {

void Usage(std::ostream& out) {
  out << "Usage: samplefs [--config FILE] MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d] [-s]\n"
         "       samplefs SOURCE MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d] [-s]\n"
         "\n"
         "Mounts the samplefs catalog named by the configuration (see samplectl init).\n"
         "  --config FILE  configuration file (default: $SAMPLEFS_CONFIG,\n"
         "                 ~/.config/samplefs/samplefs.conf, /etc/samplefs/samplefs.conf)\n"
         "  SOURCE         as mount(8) passes it: a configuration file, or a word\n"
         "                 without '/' (e.g. samplefs) for the default configuration\n"
         "  -o ro          read-only catalog\n"
         "  -o allow_other let other users in (needs user_allow_other in /etc/fuse.conf);\n"
         "                 files and folders then show the owners they record\n"
         "  -o noatime     reads do not update access times (default: relatime)\n"
         "  -o sync_close  close() returns once the file is durable and recorded\n"
         "                 (default: recorded in batches right after close; fsync waits)\n"
         "  -o write_behind_min_free=SIZE|off\n"
         "                 large writes are answered before they reach the store while\n"
         "                 its disk has SIZE free (K/M/G/T suffixes; default 1G)\n"
         "  -o create      create the catalog and store if they do not exist\n"
         "                 (otherwise a missing catalog is refused: see samplectl init)\n"
         "  -o nonempty    mount over a directory that is not empty (hides its files)\n"
         "  -f             stay in the foreground, log to stderr\n"
         "  -d             FUSE debug output (implies -f)\n"
         "  -s             single-threaded\n";
}

// "off", or a number of bytes with an optional K/M/G/T (binary) suffix.
std::optional<uint64_t> ParseSize(const std::string& text) {
  if (text == "off") return samplefs::ObjectStore::kWriteBehindOff;
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  uint64_t v = std::stoull(text.substr(0, digits));
  std::string unit = text.substr(digits);
  int shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : unit == "T" ? 40 : -1;
  if (shift < 0 || v > (uint64_t{1} << (63 - shift))) return std::nullopt;
  return v << shift;
}

struct Args {
  std::string config;
  std::vector<std::string> positional;  // [SOURCE] MOUNTPOINT
  std::string mountpoint;
  std::vector<std::string> options;  // -o values, split on ','
  bool foreground = false, debug = false, single = false, help = false, version = false;
};

bool Parse(int argc, char** argv, Args* a, std::string* err) {
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) {
        *err = s + " needs a value";
        return false;
      }
      *out = argv[++i];
      return true;
    };
    if (s == "-h" || s == "--help") a->help = true;
    else if (s == "-V" || s == "--version") a->version = true;
    else if (s == "-f") a->foreground = true;
    else if (s == "-d" || s == "--debug") a->debug = a->foreground = true;
    else if (s == "-s") a->single = true;
    else if (s == "--config" || s == "-c") { if (!value(&a->config)) return false; }
    else if (s.rfind("--config=", 0) == 0) a->config = s.substr(9);
    else if (s == "-o") {
      std::string v;
      if (!value(&v)) return false;
      size_t start = 0;
      while (start <= v.size()) {
        size_t end = v.find(',', start);
        if (end == std::string::npos) end = v.size();
        if (end > start) a->options.push_back(v.substr(start, end - start));
        start = end + 1;
      }
    } else if (s.rfind("-o", 0) == 0 && s.size() > 2) {
      a->options.push_back(s.substr(2));
    } else if (!s.empty() && s[0] == '-') {
      *err = "unknown option " + s;
      return false;
    } else if (a->positional.size() < 2) {
      a->positional.push_back(s);
    } else {
      *err = "unexpected argument " + s;
      return false;
    }
  }
  if (a->help || a->version) return true;
  if (a->positional.empty()) {
    *err = "no mountpoint given";
    return false;
  }
  a->mountpoint = a->positional.back();
  if (a->positional.size() == 2) {
    const std::string& source = a->positional[0];
    if (source.find('/') != std::string::npos) {
      if (!a->config.empty() && a->config != source) {
        *err = "two configurations given: --config " + a->config + " and " + source;
        return false;
      }
      a->config = source;
    }
    // Otherwise a name for mount(8)'s table (e.g. "samplefs"): the
    // configuration is --config's or the default one.
  }
  return true;
}

// Options of fstab and mount(8) that mean nothing to FUSE (libfuse rejects
// unknown options): mount.fuse3 already strips some of them, but not all,
// and the daemon may be run by mount.samplefs or by hand with an fstab line.
bool IsMountTableWord(const std::string& o) {
  static const char* const kWords[] = {"defaults", "auto", "noauto", "user", "users", "nouser",
                                       "owner", "group", "nofail", "_netdev", "relatime",
                                       "norelatime", "strictatime", "lazytime", "nolazytime",
                                       "loud", "silent"};
  for (const char* w : kWords)
    if (o == w) return true;
  return o.rfind("x-", 0) == 0 || o.rfind("comment=", 0) == 0;
}

void SetupLogging(const samplefs::Config& cfg, bool detached) {
  std::shared_ptr<spdlog::logger> logger;
  if (!detached) {
    logger = spdlog::stderr_color_mt("samplefs");
  } else if (!cfg.log_file.empty()) {
    logger = spdlog::basic_logger_mt("samplefs", cfg.log_file);
  } else {
    logger = spdlog::syslog_logger_mt("samplefs", "samplefs", LOG_PID);
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  spdlog::flush_on(spdlog::level::warn);
}

// Refuses what is almost surely a mistake, before anything is opened or
// forked: a mountpoint that is already a samplefs mount (a second daemon
// would stack on the first), and a non-empty one (its files would vanish
// under the mount without a word) unless -o nonempty.
bool CheckMountpoint(const std::string& mountpoint, bool nonempty, std::string* err) {
  char real[PATH_MAX];
  if (!::realpath(mountpoint.c_str(), real)) {
    *err = "mountpoint " + mountpoint + ": " + std::strerror(errno);
    return false;
  }
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string source, target, type;
    fields >> source >> target >> type;
    if (target == real && type.rfind("fuse.samplefs", 0) == 0) {
      *err = std::string(real) + " is already a samplefs mount; unmount it first (fusermount3 -u " + real + ")";
      return false;
    }
  }
  struct stat st;
  if (::stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    *err = "mountpoint " + mountpoint + " is not a directory";
    return false;
  }
  if (!nonempty) {
    DIR* d = ::opendir(real);
    if (!d) {
      *err = "mountpoint " + mountpoint + ": " + std::strerror(errno);
      return false;
    }
    bool empty = true;
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        empty = false;
        break;
      }
    }
    ::closedir(d);
    if (!empty) {
      *err = "mountpoint " + mountpoint + " is not empty: its files would be hidden by the mount "
             "(use an empty directory, or -o nonempty to mount over them)";
      return false;
    }
  }
  return true;
}

// A read-write mount of a catalog that does not exist would create a new,
// empty one: with a misspelt `catalog =` path, the lab's files would seem
// gone and new ones would go to the wrong place. Only `samplectl init` or
// an explicit -o create make one.
bool CheckCatalogExists(const samplefs::Config& cfg, bool create, std::string* err) {
  if (create || samplefs::IsPostgresUrl(cfg.catalog)) return true;
  struct stat st;
  if (::stat(cfg.catalog.c_str(), &st) == 0) return true;
  *err = "no catalog at " + cfg.catalog + " (configuration: " + cfg.source +
         "). Create one with 'samplectl init', mount with -o create to create it, or fix 'catalog =' "
         "in the configuration";
  return false;
}

// This mount's row in mount_session (catalog/mount_session.h): registered
// before anything is published to the store, a heartbeat every
// kHeartbeatSec from its own thread, removed at a clean exit. A catalog
// that cannot be written at the moment only delays a beat (logged at debug:
// the outage itself is reported by the commits that wait for it).
class SessionKeeper {
 public:
  explicit SessionKeeper(samplefs::Catalog& catalog) : catalog_(catalog) {}
  ~SessionKeeper() { Stop(); }

  samplefs::Status Start(const std::string& mountpoint) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
    session_.host = host;
    session_.pid = ::getpid();
    session_.mountpoint = mountpoint;
    session_.started = session_.heartbeat = std::time(nullptr);
    auto id = samplefs::RegisterMountSession(catalog_, session_.host, session_.pid, mountpoint, session_.started);
    if (!id.ok()) return id.status();
    session_.id = *id;
    thread_ = std::thread([this] { Run(); });
    return samplefs::Status::Ok();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    samplefs::Status s = samplefs::EndMountSession(catalog_, session_.id);
    if (!s.ok()) spdlog::warn("cannot remove this mount's session row {}: {}", session_.id, s.message());
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(samplefs::kHeartbeatSec), [&] { return stop_; })) {
      lock.unlock();
      samplefs::Status s = samplefs::HeartbeatMountSession(catalog_, session_, std::time(nullptr));
      if (!s.ok()) spdlog::debug("heartbeat of mount session {}: {}", session_.id, s.message());
      lock.lock();
    }
  }

  samplefs::Catalog& catalog_;
  samplefs::MountSession session_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Reader connections of a mount's catalog (docs/DECISIONS.md "Catalog
// readers"): enough for the FUSE workers that read at once on two to eight
// cores; each SQLite reader keeps a page cache of its own.
constexpr int kCatalogReaders = 8;

// Opens the catalog and store, recovers what a dead daemon sealed, mounts
// and serves until unmounted or signalled. `ready` valid: daemonized; the
// parent waits on it for 'm' (mounted) or EOF (failed, reason on stderr).
int Serve(const Args& args, const samplefs::Config& cfg, samplefs::fs::MountOptions mopts,
          const std::vector<std::string>& fuse_opts, std::optional<uint64_t> write_behind_min_free,
          bool create, samplefs::UniqueFd ready) {
  std::unique_ptr<samplefs::Catalog> catalog;
  std::unique_ptr<samplefs::ObjectStore> store;
  // listen: other mounts' and tools' changes come as notifications
  // (PostgreSQL; SQLite's are polled).
  samplefs::Status s = samplefs::OpenCatalogAndStore(cfg, create && !mopts.read_only, mopts.read_only,
                                                     &catalog, &store, /*listen=*/true);
  if (!s.ok()) {
    spdlog::critical("cannot open the catalog ({}): {}", cfg.source, s.message());
    return 1;
  }
  if (write_behind_min_free) store->SetWriteBehindMinFree(*write_behind_min_free);
  // Lookups, getattr, readdir and getxattr read on connections of their
  // own, so a commit round holding the writer does not stall them (a
  // reader per busy FUSE worker, at most kCatalogReaders; more fall back
  // to the writer).
  catalog->EnableReaders(kCatalogReaders);
  std::vector<std::string> recovery_problems;
  SessionKeeper session(*catalog);
  if (!mopts.read_only) {
    // Before anything is published: gc spares what this mount may still
    // commit (samplectl gc, catalog/mount_session.h).
    s = session.Start(args.mountpoint);
    if (!s.ok()) {
      spdlog::critical("cannot register this mount in the catalog: {}", s.message());
      return 1;
    }
    // Versions a dead daemon sealed (closed, not yet recorded) first, so
    // that the mount shows them from its first answer.
    auto recovered = samplefs::RecoverSealedVersions(*catalog, *store);
    if (!recovered.ok()) {
      spdlog::critical("cannot recover the files a previous daemon left: {}", recovered.status().message());
      return 1;
    }
    if (recovered->committed || recovered->dropped || recovered->never_closed)
      spdlog::warn("recovered after a daemon's death: {} closed file version(s) recorded, {} dropped, "
                   "{} never closed (removed)",
                   recovered->committed, recovered->dropped, recovered->never_closed);
    for (const auto& p : recovered->problems) spdlog::error("recovery dropped {}", p);
    recovery_problems = recovered->problems;
    // Loose staging files of an older version, or of samplectl, older
    // than a day; younger ones may belong to a writer that runs now.
    auto cleaned = store->CleanStaging(24 * 3600);
    if (cleaned.ok() && *cleaned) spdlog::info("removed {} stale staging file(s)", *cleaned);
    s = store->ClaimSession();
    if (!s.ok()) {
      spdlog::critical("cannot prepare the store: {}", s.message());
      return 1;
    }
  }
  samplefs::fs::Filesystem filesystem(*catalog, *store, mopts);
  for (const auto& p : recovery_problems) filesystem.errors().Add("recover", "", p);
  // PostgreSQL going away and coming back: once per outage in the log and
  // in .samplefs/errors (the failing operations say ECONNREFUSED; closed
  // files wait in the committer and are recorded once it is back).
  catalog->db().SetConnectionObserver([&filesystem](bool up, const std::string& message) {
    if (up) {
      spdlog::warn("the catalog database is reachable again ({}): waiting commits go on", message);
      filesystem.errors().Add("catalog", "", "reachable again: " + message);
    } else {
      spdlog::error("the catalog database is unreachable: {}; operations that need it fail with "
                    "ECONNREFUSED, closed files wait to be committed, reconnecting by itself",
                    message);
      filesystem.errors().Add("catalog", "", "unreachable (" + message + "); closed files wait to be committed");
    }
  });
  struct ObserverReset {
    samplefs::Catalog& catalog;
    ~ObserverReset() { catalog.db().SetConnectionObserver(nullptr); }
  } observer_reset{*catalog};
  s = filesystem.Prepare();
  if (!s.ok()) {
    spdlog::critical("cannot prepare the store: {}", s.message());
    return 1;
  }

  std::vector<std::string> fargv = {"samplefs"};
  std::string joined;
  for (const auto& o : fuse_opts) joined += (joined.empty() ? "" : ",") + o;
  fargv.push_back("-o");
  fargv.push_back(joined);
  if (args.debug) fargv.push_back("-d");
  std::vector<char*> cargv;
  for (auto& a : fargv) cargv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());

  fuse_session* se = fuse_session_new(&fargs, &samplefs::fs::Filesystem::Operations(),
                                      sizeof(fuse_lowlevel_ops), &filesystem);
  if (!se) {
    spdlog::critical("invalid mount options: {}", joined);
    return 2;
  }
  filesystem.set_session(se);
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, args.mountpoint.c_str()) == 0) {
      spdlog::info("mounted {} (catalog {}, store {})", args.mountpoint, samplefs::RedactCatalogUrl(cfg.catalog), cfg.store);
      if (ready.valid()) {
        // Mounted: from now on the log goes to its file (or syslog), the
        // terminal is let go, and the parent exits 0.
        spdlog::drop_all();
        SetupLogging(cfg, true);
        if (samplefs::UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC)); null.valid()) {
          ::dup2(null.get(), 0);
          ::dup2(null.get(), 1);
          ::dup2(null.get(), 2);
        }
        if (::chdir("/") != 0) spdlog::warn("chdir /: {}", std::strerror(errno));
        char verdict = 'm';
        (void)!::write(ready.get(), &verdict, 1);
        ready.reset();
      }
      filesystem.invalidator().Start(se);
      filesystem.committer().Start();
      if (args.single) {
        rc = fuse_session_loop(se);
      } else {
        fuse_loop_config* lc = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(lc, 0);
        fuse_loop_cfg_set_max_threads(lc, 16);
        fuse_loop_cfg_set_idle_threads(lc, 8);
        rc = fuse_session_loop_mt(se, lc);
        fuse_loop_cfg_destroy(lc);
      }
      filesystem.invalidator().Stop();
      // Unmount before the last commits: nobody is left waiting on a
      // daemon that no longer answers (a lazy detach if still busy; open
      // files then fail, and their versions are dropped, never committed).
      fuse_session_unmount(se);
      auto report = filesystem.Shutdown();
      session.Stop();  // after the last commits
      spdlog::info("unmounted {}: {} file version(s) committed, {} still open for writing dropped, "
                   "{} not recorded (kept for the next mount)",
                   args.mountpoint, report.committed, report.dropped_open,
                   report.not_recorded);
      rc = 0;
    } else {
      spdlog::critical("cannot mount on {}", args.mountpoint);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&fargs);
  return rc == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string err;
  if (!Parse(argc, argv, &args, &err)) {
    std::cerr << "samplefs: " << err << "\n";
    Usage(std::cerr);
    return 2;
  }
  if (args.help) {
    Usage(std::cout);
    return 0;
  }
  if (args.version) {
    std::cout << "samplefs 0.1.0 (libfuse " << fuse_pkgversion() << ")\n";
    return 0;
  }

  auto cfg = samplefs::LoadConfig(args.config);
  if (!cfg.ok()) {
    std::cerr << "samplefs: " << cfg.status().message() << "\n";
    return 2;
  }
  SetupLogging(*cfg, false);

  samplefs::fs::MountOptions mopts;
  std::vector<std::string> fuse_opts = {"default_permissions", "fsname=samplefs",
                                        "subtype=samplefs"};
  std::optional<uint64_t> write_behind_min_free;  // unset: the store's default
  bool create = false, nonempty = false;
  for (const auto& o : args.options) {
    if (o == "ro") mopts.read_only = true;
    // Passed on to libfuse as well (the kernel's own flag, and allow_other
    // lets other users in); the daemon needs them for atimes and owners.
    if (o == "noatime") mopts.noatime = true;
    if (o == "allow_other") mopts.allow_other = true;
    if (o.rfind("write_behind_min_free=", 0) == 0) {
      auto v = ParseSize(o.substr(o.find('=') + 1));
      if (!v) {
        std::cerr << "samplefs: bad " << o << " (a size such as 512M or 2G, or off)\n";
        return 2;
      }
      write_behind_min_free = v;
      continue;
    }
    if (o == "sync_close") {
      mopts.sync_close = true;
      continue;
    }
    // Ours, not libfuse's (fuse 3 dropped nonempty): see CheckMountpoint.
    if (o == "create") {
      create = true;
      continue;
    }
    if (o == "nonempty") {
      nonempty = true;
      continue;
    }
    if (o == "rw" || o == "default_permissions" || IsMountTableWord(o)) continue;
    if (o.rfind("fsname=", 0) == 0 || o.rfind("subtype=", 0) == 0) fuse_opts.erase(
        std::remove_if(fuse_opts.begin(), fuse_opts.end(),
                       [&](const std::string& f) { return f.substr(0, 7) == o.substr(0, 7); }),
        fuse_opts.end());
    fuse_opts.push_back(o);
  }

  // Absolute: the daemon changes to / and libfuse unmounts by this name
  // at exit (a relative one left a dead mount after a signal).
  if (char real[PATH_MAX]; ::realpath(args.mountpoint.c_str(), real)) args.mountpoint = real;
  if (!CheckMountpoint(args.mountpoint, nonempty, &err) ||
      !CheckCatalogExists(*cfg, create && !mopts.read_only, &err)) {
    std::cerr << "samplefs: " << err << "\n";
    return 1;
  }

  if (args.foreground) return Serve(args, *cfg, mopts, fuse_opts, write_behind_min_free, create, samplefs::UniqueFd());

  // Daemonize first, then open anything: POSIX locks (SQLite's) and threads
  // do not survive a fork, and a daemon that opened the catalog before
  // fuse_daemonize() forked held no lock, so the next sqlite3 or samplectl
  // took itself for the only connection and deleted the live -wal/-shm.
  // The parent waits until the child has mounted (or failed, having printed
  // why on the inherited stderr) and exits with its verdict.
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    std::perror("samplefs: pipe");
    return 1;
  }
  samplefs::UniqueFd ready_read(ends[0]), ready_write(ends[1]);
  pid_t child = ::fork();
  if (child < 0) {
    std::perror("samplefs: fork");
    return 1;
  }
  if (child > 0) {
    ready_write.reset();
    char verdict = 0;
    ssize_t n;
    do n = ::read(ready_read.get(), &verdict, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && verdict == 'm') return 0;  // mounted; the child serves it
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) return WEXITSTATUS(status);
    return 1;
  }
  ready_read.reset();
  ::setsid();
  return Serve(args, *cfg, mopts, fuse_opts, write_behind_min_free, create, std::move(ready_write));
}
