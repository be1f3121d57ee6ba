#include "tools/samplectl/common.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace samplefs::ctl {

// ---------------------------------------------------------------------------
// Context

void SetupLogging(const std::string& level, bool quiet, bool verbose) {
  auto logger = spdlog::stderr_color_mt("samplectl");
  logger->set_pattern("samplectl: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  auto lvl = spdlog::level::from_str(level == "warning" ? "warn" : level == "error" ? "err" : level);
  if (verbose) lvl = std::min(lvl, spdlog::level::debug);
  if (quiet) lvl = std::max(lvl, spdlog::level::warn);
  spdlog::set_level(lvl);
}

int Context::Init() {
  auto loaded = LoadConfig(globals.config_path);
  if (!loaded.ok()) return UsageError("bad configuration: {}", loaded.status().message());
  config = std::move(loaded).value();
  spdlog::set_level(spdlog::level::from_str(config.log_level == "warning" ? "warn"
                                            : config.log_level == "error" ? "err"
                                                                          : config.log_level));
  if (globals.verbose) spdlog::set_level(std::min(spdlog::get_level(), spdlog::level::debug));
  if (globals.quiet) spdlog::set_level(std::max(spdlog::get_level(), spdlog::level::warn));
  spdlog::debug("configuration from {}: catalog {}, store {}", config.source, RedactCatalogUrl(config.catalog),
                config.store);
  return kExitOk;
}

int Context::Open(OpenMode mode) {
  Status s = OpenCatalogAndStore(config, mode == OpenMode::kCreate, mode == OpenMode::kReadOnly,
                                 &catalog, &store);
  if (!s.ok()) {
    spdlog::error("{}", s.message());
    if (config.source != "defaults" && s.code() == Code::kNotFound)
      spdlog::error("(configuration read from {})", config.source);
    return kExitUsage;
  }
  return kExitOk;
}

bool Context::progress() const { return !globals.quiet && ::isatty(STDERR_FILENO); }

// ---------------------------------------------------------------------------
// Progress

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

Progress::Progress(bool enabled, std::string label, uint64_t total)
    : enabled_(enabled), label_(std::move(label)), total_(total), start_ms_(NowMs()) {}

Progress::~Progress() { Finish(); }

void Progress::Add(uint64_t items, uint64_t bytes) {
  done_ += items;
  bytes_ += bytes;
  if (enabled_) Draw(false);
}

void Progress::Draw(bool force) {
  int64_t now = NowMs();
  if (!force && drawn_ && now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  std::string line = "\r" + label_ + " ";
  if (total_ > 0) {
    constexpr int kWidth = 30;
    uint64_t shown = std::min(done_, total_);
    int fill = static_cast<int>(kWidth * shown / total_);
    line += "[" + std::string(fill, '#') + std::string(kWidth - fill, '.') + "] ";
    line += std::to_string(done_) + "/" + std::to_string(total_);
  } else {
    line += std::to_string(done_);
  }
  double secs = static_cast<double>(now - start_ms_) / 1000.0;
  if (bytes_ > 0) {
    line += "  " + HumanBytes(bytes_);
    if (total_bytes_ > 0) line += "/" + HumanBytes(total_bytes_);
    if (secs > 0.5) line += "  " + HumanBytes(static_cast<uint64_t>(bytes_ / secs)) + "/s";
  }
  // The share done, by bytes when they are known (a few large files take
  // longer than many small ones), else by items.
  double fraction = total_bytes_ > 0 ? static_cast<double>(std::min(bytes_, total_bytes_)) / total_bytes_
                    : total_ > 0     ? static_cast<double>(std::min(done_, total_)) / total_
                                     : 0;
  if (fraction > 0 && fraction < 1 && secs > 1)
    line += "  ETA " + HumanDuration(static_cast<int64_t>(secs * (1 - fraction) / fraction + 0.5));
  line += "\033[K";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

std::string HumanDuration(int64_t s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  return buf;
}

void Progress::Clear() {
  if (enabled_ && drawn_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
  }
}

void Progress::Finish() {
  if (enabled_ && drawn_) {
    Draw(true);
    std::fputs("\n", stderr);
    std::fflush(stderr);
  }
  enabled_ = false;
}

// ---------------------------------------------------------------------------
// Durations, CSV, JSON, output

Result<int64_t> ParseDuration(const std::string& text) {
  auto bad = [&]() {
    return Status(Code::kInvalidArgument, "invalid duration '" + text +
                                              "' (expected e.g. 30s, 10m, 1h, 2d, 1h30m or 0)");
  };
  if (text.empty()) return bad();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') return bad();
    int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (n > (int64_t{1} << 40)) return bad();
      n = n * 10 + (text[i] - '0');
      ++i;
    }
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return bad();
      }
      ++i;
    } else if (total != 0) {
      return bad();  // "1h30": a trailing number needs a unit
    }
    total += n * unit;
  }
  return total;
}

std::string CsvField(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string CsvRow(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += CsvField(fields[i]);
  }
  out += '\n';
  return out;
}

