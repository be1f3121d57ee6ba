// samplectl import: record an existing directory tree, mapped onto species,
// samples, slides and images by a path template (SPEC section 5).
//
// How it stays resumable and crash-safe:
// - File contents are streamed into staging files (1 MiB at a time) by a
//   few threads, outside any transaction, so a running mount is never
//   blocked on our reads.
// - Each batch (at most kBatchEntries entries or kBatchBytes of content,
//   and the end of every image) goes through the ingest service the
//   mount's committer uses (catalog/ingest.h): its contents are published
//   together (one disk flush per phase), then its records committed in one
//   transaction. A kill loses at most one batch, and its published objects
//   are merely unreferenced until the re-run deduplicates them (or gc).
// - An entry already recorded with the same size and mtime is skipped
//   without reading the file, so a re-run after a kill duplicates nothing.
// - Record timestamps come from the source tree (a slide's `created` is its
//   folder's mtime, an image's `acquired` its folder's mtime), so an
//   interrupted and resumed import gives exactly the catalog of a clean one.
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <map>
#include <optional>
#include <set>

#include "catalog/ingest.h"
#include "catalog/names.h"
#include "catalog/unique_fd.h"
#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

constexpr size_t kChunk = size_t{1} << 20;
constexpr size_t kBatchEntries = 500;
constexpr uint64_t kBatchBytes = uint64_t{1} << 30;

struct ImportOptions {
  std::string src;
  std::string layout;
  bool dry_run = false;
  std::vector<std::string> excludes;
  int jobs = 8;
};

enum class Placeholder { kNone, kSpecies, kSample, kSlide, kImage };

const char* PlaceholderName(Placeholder p) {
  switch (p) {
    case Placeholder::kSpecies: return "species";
    case Placeholder::kSample: return "sample";
    case Placeholder::kSlide: return "slide";
    case Placeholder::kImage: return "image";
    case Placeholder::kNone: break;
  }
  return "";
}

// One path component of the template: a literal ("raw"), or a placeholder
// with an optional literal prefix and suffix ("slide_{slide}").
struct TemplatePart {
  Placeholder placeholder = Placeholder::kNone;
  std::string prefix;  // the whole literal when placeholder is kNone
  std::string suffix;

  std::string Describe() const {
    if (placeholder == Placeholder::kNone) return "'" + prefix + "'";
    return "'" + prefix + "{" + PlaceholderName(placeholder) + "}" + suffix + "'";
  }
  // The captured value, or nullopt when `name` does not fit.
  std::optional<std::string> Match(const std::string& name) const {
    if (placeholder == Placeholder::kNone) {
      if (name == prefix) return std::string();
      return std::nullopt;
    }
    if (name.size() <= prefix.size() + suffix.size()) return std::nullopt;
    if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return std::nullopt;
    return name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  }
};

struct Template {
  std::vector<TemplatePart> parts;
  bool has(Placeholder p) const {
    for (const auto& part : parts)
      if (part.placeholder == p) return true;
    return false;
  }
};

Result<Template> ParseTemplate(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "--layout '" + text + "': " + why);
  };
  Template t;
  std::string s = text;
  while (s.rfind("./", 0) == 0) s = s.substr(2);
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.empty()) return bad("empty template");
  if (s[0] == '/') return bad("the template is relative to SRC and cannot start with '/'");
  std::set<Placeholder> seen;
  Placeholder last = Placeholder::kNone;
  size_t start = 0;
  while (start <= s.size()) {
    size_t slash = s.find('/', start);
    std::string comp = s.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    start = slash == std::string::npos ? s.size() + 1 : slash + 1;
    if (comp.empty()) return bad("empty path component ('//')");
    if (comp == "." || comp == "..") return bad("'" + comp + "' is not allowed");
    TemplatePart part;
    size_t open = comp.find('{');
    if (open == std::string::npos) {
      if (comp.find('}') != std::string::npos) return bad("unmatched '}' in '" + comp + "'");
      part.prefix = comp;
    } else {
      size_t close = comp.find('}', open);
      if (close == std::string::npos) return bad("unmatched '{' in '" + comp + "'");
      std::string name = comp.substr(open + 1, close - open - 1);
      part.prefix = comp.substr(0, open);
      part.suffix = comp.substr(close + 1);
      if (part.suffix.find_first_of("{}") != std::string::npos ||
          part.prefix.find('}') != std::string::npos)
        return bad("'" + comp + "' has more than one placeholder; put each in its own path component");
      if (name == "species") part.placeholder = Placeholder::kSpecies;
      else if (name == "sample") part.placeholder = Placeholder::kSample;
      else if (name == "slide") part.placeholder = Placeholder::kSlide;
      else if (name == "image") part.placeholder = Placeholder::kImage;
      else return bad("unknown placeholder {" + name + "} (known: {species}, {sample}, {slide}, {image})");
      if (!seen.insert(part.placeholder).second) return bad("{" + name + "} appears twice");
      if (part.placeholder < last)
        return bad("{" + name + "} must come before {" + PlaceholderName(last) +
                   "} (the order is species, sample, slide, image)");
      last = part.placeholder;
    }
    t.parts.push_back(part);
  }
  if (!t.has(Placeholder::kSlide)) return bad("the template needs a {slide} component");
  if (!t.has(Placeholder::kImage)) return bad("the template needs an {image} component");
  return t;
}

