#include "catalog/config.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "catalog/catalog.h"
#include "catalog/names.h"
#include "catalog/object_store.h"

namespace samplefs {

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string HomeDir() {
  std::string home = Env("HOME");
  if (!home.empty()) return home;
  // A daemon started by systemd or cron may have no $HOME.
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "/";
}

std::string Cwd() {
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof buf)) return buf;
  return "/";
}

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Makes `path` absolute against `base` and expands a leading "~/"; leaves
// URLs alone. The daemon changes directory when it detaches, so every path
// it keeps must be absolute.
std::string Resolve(const std::string& path, const std::string& base) {
  if (path.empty() || IsPostgresUrl(path)) return path;
  if (path.rfind("sqlite:", 0) == 0) return Resolve(SqlitePathOf(path), base);
  if (path == "~") return HomeDir();
  if (path.rfind("~/", 0) == 0) return HomeDir() + path.substr(1);
  if (path[0] == '/') return path;
  std::string b = base.empty() ? Cwd() : base;
  if (b[0] != '/') b = Cwd() + "/" + b;
  if (b.back() != '/') b += '/';
  std::string rel = path;
  while (rel.rfind("./", 0) == 0) rel = rel.substr(2);
  return b + rel;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// Removes a trailing comment: '#' or ';' preceded by whitespace, outside
// double quotes.
std::string StripTrailingComment(const std::string& s) {
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == '#' || c == ';') && i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
      return s.substr(0, i);
  }
  return s;
}

bool ValidLogLevel(const std::string& v) {
  for (const char* l : {"trace", "debug", "info", "warn", "warning", "error", "err", "critical", "off"})
    if (v == l) return true;
  return false;
}

Status MakeParentDirs(const std::string& path) {
  std::string dir = DirName(path);
  if (dir == "/" || dir == ".") return Status::Ok();
  for (size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    std::string prefix = pos == std::string::npos ? dir : dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::FromErrno(errno, "cannot create directory " + prefix);
    if (pos == std::string::npos) break;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status(Code::kIo, dir + " is not a directory", ENOTDIR);
  return Status::Ok();
}

}  // namespace

Config DefaultConfig() {
  Config c;
  std::string data = Env("XDG_DATA_HOME");
  // The XDG spec says to ignore a relative $XDG_DATA_HOME.
  if (data.empty() || data[0] != '/') data = HomeDir() + "/.local/share";
  c.catalog = data + "/samplefs/catalog.db";
  c.store = data + "/samplefs/store";
  c.source = "defaults";
  return c;
}

Result<Config> ParseConfig(const std::string& text, const std::string& file, Config base) {
  Config c = std::move(base);
  c.source = file;
  const std::string dir = DirName(file);
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  auto fail = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, file + ":" + std::to_string(line_no) + ": " + why);
  };
  while (std::getline(in, raw)) {
    ++line_no;
    if (!IsValidUtf8(raw)) return fail("line is not valid UTF-8");
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    line = Trim(StripTrailingComment(line));
    if (line.front() == '[') {
      if (line.back() != ']') return fail("malformed section header '" + line + "'");
      std::string section = Trim(line.substr(1, line.size() - 2));
      if (section != "samplefs")
        return fail("unknown section [" + section + "] (only [samplefs] is allowed)");
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) return fail("expected 'key = value', got '" + line + "'");
    std::string key = Trim(line.substr(0, eq));
    std::string value = Trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (key.empty()) return fail("missing key before '='");
    if (value.empty()) return fail("empty value for '" + key + "'");
    if (key == "catalog") {
      c.catalog = Resolve(value, dir);
    } else if (key == "store") {
      if (IsPostgresUrl(value)) return fail("store must be a directory, not a URL");
      c.store = Resolve(value, dir);
    } else if (key == "log_level") {
      if (!ValidLogLevel(value))
        return fail("unknown log_level '" + value +
                    "' (expected trace, debug, info, warn, error, critical or off)");
      c.log_level = value;
    } else if (key == "log_file") {
      c.log_file = Resolve(value, dir);
    } else {
      return fail("unknown key '" + key + "' (known keys: catalog, store, log_level, log_file)");
    }
  }
  return c;
}