std::string JsonText(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Status Output::Open(const std::string& path) {
  if (path.empty() || path == "-") return Status::Ok();
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) {
    f_ = stdout;
    return Status::FromErrno(errno, "cannot write " + path);
  }
  path_ = path;
  owned_ = true;
  return Status::Ok();
}

Output::~Output() {
  if (owned_ && f_) std::fclose(f_);
}

void Output::Write(const std::string& text) { std::fwrite(text.data(), 1, text.size(), f_); }

Status Output::Close() {
  std::string name = owned_ ? path_ : "standard output";
  bool failed = std::fflush(f_) != 0 || std::ferror(f_);
  int err = errno;
  if (owned_) {
    failed = std::fclose(f_) != 0 || failed;
    f_ = nullptr;
    owned_ = false;
  }
  if (failed) return Status::FromErrno(err ? err : EIO, "cannot write " + name);
  return Status::Ok();
}

int CloseOutput(Output& out) {
  if (Status s = out.Close(); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitProblems;
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// Targets

namespace {

std::vector<std::string> SplitPath(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  return parts;
}

Result<Target> ResolveParts(Catalog& catalog, const std::vector<std::string>& parts, bool mount_form) {
  if (parts.empty()) return Status(Code::kInvalidArgument, "no slide named");
  SFS_ASSIGN_OR_RETURN(Slide slide, catalog.SlideByReference(parts[0]));
  Target t{Entity::kSlide, slide.id, slide.reference};
  size_t i = 1;
  if (i == parts.size()) return t;
  if (mount_form) {
    if (parts[i] != "images")
      return Status(Code::kInvalidArgument, "expected images/ after slides/" + parts[0] + "/, got '" +
                                                parts[i] + "'");
    ++i;
    if (i == parts.size()) return Status(Code::kInvalidArgument, "images/ names no image");
  }
  SFS_ASSIGN_OR_RETURN(Image image, catalog.ImageByName(slide.id, parts[i]));
  t = Target{Entity::kImage, image.id, slide.reference + "/" + image.name};
  ++i;
  if (i == parts.size()) return t;
  if (mount_form) {
    if (parts[i] != "files")
      return Status(Code::kInvalidArgument, "expected files/ after images/" + image.name + "/, got '" +
                                                parts[i] + "'");
    ++i;
    if (i == parts.size()) return Status(Code::kInvalidArgument, "files/ itself cannot be tagged; tag the image");
  }
  SFS_ASSIGN_OR_RETURN(Entry cur, catalog.FilesRoot(image.id));
  std::string path;
  for (; i < parts.size(); ++i) {
    auto next = catalog.EntryByName(cur.id, parts[i]);
    if (!next.ok()) {
      if (next.status().is_not_found())
        return Status(Code::kNotFound, "no file '" + (path.empty() ? "" : path + "/") + parts[i] +
                                           "' in image " + t.display);
      return next.status();
    }
    cur = *next;
    path += (path.empty() ? "" : "/") + parts[i];
  }
  t = Target{Entity::kEntry, cur.id, slide.reference + "/" + image.name + "/" + path};
  return t;
}

}  // namespace

Result<Target> ResolveTarget(Catalog& catalog, const std::string& spec) {
  std::vector<std::string> parts = SplitPath(spec);
  if (parts.empty()) return Status(Code::kInvalidArgument, "empty target");
  // A path through a mount: everything up to and including a "slides"
  // component is the mount point (and maybe species/HeLa/...). A file
  // inside files/ may itself be called "slides", so try each occurrence
  // from the left and take the first that resolves.
  bool absolute = spec[0] == '/';
  if (absolute || parts[0] == "slides") {
    Status first_error(Code::kInvalidArgument,
                       "'" + spec + "' is not a path inside a samplefs mount (no slides/ component)");
    bool tried = false;
    for (size_t k = 0; k < parts.size(); ++k) {
      if (parts[k] != "slides") continue;
      std::vector<std::string> rest(parts.begin() + static_cast<long>(k) + 1, parts.end());
      auto r = ResolveParts(catalog, rest, true);
      if (r.ok()) return r;
      if (!tried) first_error = r.status();
      tried = true;
    }
    return first_error;
  }
  return ResolveParts(catalog, parts, false);
}

Result<std::string> EntryDisplayPath(Catalog& catalog, int64_t entry_id) {
  SFS_ASSIGN_OR_RETURN(Entry e, catalog.EntryById(entry_id));
  std::string path;
  int64_t image_id = e.image_id;
  while (e.parent_id != 0) {
    path = path.empty() ? e.name : e.name + "/" + path;
    SFS_ASSIGN_OR_RETURN(e, catalog.EntryById(e.parent_id));
  }
  SFS_ASSIGN_OR_RETURN(Image image, catalog.ImageById(image_id));
  SFS_ASSIGN_OR_RETURN(Slide slide, catalog.SlideById(image.slide_id));
  std::string out = slide.reference + "/" + image.name;
  if (!path.empty()) out += "/" + path;
  return out;
}

}  // namespace samplefs::ctl
