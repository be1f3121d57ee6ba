// Config: where the catalog and the object store live (SPEC section 5),
// shared by the daemon (mount/) and the tools (tools/).
//
// The file is a small INI file:
//
//   [samplefs]                              # optional section header
//   catalog = /data/samplefs/catalog.db     # or postgresql://host/dbname
//   store = /data/samplefs/store
//   log_level = info                        # trace debug info warn error critical off
//   log_file = /var/log/samplefs.log        # the daemon's log when detached
//
// '#' and ';' start a comment at the beginning of a line, and after
// whitespace anywhere else ("store = /x  # comment"). A value may be put in
// double quotes to keep a '#' or ';'. A key given twice takes the last
// value. Relative paths (and "~/...") in a file resolve against the file's
// directory (the user's home); a key the file does not set keeps its
// default.
#pragma once

#include <memory>
#include <string>

#include "catalog/database.h"
#include "catalog/status.h"

namespace samplefs {

class Catalog;
class ObjectStore;

struct Config {
  std::string catalog;  // an SQLite file path, or a postgresql:// URL
  std::string store;    // the object store's root directory
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
  std::string source;    // the file it came from, or "defaults"
};

// Finds and reads the configuration, first match wins:
//   1. `explicit_path` (from --config), when not empty
//   2. $SAMPLEFS_CONFIG, when set and not empty
//   3. $XDG_CONFIG_HOME/samplefs/samplefs.conf (~/.config/... when unset)
//   4. /etc/samplefs/samplefs.conf
//   5. built-in defaults: $XDG_DATA_HOME (or ~/.local/share) +
//      /samplefs/catalog.db and /samplefs/store
// Then $SAMPLEFS_CATALOG, when set and not empty, replaces `catalog`
// whatever the source (a relative path resolves against the working
// directory).
//
// Errors: kNotFound naming the file when the file of 1. or 2. does not
// exist; kInvalidArgument "FILE:LINE: ..." for a line that is not
// `key = value`, an unknown key or section, an empty value or a bad
// log_level; kIo/kPermission when a file exists but cannot be read.
Result<Config> LoadConfig(const std::string& explicit_path);

// Parses the text of a configuration file. `file` names it in messages and
// is the base of relative paths. Keys not in the text keep the values
// `base` has. Exposed for tests.
Result<Config> ParseConfig(const std::string& text, const std::string& file, Config base);

// The built-in defaults (step 5 above), without $SAMPLEFS_CATALOG.
Config DefaultConfig();

// Opens the catalog and the object store a Config names.
//
// With `create`, missing parent directories are created 0700, the catalog
// file 0600 and the store's directories 0700 (existing ones keep their
// modes, and an existing catalog keeps its data). Without it, a missing
// catalog file or store directory is kNotFound with a message that says to
// run `samplectl init`. `read_only` opens the catalog read-only (it must
// then already exist and be at the current schema version).
//
// A postgresql:// catalog (IsPostgresUrl) is a database on a server: it is
// not created here (`create` creates the schema in it), and `listen`
// starts the change-notification connection (mounts). Errors are those of
// Catalog::OpenUrl (kTooNew for a newer schema, ECONNREFUSED for an
// unreachable server) and ObjectStore::Open; messages show the URL without
// its password.
Status OpenCatalogAndStore(const Config& config, bool create, std::unique_ptr<Catalog>* catalog,
                           std::unique_ptr<ObjectStore>* store);
Status OpenCatalogAndStore(const Config& config, bool create, bool read_only,
                           std::unique_ptr<Catalog>* catalog, std::unique_ptr<ObjectStore>* store,
                           bool listen = false);

}  // namespace samplefs