// What the template captured on the way down to an image folder.
struct Match {
  std::string species, sample, slide, image;
  std::string slide_dir;  // the folder {slide} matched (its mtime is `created`)
};

// The catalog id of a folder, known once its create has been committed. The
// walk queues a folder's create before anything inside it, and batches are
// committed in queue order, so a child's parent id is always known in time.
struct FolderNode {
  int64_t id = 0;
};

// A file's content being streamed into the store by a worker thread.
struct ContentJob {
  std::string full, rel;  // in: source path, path for messages
  // out, valid once the pool is idle: the staged content (published with
  // its batch, which fills in the rest)
  std::unique_ptr<ObjectWriter> writer;
  std::string hash;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool deduplicated = false;
  std::string problem;  // non-empty: not stored, and why
  bool fatal = false;   // the store itself failed: stop the import
};

struct PendingOp {
  std::shared_ptr<FolderNode> parent;
  std::shared_ptr<FolderNode> self;  // folders being created
  Entry entry;                       // entry.id != 0: an update
  std::shared_ptr<ContentJob> job;   // files whose content is (re)stored
  std::string shown;                 // "SLIDE/IMAGE/path"; empty for files/ itself
};

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

struct Counters {
  int64_t species = 0, samples = 0, slides = 0, images = 0;
  int64_t files = 0, folders = 0, symlinks = 0, updated = 0, unchanged = 0;
  uint64_t bytes = 0, dedup_bytes = 0;
};

// Streams one file into a staging file, 1 MiB at a time (published with
// its batch, PublishContents).
void StageContent(ObjectStore& store, char* buf, ContentJob* job) {
  UniqueFd fd(::open(job->full.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    job->problem = std::string("cannot open: ") + std::strerror(errno);
    return;
  }
  struct stat before;
  ::fstat(fd.get(), &before);
  auto writer = store.NewWriter();
  if (!writer.ok()) {
    job->problem = "cannot write to the object store: " + writer.status().message();
    job->fatal = true;
    return;
  }
  (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t off = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, kChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      job->problem = std::string("read failed: ") + std::strerror(errno);
      return;
    }
    if (n == 0) break;
    Status w = (*writer)->Write(buf, static_cast<size_t>(n), off);
    if (!w.ok()) {
      job->problem = "cannot write to the object store: " + w.message();
      job->fatal = true;
      return;
    }
    off += static_cast<uint64_t>(n);
  }
  struct stat after;
  ::fstat(fd.get(), &after);
  if (MtimeNs(after) != MtimeNs(before) || after.st_size != before.st_size ||
      off != static_cast<uint64_t>(after.st_size)) {
    job->problem = "changed while it was being imported; run the import again";
    return;
  }
  job->mtime_ns = MtimeNs(before);
  job->size = off;  // for the progress line; the publish confirms it
  job->writer = std::move(*writer);
}

// Publishes the staged contents of a batch together (the ingest service's
// first step); a failure becomes the job's problem.
void PublishContents(const std::vector<ContentJob*>& jobs) {
  std::vector<ObjectWriter*> writers;
  writers.reserve(jobs.size());
  for (ContentJob* j : jobs) writers.push_back(j->writer.get());
  auto published = PublishBatch(writers);
  for (size_t i = 0; i < jobs.size(); ++i) {
    ContentJob* job = jobs[i];
    if (!job->writer) continue;
    if (!published[i].ok()) {
      job->problem = published[i].status().message();
      // A refused hash collision concerns this file only; anything else is
      // the store failing (disk full, permissions).
      job->fatal = published[i].status().code() != Code::kCorrupt;
    } else {
      job->size = published[i]->size;
      job->hash = published[i]->hash.hex();
      job->deduplicated = published[i]->deduplicated;
    }
    job->writer.reset();
  }
}

