// Shared plumbing of samplectl's subcommands: the run context (config,
// opened catalog and store), exit codes, the terminal progress bar, output
// formats and the helpers several commands use.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "catalog/config.h"
#include "catalog/object_store.h"
#include "catalog/status.h"

namespace samplefs::ctl {

// Exit codes (docs/SAMPLECTL.md):
//   0  everything done, nothing wrong found
//   1  the command ran and found or hit problems (fsck faults, import paths
//      that do not fit the template, an I/O error half-way)
//   2  the command could not start: bad usage, bad configuration, no
//      catalog, bad input (query expression, table name, dump document)
inline constexpr int kExitOk = 0;
inline constexpr int kExitProblems = 1;
inline constexpr int kExitUsage = 2;

using Json = nlohmann::ordered_json;

struct GlobalOptions {
  std::string config_path;
  bool quiet = false;
  bool verbose = false;
};

enum class OpenMode { kCreate, kReadWrite, kReadOnly };

class Context {
 public:
  GlobalOptions globals;
  Config config;
  std::unique_ptr<Catalog> catalog;
  std::unique_ptr<ObjectStore> store;

  // Loads the configuration and sets up logging. Returns an exit code
  // (kExitOk on success), having logged why otherwise.
  int Init();
  // Opens catalog and store; logs and returns kExitUsage when they cannot
  // be opened (missing, bad config, PostgreSQL, newer schema).
  int Open(OpenMode mode);
  // True when a progress bar should be drawn (stderr is a terminal and
  // not --quiet).
  bool progress() const;
};

// A subcommand's action, run after parsing with the loaded context.
using Runner = std::function<int(Context&)>;
struct Command {
  CLI::App* app;
  Runner run;
  bool needs_config = true;
};
using Commands = std::vector<Command>;

// Declares subcommand `name` of `app`, run by `run` with an `Options` that
// lives as long as the command. Returns the subcommand, to which the caller
// adds the options, and the options they fill.
template <typename Options>
std::pair<CLI::App*, std::shared_ptr<Options>> AddCommand(CLI::App& app, Commands& out, const std::string& name,
                                                         const std::string& description,
                                                         int (*run)(Context&, const Options&)) {
  auto options = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(name, description);
  out.push_back({sub, [options, run](Context& ctx) { return run(ctx, *options); }});
  return {sub, options};
}

// Logs an error and returns kExitUsage: for a command line or an input the
// command refuses before changing anything.
template <typename... Args>
int UsageError(spdlog::format_string_t<Args...> format, Args&&... args) {
  spdlog::error(format, std::forward<Args>(args)...);
  return kExitUsage;
}

void AddInitCommand(CLI::App& app, Commands& out);
void AddImportCommand(CLI::App& app, Commands& out);
void AddQueryCommand(CLI::App& app, Commands& out);
void AddExportCommand(CLI::App& app, Commands& out);
void AddTagCommand(CLI::App& app, Commands& out);
void AddFsckCommand(CLI::App& app, Commands& out);
void AddGcCommand(CLI::App& app, Commands& out);
void AddStatsCommand(CLI::App& app, Commands& out);
void AddDumpCommand(CLI::App& app, Commands& out);
void AddLoadCommand(CLI::App& app, Commands& out);
void AddTrashCommand(CLI::App& app, Commands& out);

// A one-line progress bar on stderr, redrawn at most ~10 times a second.
// Disabled (every call a no-op) unless `enabled`.
class Progress {
 public:
  Progress(bool enabled, std::string label, uint64_t total = 0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Once the work is counted: the bar shows done/total and an ETA (from
  // bytes when `total_bytes` is known, else from items).
  void set_total(uint64_t total, uint64_t total_bytes = 0) {
    total_ = total;
    total_bytes_ = total_bytes;
  }
  void Add(uint64_t items, uint64_t bytes = 0);
  // Erases the bar (before printing other lines); it reappears on the
  // next Add.
  void Clear();
  void Finish();

 private:
  void Draw(bool force);
  bool enabled_;
  std::string label_;
  uint64_t total_ = 0, total_bytes_ = 0, done_ = 0, bytes_ = 0;
  int64_t start_ms_ = 0, last_draw_ms_ = 0;
  bool drawn_ = false;
};

// "1.5 MiB"
std::string HumanBytes(uint64_t bytes);
// "45s", "3m05s", "2h07m": a remaining time for progress bars.
std::string HumanDuration(int64_t seconds);
int64_t NowMs();

// Parses "30s", "10m", "1h", "2d", "1h30m", "90" (seconds) or "0".
Result<int64_t> ParseDuration(const std::string& text);

// One CSV field, quoted per RFC 4180 when it holds ',', '"', CR or LF.
std::string CsvField(const std::string& value);
std::string CsvRow(const std::vector<std::string>& fields);

// Writes to stdout or to a file given with -o; reports write errors.
class Output {
 public:
  // Empty path: stdout.
  Status Open(const std::string& path);
  ~Output();
  void Write(const std::string& text);
  // Flushes and closes; kIo when any write failed (disk full, EPIPE).
  Status Close();

 private:
  std::FILE* f_ = stdout;
  std::string path_;
  bool owned_ = false;
};

// Closes `out`: kExitOk, or kExitProblems having logged why (a write
// failed: disk full, EPIPE).
int CloseOutput(Output& out);

// Serialises JSON; invalid UTF-8 in catalog text becomes U+FFFD instead of
// throwing.
std::string JsonText(const Json& j, int indent = -1);

// A record a tag command (or a report) names: a slide, an image or an
// entry inside files/.
struct Target {
  Entity entity = Entity::kSlide;
  int64_t id = 0;
  std::string display;  // "S1", "S1/cell01", "S1/cell01/a/b.tif"
};
// Resolves "SLIDE", "SLIDE/IMAGE", "SLIDE/IMAGE/path/in/files", or a path
// through a mount (".../slides/S1/images/cell01/files/a.tif").
Result<Target> ResolveTarget(Catalog& catalog, const std::string& spec);

// "SLIDE/IMAGE/path/inside/files" of an entry (fsck, reports).
Result<std::string> EntryDisplayPath(Catalog& catalog, int64_t entry_id);

// Loggers: samplectl writes diagnostics through spdlog to stderr.
void SetupLogging(const std::string& level, bool quiet, bool verbose);

}  // namespace samplefs::ctl