Result<Config> LoadConfig(const std::string& explicit_path) {
  std::string path;
  bool required = false;
  if (!explicit_path.empty()) {
    path = explicit_path;
    required = true;
  } else if (std::string env = Env("SAMPLEFS_CONFIG"); !env.empty()) {
    path = env;
    required = true;
  } else {
    std::string xdg = Env("XDG_CONFIG_HOME");
    if (xdg.empty() || xdg[0] != '/') xdg = HomeDir() + "/.config";
    for (const std::string& candidate :
         {xdg + "/samplefs/samplefs.conf", std::string("/etc/samplefs/samplefs.conf")}) {
      if (::access(candidate.c_str(), F_OK) == 0) {
        path = candidate;
        break;
      }
    }
  }

  Config config = DefaultConfig();
  if (!path.empty()) {
    path = Resolve(path, "");
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT && required)
        return Status(Code::kNotFound, "configuration file " + path + " does not exist");
      return Status::FromErrno(errno, "cannot read configuration file " + path);
    }
    if (S_ISDIR(st.st_mode))
      return Status(Code::kInvalidArgument, "configuration file " + path + " is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::FromErrno(errno ? errno : EACCES, "cannot read configuration file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    SFS_ASSIGN_OR_RETURN(config, ParseConfig(text.str(), path, std::move(config)));
  }
  if (std::string env = Env("SAMPLEFS_CATALOG"); !env.empty()) config.catalog = Resolve(env, "");
  return config;
}

Status OpenCatalogAndStore(const Config& config, bool create, std::unique_ptr<Catalog>* catalog,
                           std::unique_ptr<ObjectStore>* store) {
  return OpenCatalogAndStore(config, create, false, catalog, store);
}

Status OpenCatalogAndStore(const Config& config, bool create, bool read_only,
                           std::unique_ptr<Catalog>* catalog, std::unique_ptr<ObjectStore>* store,
                           bool listen) {
  if (config.catalog.empty()) return Status(Code::kInvalidArgument, "no catalog configured");
  if (config.store.empty()) return Status(Code::kInvalidArgument, "no object store configured");
  if (create && read_only) return Status(Code::kInvalidArgument, "cannot create a read-only catalog");

  const bool postgres = IsPostgresUrl(config.catalog);
  struct stat st;
  if (postgres) {
    // The database is the server's: `samplectl init` creates the schema in
    // an existing (empty) database, a mount finds it at the current
    // version or refuses.
    if (!create && ::stat(config.store.c_str(), &st) != 0)
      return Status::FromErrno(errno, "cannot open object store " + config.store +
                                          (errno == ENOENT ? " (run 'samplectl init' first)" : ""));
  } else if (create) {
    SFS_RETURN_IF_ERROR(MakeParentDirs(config.catalog));
  } else {
    // `what` is at `path`, set by the configuration's `key`.
    auto exists = [&](const std::string& path, const std::string& what, const char* key) -> Status {
      if (::stat(path.c_str(), &st) == 0) return Status::Ok();
      if (errno == ENOENT)
        return Status(Code::kNotFound, "no " + what + " at " + path + " (run 'samplectl init' first, or set '" +
                                           key + "' in the configuration)");
      return Status::FromErrno(errno, "cannot open " + what + " " + path);
    };
    SFS_RETURN_IF_ERROR(exists(config.catalog, "catalog", "catalog"));
    SFS_RETURN_IF_ERROR(exists(config.store, "object store", "store"));
  }
  if (!postgres && ::stat(config.catalog.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return Status(Code::kInvalidArgument, "catalog " + config.catalog + " is a directory");

  DatabaseOptions options;
  options.create = create;
  options.read_only = read_only;
  options.listen = listen;
  auto db = OpenDatabase(config.catalog, options);
  if (db.ok() && postgres && !create) {
    // As with a missing SQLite file: an empty database is not a catalog
    // yet, and only `samplectl init` (or -o create) makes it one.
    auto presence = (*db)->InspectSchema();
    if (presence.ok() && !presence->has_meta && presence->objects == 0)
      return Status(Code::kNotFound, "no catalog in database " + RedactCatalogUrl(config.catalog) +
                                         " (run 'samplectl init' first)");
  }
  auto opened = db.ok() ? Catalog::Open(std::move(db).value())
                        : Result<std::unique_ptr<Catalog>>(db.status());
  if (!opened.ok()) {
    const Status& s = opened.status();
    return Status(s.code(), "catalog " + RedactCatalogUrl(config.catalog) + ": " + s.message(),
                  s.to_errno());
  }
  auto opened_store = ObjectStore::Open(config.store);
  if (!opened_store.ok()) return opened_store.status();
  *catalog = std::move(opened).value();
  *store = std::move(opened_store).value();
  return Status::Ok();
}

}  // namespace samplefs