// A few threads that store file contents concurrently. Publishing is
// bound by fsync latency (data, then the directory), not bandwidth, and
// concurrent fsyncs share the filesystem's journal commits, so N writers
// import small files nearly N times faster than one.
class ContentPool {
 public:
  ContentPool(ObjectStore& store, int threads, std::function<void(const ContentJob&)> done)
      : store_(store), done_(std::move(done)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~ContentPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      queue_.clear();  // not yet started: never published, nothing to undo
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(std::shared_ptr<ContentJob> job) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  // Blocks until every submitted job has finished.
  void Wait() {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [this] { return queue_.empty() && active_ == 0; });
  }

 private:
  void Work() {
    std::unique_ptr<char[]> buf(new char[kChunk]);
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      auto job = std::move(queue_.front());
      queue_.pop_front();
      ++active_;
      lock.unlock();
      StageContent(store_, buf.get(), job.get());
      done_(*job);
      lock.lock();
      --active_;
      if (queue_.empty() && active_ == 0) idle_cv_.notify_all();
    }
  }

  ObjectStore& store_;
  std::function<void(const ContentJob&)> done_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::shared_ptr<ContentJob>> queue_;  // GUARDED_BY(mu_)
  int active_ = 0;                                 // GUARDED_BY(mu_)
  bool stop_ = false;                              // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

class Importer {
 public:
  Importer(Context& ctx, const ImportOptions& o, Template t)
      : ctx_(ctx), o_(o), t_(std::move(t)), cat_(*ctx.catalog) {}

  int Run() {
    std::string src = o_.src;
    while (src.size() > 1 && src.back() == '/') src.pop_back();
    struct stat st;
    if (::stat(src.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return UsageError("import: source '{}' is not a readable folder", o_.src);
    if (ctx_.progress()) {
      progress_ = std::make_unique<Progress>(true, o_.dry_run ? "checking" : "importing");
      uint64_t total = 0, total_bytes = 0;
      CountFiles(src, &total, &total_bytes);
      progress_->set_total(total, total_bytes);
    } else {
      progress_ = std::make_unique<Progress>(false, "");
    }
    pool_ = std::make_unique<ContentPool>(*ctx_.store, o_.jobs, [this](const ContentJob& j) {
      ProgressAdd(1, j.size);
    });
    WalkLevel(src, "", 0, Match{});
    FlushOrFail();
    pool_.reset();
    progress_->Finish();
    PrintSummary();
    if (!problems_.empty()) {
      spdlog::error("import: {} path(s) were not imported:", problems_.size());
      for (const auto& p : problems_) std::fprintf(stderr, "  %s\n", p.c_str());
    }
    if (fatal_) return kExitProblems;
    return problems_.empty() ? kExitOk : kExitProblems;
  }

 private:
  bool Excluded(const std::string& name) const {
    for (const auto& pattern : o_.excludes)
      if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
    return false;
  }

  void Problem(const std::string& path, const std::string& why) {
    problems_.push_back((path.empty() ? std::string(".") : path) + ": " + why);
  }

  // Lists a folder's names, sorted (so runs are reproducible), without "."
  // and ".." and without excluded names.
  std::optional<std::vector<std::string>> ListDir(const std::string& dir, const std::string& rel) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      Problem(rel, std::string("cannot read folder: ") + std::strerror(errno));
      return std::nullopt;
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == ".." || Excluded(n)) continue;
      names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  void CountFiles(const std::string& dir, uint64_t* total, uint64_t* total_bytes) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == ".." || Excluded(n)) continue;
      std::string full = dir + "/" + n;
      struct stat st;
      if (::lstat(full.c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        CountFiles(full, total, total_bytes);
      } else if (S_ISREG(st.st_mode)) {
        ++*total;
        *total_bytes += static_cast<uint64_t>(st.st_size);
      }
    }
    ::closedir(d);
  }

  void WalkLevel(const std::string& dir, const std::string& rel, size_t level, const Match& m) {
    auto names = ListDir(dir, rel);
    if (!names) return;
    const TemplatePart& part = t_.parts[level];
    for (const auto& name : *names) {
      if (fatal_) return;
      std::string full = dir + "/" + name;
      std::string relp = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      if (::lstat(full.c_str(), &st) != 0) {
        Problem(relp, std::string("cannot stat: ") + std::strerror(errno));
        continue;
      }
      if (!S_ISDIR(st.st_mode)) {
        Problem(relp, std::string(S_ISLNK(st.st_mode) ? "is a symlink" : "is not a folder") +
                          ", but the template expects a folder " + part.Describe() + " here");
        if (S_ISREG(st.st_mode)) ProgressAdd(1, static_cast<uint64_t>(st.st_size));
        continue;
      }
      auto value = part.Match(name);
      if (!value) {
        Problem(relp, "does not fit " + part.Describe() + " of the template");
        continue;
      }
      Match next = m;
      if (part.placeholder != Placeholder::kNone) {
        const char* what = part.placeholder == Placeholder::kSlide ? "slide reference"
                                                                    : PlaceholderName(part.placeholder);
        Status valid = ValidateName(*value, what);
        if (!valid.ok()) {
          Problem(relp, valid.message());
          continue;
        }
      }
      switch (part.placeholder) {
        case Placeholder::kSpecies: next.species = *value; break;
        case Placeholder::kSample: next.sample = *value; break;
        case Placeholder::kSlide:
          next.slide = *value;
          next.slide_dir = full;
          break;
        case Placeholder::kImage: next.image = *value; break;
        case Placeholder::kNone: break;
      }
      if (level + 1 == t_.parts.size()) ImportImage(full, relp, st, next);
      else WalkLevel(full, relp, level + 1, next);
    }
  }

  // --- records --------------------------------------------------------------

  // Finds or creates species/sample/slide/image for an image folder. Returns
  // the image, id 0 when it does not exist yet (dry run), or nullopt after
  // reporting a problem.
  std::optional<Image> EnsureRecords(const std::string& rel, const struct stat& image_st, const Match& m) {
    const std::string where = "slide " + m.slide + ", image " + m.image;
    auto fail = [&](const std::string& why) -> std::optional<Image> {
      Problem(rel, why);
      return std::nullopt;
    };
    // Keeps what a lookup found in `out` (nothing when not found); false,
    // with the problem reported, on any other error.
    auto found = [&](auto r, auto& out) {
      if (!r.ok() && !r.status().is_not_found()) {
        Problem(rel, r.status().message());
        return false;
      }
      if (r.ok()) out = std::move(r).value();
      return true;
    };
    // `what` is filed in the catalog under another `owner` (a species or a
    // sample) than the path's `expected`.
    auto misfiled = [&](const std::string& what, const char* owner_kind, const auto& owner,
                        const std::string& expected) {
      return fail(what + " belongs to " + owner_kind + " '" + (owner.ok() ? owner->name : std::string("?")) +
                  "' in the catalog, not '" + expected + "'");
    };

    // Look everything up first: nothing is created for an image whose path
    // contradicts the catalog.
    std::optional<Species> species;
    if (t_.has(Placeholder::kSpecies) && !found(cat_.SpeciesByName(m.species), species)) return std::nullopt;
    std::optional<Sample> sample;
    if (t_.has(Placeholder::kSample)) {
      if (!found(cat_.SampleByName(m.sample), sample)) return std::nullopt;
      if (sample) {
        if (t_.has(Placeholder::kSpecies) && (!species || species->id != sample->species_id)) {
          return misfiled("sample '" + m.sample + "'", "species", cat_.SpeciesById(sample->species_id), m.species);
        }
      } else if (!t_.has(Placeholder::kSpecies)) {
        return fail("sample '" + m.sample +
                    "' does not exist and the template has no {species} to create it with");
      }
    }
    std::optional<Slide> slide;
    if (!found(cat_.SlideByReference(m.slide), slide)) return std::nullopt;
    if (slide) {
      if (t_.has(Placeholder::kSample) && (!sample || sample->id != slide->sample_id)) {
        return misfiled("slide '" + m.slide + "'", "sample", cat_.SampleById(slide->sample_id), m.sample);
      }
      if (!t_.has(Placeholder::kSample) && t_.has(Placeholder::kSpecies)) {
        auto owner = cat_.SampleById(slide->sample_id);
        if (owner.ok() && (!species || owner->species_id != species->id))
          return fail("slide '" + m.slide + "' belongs to another species than '" + m.species + "'");
      }
    } else if (!t_.has(Placeholder::kSample)) {
      return fail("slide '" + m.slide + "' does not exist and the template has no {sample} to create it in");
    }
    std::optional<Image> image;
    if (slide && !found(cat_.ImageByName(slide->id, m.image), image)) return std::nullopt;
    if (image) return image;

    struct stat slide_st;
    std::string created = ::stat(m.slide_dir.c_str(), &slide_st) == 0
                              ? Iso8601(slide_st.st_mtim.tv_sec)
                              : Iso8601(image_st.st_mtim.tv_sec);
    if (o_.dry_run) {
      if (!species && t_.has(Placeholder::kSpecies) && planned_species_.insert(m.species).second) {
        std::printf("would create species %s\n", m.species.c_str());
        ++counters_.species;
      }
      if (!sample && t_.has(Placeholder::kSample) && planned_samples_.insert(m.sample).second) {
        std::printf("would create sample %s (species %s)\n", m.sample.c_str(), m.species.c_str());
        ++counters_.samples;
      }
      if (!slide) {
        auto [it, fresh] = planned_slides_.emplace(m.slide, m.sample);
        if (!fresh && it->second != m.sample)
          return fail("slide '" + m.slide + "' also appears under sample '" + it->second + "'");
        if (fresh) {
          std::printf("would create slide %s (sample %s, created %s)\n", m.slide.c_str(),
                      m.sample.c_str(), created.c_str());
          ++counters_.slides;
        }
      }
      std::printf("would create image %s/%s\n", m.slide.c_str(), m.image.c_str());
      ++counters_.images;
      return Image{};  // id 0: everything below is new
    }

    // Create what is missing in one transaction, so a kill never leaves a
    // slide without the image the next run would look for... and if it
    // does, the next run finds and reuses what was committed.
    Transaction txn(cat_);
    if (!txn.status().ok()) return fail(txn.status().message());
    Counters added;
    if (!species && t_.has(Placeholder::kSpecies)) {
      Species sp;
      sp.name = m.species;
      auto r = cat_.CreateSpecies(sp);
      if (!r.ok()) return fail(r.status().message());
      species = *r;
      ++added.species;
    }
    if (!sample && t_.has(Placeholder::kSample)) {
      Sample sa;
      sa.name = m.sample;
      sa.species_id = species->id;
      auto r = cat_.CreateSample(sa);
      if (!r.ok()) return fail(r.status().message());
      sample = *r;
      ++added.samples;
    }
    if (!slide) {
      Slide sl;
      sl.reference = m.slide;
      sl.sample_id = sample->id;
      sl.created = created;
      sl.modified = created;
      auto r = cat_.CreateSlide(sl);
      if (!r.ok()) return fail(r.status().message());
      slide = *r;
      ++added.slides;
    }
    Image im;
    im.slide_id = slide->id;
    im.name = m.image;
    im.acquired = Iso8601(image_st.st_mtim.tv_sec);
    auto r = cat_.CreateImage(im);
    if (!r.ok()) return fail(r.status().message());
    ++added.images;
    Status committed = txn.Commit();
    if (!committed.ok()) return fail("cannot record " + where + ": " + committed.message());
    counters_.species += added.species;
    counters_.samples += added.samples;
    counters_.slides += added.slides;
    counters_.images += added.images;
    spdlog::debug("created image {}/{}", m.slide, m.image);
    return *r;
  }

  // --- entries --------------------------------------------------------------

  void ImportImage(const std::string& dir, const std::string& rel, const struct stat& st, const Match& m) {
    auto image = EnsureRecords(rel, st, m);
    if (!image) return;
    display_prefix_ = m.slide + "/" + m.image;
    auto root = std::make_shared<FolderNode>();
    std::map<std::string, Entry> none;
    if (image->id != 0) {
      auto r = cat_.FilesRoot(image->id);
      if (!r.ok()) {
        Problem(rel, r.status().message());
        return;
      }
      root->id = r->id;
      // files/ itself carries the image folder's mode and mtime.
      Entry updated = *r;
      updated.mode = st.st_mode & 07777;
      updated.mtime_ns = MtimeNs(st);
      if (updated.mode != r->mode || updated.mtime_ns != r->mtime_ns)
        Queue(PendingOp{nullptr, nullptr, updated}, "");
    }
    WalkEntries(dir, rel, "", root);
    // One image, at least one batch: a kill loses at most this image's tail.
    FlushOrFail();
    RestoreFolderTimes();
  }

  // Recording an entry sets its folder's mtime to now (a local
  // filesystem's rule, kept by the catalog): the folders this image's
  // batches recorded take their source times again, deepest first, as
  // cp -a and tar do after filling a folder.
  void RestoreFolderTimes() {
    if (!fatal_ && !folder_times_.empty()) {
      Transaction txn(cat_);
      Status s = txn.status();
      for (auto it = folder_times_.rbegin(); s.ok() && it != folder_times_.rend(); ++it)
        s = cat_.UpdateEntry(*it);
      if (s.ok()) s = txn.Commit();
      if (!s.ok()) Fatal("cannot set the times of the image's folders: " + s.message());
    }
    folder_times_.clear();
  }

  // Existing children of a recorded folder, by name.
  std::optional<std::map<std::string, Entry>> Children(int64_t folder_id, const std::string& rel) {
    std::map<std::string, Entry> out;
    if (folder_id == 0) return out;
    int64_t after = 0;
    for (;;) {
      auto page = cat_.ListEntries(folder_id, after, 1000);
      if (!page.ok()) {
        Problem(rel, page.status().message());
        return std::nullopt;
      }
      if (page->empty()) break;
      for (auto& e : *page) {
        after = e.id;
        out.emplace(e.name, std::move(e));
      }
    }
    return out;
  }

  void WalkEntries(const std::string& dir, const std::string& rel, const std::string& inner,
                   const std::shared_ptr<FolderNode>& folder) {
    auto names = ListDir(dir, rel);
    if (!names) return;
    auto existing = Children(folder->id, rel);
    if (!existing) return;
    for (const auto& name : *names) {
      if (fatal_) return;
      std::string full = dir + "/" + name;
      std::string relp = rel + "/" + name;
      std::string innerp = inner.empty() ? name : inner + "/" + name;
      std::string shown = display_prefix_ + "/" + innerp;
      struct stat st;
      if (::lstat(full.c_str(), &st) != 0) {
        Problem(relp, std::string("cannot stat: ") + std::strerror(errno));
        continue;
      }
      Status valid = ValidateName(name, "file name");
      if (!valid.ok()) {
        Problem(relp, valid.message());
        continue;
      }
      const Entry* old = nullptr;
      if (auto it = existing->find(name); it != existing->end()) old = &it->second;
      EntryType type = S_ISDIR(st.st_mode)   ? EntryType::kFolder
                       : S_ISLNK(st.st_mode) ? EntryType::kSymlink
                                             : EntryType::kFile;
      if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISREG(st.st_mode)) {
        Problem(relp, "is not a file, folder or symlink (device, socket or pipe)");
        continue;
      }
      if (old && old->type != type) {
        Problem(relp, std::string("is a ") + EntryTypeName(type) + " but " + shown + " is recorded as a " +
                          EntryTypeName(old->type) + "; left as it is");
        if (type == EntryType::kFile) ProgressAdd(1, static_cast<uint64_t>(st.st_size));
        continue;
      }
      Entry e;
      e.name = name;
      e.type = type;
      e.mode = st.st_mode & 07777;
      e.mtime_ns = MtimeNs(st);
      e.kind = type == EntryType::kFile ? KindFromName(name) : "other";
      if (old) {
        e.id = old->id;
        e.image_id = old->image_id;
        e.parent_id = old->parent_id;
        e.kind = old->kind;  // a kind set by hand survives a re-import
      }

      if (type == EntryType::kFolder) {
        auto node = std::make_shared<FolderNode>();
        if (old) {
          node->id = old->id;
          if (old->mode != e.mode || old->mtime_ns != e.mtime_ns) Queue({folder, nullptr, e}, shown);
        } else {
          Queue({folder, node, e}, shown);
        }
        WalkEntries(full, relp, innerp, node);
        continue;
      }

      if (type == EntryType::kSymlink) {
        std::string target(4096, '\0');
        ssize_t n = ::readlink(full.c_str(), target.data(), target.size());
        if (n < 0) {
          Problem(relp, std::string("cannot read symlink: ") + std::strerror(errno));
          continue;
        }
        target.resize(static_cast<size_t>(n));
        e.target = target;
        if (old && old->target == e.target && old->mode == e.mode && old->mtime_ns == e.mtime_ns) {
          ++counters_.unchanged;
          continue;
        }
        Queue({folder, nullptr, e}, shown);
        continue;
      }

      // A regular file.
      if (o_.dry_run || (old && old->size == static_cast<uint64_t>(st.st_size) && old->mtime_ns == e.mtime_ns))
        ProgressAdd(1, static_cast<uint64_t>(st.st_size));  // else counted once stored
      if (old && old->size == static_cast<uint64_t>(st.st_size) && old->mtime_ns == e.mtime_ns) {
        if (old->mode == e.mode) {
          ++counters_.unchanged;
          continue;
        }
        e.size = old->size;
        e.hash = old->hash;
        Queue({folder, nullptr, e}, shown);
        continue;
      }
      e.size = static_cast<uint64_t>(st.st_size);
      PendingOp op{folder, nullptr, e};
      if (!o_.dry_run) {
        op.job = std::make_shared<ContentJob>();
        op.job->full = full;
        op.job->rel = relp;
      }
      Queue(std::move(op), shown);
    }
  }

  void Queue(PendingOp op, const std::string& shown) {
    const Entry& e = op.entry;
    op.shown = shown;
    if (o_.dry_run) {
      if (!shown.empty()) {
        bool update = e.id != 0;
        if (e.type == EntryType::kFile)
          std::printf("would %s file %s (%llu bytes)\n", update ? "update" : "create", shown.c_str(),
                      static_cast<unsigned long long>(e.size));
        else
          std::printf("would %s %s %s\n", update ? "update" : "create", EntryTypeName(e.type), shown.c_str());
      }
      Count(op, e.size);
      return;
    }
    if (op.job) {
      pending_bytes_ += e.size;
      pool_->Submit(op.job);
    }
    pending_.push_back(std::move(op));
    if (pending_.size() >= kBatchEntries || pending_bytes_ >= kBatchBytes) FlushOrFail();
  }

  void Count(const PendingOp& op, uint64_t content_bytes) {
    const Entry& e = op.entry;
    if (op.shown.empty()) {
      // files/ itself taking its image folder's mode and mtime: not news.
    } else if (e.id != 0) {
      ++counters_.updated;
    } else if (e.type == EntryType::kFile) {
      ++counters_.files;
    } else if (e.type == EntryType::kFolder) {
      ++counters_.folders;
    } else {
      ++counters_.symlinks;
    }
    if (op.job || (o_.dry_run && e.type == EntryType::kFile)) counters_.bytes += content_bytes;
  }

  void FlushOrFail() {
    if (pending_.empty()) return;
    pool_->Wait();  // every content job of this batch is staged (or failed)
    Status s = fatal_ ? Status::Ok() : Flush();
    pending_.clear();
    pending_bytes_ = 0;
    if (!s.ok()) Fatal("cannot record a batch of entries: " + s.message());
  }

  // Publishes the batch's contents, then records it in one transaction,
  // in walk order (folders before their contents), through the ingest
  // service. Files whose content could not be stored are left out and
  // reported; nothing inside them depends on them. A store that failed
  // stops the import before anything of the batch is recorded.
  Status Flush() {
    std::vector<ContentJob*> contents;
    for (auto& op : pending_)
      if (op.job) contents.push_back(op.job.get());
    PublishContents(contents);
    for (auto& op : pending_) {
      if (!op.job || op.job->problem.empty()) continue;
      if (op.job->fatal) {
        Fatal(op.job->problem);
        return Status::Ok();
      }
    }
    std::vector<std::pair<const PendingOp*, uint64_t>> done;
    uint64_t dedup = 0;
    auto wanted = [&](size_t i) { return !pending_[i].job || pending_[i].job->problem.empty(); };
    auto record = [&](size_t i) -> Status {
      const PendingOp& op = pending_[i];
      Entry e = op.entry;
      uint64_t content = 0;
      if (op.job) {
        const ContentJob& j = *op.job;
        e.size = j.size;
        e.hash = j.hash;
        e.mtime_ns = j.mtime_ns;
        content = j.size;
        if (j.deduplicated) dedup += j.size;
      }
      if (e.id != 0) {
        SFS_RETURN_IF_ERROR(cat_.UpdateEntry(e));
      } else {
        if (!op.parent || op.parent->id == 0)
          return Status(Code::kInvalidArgument, "internal: parent of '" + e.name + "' not recorded");
        e.parent_id = op.parent->id;
        auto created = cat_.CreateEntry(e);
        if (!created.ok())
          return Status(created.status().code(), op.shown + ": " + created.status().message());
        if (op.self) op.self->id = created->id;
        e.id = created->id;
      }
      if (e.type == EntryType::kFolder) folder_times_.push_back(e);
      done.emplace_back(&op, content);
      return Status::Ok();
    };
    for (size_t i = 0; i < pending_.size(); ++i)
      if (!wanted(i)) Problem(pending_[i].job->rel, pending_[i].job->problem);
    auto results = RecordBatch(cat_, pending_.size(), wanted, record, RecordOptions{});
    for (const Status& s : results) SFS_RETURN_IF_ERROR(s);
    for (const auto& [op, content] : done) Count(*op, content);
    counters_.dedup_bytes += dedup;
    return Status::Ok();
  }

  void ProgressAdd(uint64_t items, uint64_t bytes) {
    std::lock_guard lock(progress_mu_);
    progress_->Add(items, bytes);
  }

  void Fatal(const std::string& why) {
    if (!fatal_) {
      std::lock_guard lock(progress_mu_);
      progress_->Clear();
      spdlog::error("import: {}", why);
    }
    fatal_ = true;
  }

  void PrintSummary() {
    if (ctx_.globals.quiet && !o_.dry_run) return;
    const Counters& c = counters_;
    std::printf(
        "%s %lld species, %lld samples, %lld slides, %lld images; %lld files (%s, %s deduplicated), "
        "%lld folders, %lld symlinks; %lld updated; %lld unchanged and skipped%s\n",
        o_.dry_run ? "dry run: would create" : "imported: created", static_cast<long long>(c.species),
        static_cast<long long>(c.samples), static_cast<long long>(c.slides),
        static_cast<long long>(c.images), static_cast<long long>(c.files), HumanBytes(c.bytes).c_str(),
        HumanBytes(c.dedup_bytes).c_str(), static_cast<long long>(c.folders),
        static_cast<long long>(c.symlinks), static_cast<long long>(c.updated),
        static_cast<long long>(c.unchanged), o_.dry_run ? "; nothing was changed" : "");
  }

  Context& ctx_;
  const ImportOptions& o_;
  Template t_;
  Catalog& cat_;
  std::mutex progress_mu_;  // workers report progress too
  std::unique_ptr<ContentPool> pool_;
  std::unique_ptr<Progress> progress_;
  std::vector<std::string> problems_;
  Counters counters_;
  std::vector<PendingOp> pending_;
  std::vector<Entry> folder_times_;  // folders recorded for the current image
  uint64_t pending_bytes_ = 0;
  bool fatal_ = false;
  std::string display_prefix_;
  // Dry run: records already announced.
  std::set<std::string> planned_species_, planned_samples_;
  std::map<std::string, std::string> planned_slides_;
};

int RunImport(Context& ctx, const ImportOptions& o) {
  auto t = ParseTemplate(o.layout);
  if (!t.ok()) return UsageError("{}", t.status().message());
  if (int rc = ctx.Open(o.dry_run ? OpenMode::kReadOnly : OpenMode::kReadWrite); rc != kExitOk) return rc;
  Importer importer(ctx, o, std::move(t).value());
  return importer.Run();
}

}  // namespace

void AddImportCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<ImportOptions>(app, out, "import",
      "Record an existing directory tree. --layout maps its folders onto records, e.g.\n"
      "'{species}/{sample}/{slide}/{image}/'; everything below the image folder becomes that\n"
      "image's files. Resumable: re-running skips what is already recorded (same size and mtime).", RunImport);
  sub->add_option("SRC", o->src, "Folder to import")->required();
  sub->add_option("--layout", o->layout,
                  "Path template: {species}, {sample}, {slide}, {image} and literal folder names")
      ->required();
  sub->add_flag("-n,--dry-run", o->dry_run, "Print what would be created; change nothing");
  sub->add_option("--exclude", o->excludes,
                  "Skip names matching this shell pattern at any depth (repeatable), e.g. '.*'");
  sub->add_option("-j,--jobs", o->jobs, "Files stored in parallel")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
}

}  // namespace samplefs::ctl
