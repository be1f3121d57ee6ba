#include "catalog/object_store.h"

#include "catalog/crash_point.h"
#include "catalog/seal_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <map>
#include <unordered_map>
#include <vector>

namespace samplefs {
namespace {

// Every buffer the store allocates is this size, so memory stays flat
// whatever the size of the object (STYLE practice 6).
constexpr size_t kChunk = size_t{1} << 20;
// Writes are handed to the kernel's writeback in batches of this size.
constexpr uint64_t kWritebackBatch = uint64_t{8} << 20;
// Objects at least this big leave the page cache once published (DropBehind).
constexpr uint64_t kDropBehindBytes = uint64_t{64} << 20;
constexpr uint64_t kMaxFileOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());

std::atomic<test_hooks::DigestFilter> g_digest_filter{nullptr};

ContentHash FinishDigest(const XXH3_state_t* state) {
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(state));
  ContentHash h;
  std::memcpy(h.bytes.data(), canon.digest, h.bytes.size());
  if (auto filter = g_digest_filter.load(std::memory_order_relaxed)) return filter(h);
  return h;
}

class UniqueDir {
 public:
  explicit UniqueDir(DIR* d) : d_(d) {}
  ~UniqueDir() {
    if (d_) ::closedir(d_);
  }
  UniqueDir(const UniqueDir&) = delete;
  UniqueDir& operator=(const UniqueDir&) = delete;
  DIR* get() const { return d_; }

 private:
  DIR* d_;
};

struct XxhStateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using XxhStatePtr = std::unique_ptr<XXH3_state_t, XxhStateDeleter>;

std::unique_ptr<char[]> NewChunk() { return std::unique_ptr<char[]>(new char[kChunk]); }

// pwrite until everything is written: a regular file may still return a
// short count (signal, quota edge), and the caller needs to know how far it
// got to keep size_ truthful.
Status PwriteAll(int fd, const void* data, size_t size, uint64_t offset, size_t* written) {
  const char* p = static_cast<const char*>(data);
  *written = 0;
  while (*written < size) {
    ssize_t n = ::pwrite(fd, p + *written, size - *written, static_cast<off_t>(offset + *written));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write to staging file");
    }
    if (n == 0) return Status(Code::kIo, "write to staging file made no progress", EIO);
    *written += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// pread until `size` bytes or end of file; returns the count read.
Result<size_t> PreadFull(int fd, void* buf, size_t size, uint64_t offset, const char* what) {
  char* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, p + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, what);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

Status FsyncPath(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open directory " + path);
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync directory " + path);
  return Status::Ok();
}

// mkdir with 0700; true when this call created it. An existing directory is
// fine and keeps whatever mode its owner gave it.
Result<bool> MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return true;
  int err = errno;
  if (err == EEXIST) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return false;
    return Status(Code::kIo, path + " exists and is not a directory", ENOTDIR);
  }
  return Status::FromErrno(err, "create directory " + path);
}

Status MakeDirs(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix.back() == '/') continue;
    auto made = MakeDir(prefix);
    if (!made.ok()) return made.status();
  }
  auto made = MakeDir(path);
  return made.status();
}

std::string RandomHex() {
  uint8_t raw[16];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < sizeof raw) {  // no getrandom (old kernel, seccomp): read the device
    UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
    if (fd.valid()) {
      auto r = PreadFull(fd.get(), raw, sizeof raw, 0, "read /dev/urandom");
      if (r.ok()) got = *r;
    }
  }
  if (got < sizeof raw) {
    // Last resort; O_EXCL still guarantees we never share a staging file.
    uint64_t mix = static_cast<uint64_t>(::getpid()) << 32 ^ static_cast<uint64_t>(std::time(nullptr)) ^
                   reinterpret_cast<uintptr_t>(&got);
    for (auto& b : raw) {
      mix = mix * 6364136223846793005ULL + 1442695040888963407ULL;
      b = static_cast<uint8_t>(mix >> 56);
    }
  }
  ContentHash h;
  std::memcpy(h.bytes.data(), raw, sizeof raw);
  return h.hex();
}

// True when `a` (of size `a_size`) and `b` hold the same bytes. Streams both
// in pieces of at most kChunk (a small file's size: no 2 MiB of buffers
// for a 4 KiB file).
Result<bool> SameBytes(int a, uint64_t a_size, int b) {
  struct stat st;
  if (::fstat(b, &st) != 0) return Status::FromErrno(errno, "stat existing object");
  if (static_cast<uint64_t>(st.st_size) != a_size) return false;
  const size_t piece = static_cast<size_t>(std::clamp<uint64_t>(a_size, 1, kChunk));
  std::unique_ptr<char[]> buf_a(new char[piece]);
  std::unique_ptr<char[]> buf_b(new char[piece]);
  for (uint64_t off = 0; off < a_size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(piece, a_size - off));
    auto ra = PreadFull(a, buf_a.get(), want, off, "read staging file");
    if (!ra.ok()) return ra.status();
    auto rb = PreadFull(b, buf_b.get(), want, off, "read existing object");
    if (!rb.ok()) return rb.status();
    if (*ra != *rb || std::memcmp(buf_a.get(), buf_b.get(), *ra) != 0) return false;
    if (*ra < want) return true;  // both ended early at the same point
    off += want;
  }
  return true;
}

std::string DirOf(const std::string& path) { return path.substr(0, path.rfind('/')); }

bool IsHexPair(const char* s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  return s[0] && s[1] && !s[2] && hex(s[0]) && hex(s[1]);
}

// Reads every entry name of a directory except "." and "..". `fn` returns
// false to stop early.
template <class Fn>
Status ForEachEntry(DIR* dir, const std::string& path, Fn&& fn) {
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(dir);
    if (!e) {
      if (errno != 0) return Status::FromErrno(errno, "read directory " + path);
      return Status::Ok();
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    Status st = fn(e->d_name);
    if (!st.ok()) return st;
  }
}

}  // namespace

namespace test_hooks {
void SetDigestFilter(DigestFilter filter) { g_digest_filter.store(filter); }
}  // namespace test_hooks

Result<ContentHash> HashFd(int fd, uint64_t size) {
  XxhStatePtr state(XXH3_createState());
  if (!state || XXH3_128bits_reset(state.get()) != XXH_OK)
    return Status(Code::kIo, "cannot allocate a hash state", ENOMEM);
  // Objects are read once, front to back: let the kernel read ahead further.
  (void)::posix_fadvise(fd, 0, static_cast<off_t>(std::min(size, kMaxFileOffset)), POSIX_FADV_SEQUENTIAL);
  auto buf = NewChunk();
  for (uint64_t off = 0; off < size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    auto got = PreadFull(fd, buf.get(), want, off, "read for hashing");
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    XXH3_128bits_update(state.get(), buf.get(), *got);
    off += *got;
    if (*got < want) break;
  }
  return FinishDigest(state.get());
}

// ---------------------------------------------------------------------------
// ObjectWriter

struct ObjectWriter::HashState {
  XxhStatePtr state{XXH3_createState()};
};

ObjectWriter::ObjectWriter(ObjectStore* store, UniqueFd fd, std::string path)
    : store_(store), fd_(std::move(fd)), path_(std::move(path)), state_(std::make_unique<HashState>()) {
  // Without a streaming state the writer still works: Publish re-hashes.
  if (!state_->state || XXH3_128bits_reset(state_->state.get()) != XXH_OK) in_order_ = false;
}

ObjectWriter::~ObjectWriter() {
  fd_.reset();
  if (!published_) {
    ::unlink(path_.c_str());
    RemoveSeal();  // a version dropped unpublished must not be recovered
  }
}

Status ObjectWriter::Write(const void* data, size_t size, uint64_t offset) {
  if (published_) return Status(Code::kInvalidArgument, "write to an already published object");
  if (offset > kMaxFileOffset || size > kMaxFileOffset - offset)
    return Status(Code::kTooBig, "write beyond the largest file offset");
  if (size == 0) return Status::Ok();
  ++generation_;
  size_t written = 0;
  Status st = PwriteAll(fd_.get(), data, size, offset, &written);
  if (written > 0) size_ = std::max(size_, offset + written);
  if (!st.ok()) {
    in_order_ = false;  // part of the range may be on disk; hash from disk
    return st;
  }
  if (in_order_ && offset == hashed_upto_) {
    XXH3_128bits_update(state_->state.get(), data, size);
    hashed_upto_ += size;
  } else {
    in_order_ = false;
  }
  StartWriteback(offset + size);
  return Status::Ok();
}

void ObjectWriter::StartWriteback(uint64_t end) {
  // Start asynchronous writeback of what has streamed in so far, so the
  // device works while the caller is still producing data and Publish()'s
  // fsync finds little left to do; without it the page cache holds a whole
  // large file dirty (dirty_background_ratio of a big-memory machine) and
  // all of the I/O happens inside fsync. Best effort: errors surface at fsync.
  if (end < writeback_from_ + kWritebackBatch) return;
  (void)::sync_file_range(fd_.get(), static_cast<off_t>(writeback_from_), static_cast<off_t>(end - writeback_from_),
                          SYNC_FILE_RANGE_WRITE);
  writeback_from_ = end;
}

Status ObjectWriter::Truncate(uint64_t size) {
  if (published_) return Status(Code::kInvalidArgument, "truncate of an already published object");
  if (size > kMaxFileOffset) return Status(Code::kTooBig, "truncate beyond the largest file offset");
  // A same-size truncate changes no byte (open(O_TRUNC) of a new file sends
  // one), so the streaming hash stays valid.
  if (size == size_) return Status::Ok();
  ++generation_;
  while (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
    if (errno != EINTR) return Status::FromErrno(errno, "truncate staging file");
  }
  size_ = size;
  in_order_ = false;
  writeback_from_ = std::min(writeback_from_, size);
  return Status::Ok();
}

Result<size_t> ObjectWriter::Read(void* buf, size_t size, uint64_t offset) const {
  if (offset > kMaxFileOffset) return size_t{0};
  size = static_cast<size_t>(std::min<uint64_t>(size, kMaxFileOffset - offset));
  return PreadFull(fd_.get(), buf, size, offset, "read staging file");
}

Status ObjectWriter::CopyFrom(int src_fd, uint64_t size) {
  if (published_) return Status(Code::kInvalidArgument, "copy into an already published object");
  if (size > kMaxFileOffset) return Status(Code::kTooBig, "copy beyond the largest file offset");
  if (size == 0) return Status::Ok();
  ++generation_;
  // Only a copy into an empty file continues the in-order stream; anything
  // else overwrites hashed bytes.
  const bool hashing = in_order_ && size_ == 0 && hashed_upto_ == 0;
  if (!hashing) in_order_ = false;
  std::unique_ptr<char[]> buf;
  bool use_copy_file_range = true;
  uint64_t done = 0;
  auto fail = [&](Status st) {
    in_order_ = false;
    return st;
  };
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, size - done));
    size_t got = 0;
    if (use_copy_file_range) {
      // In-kernel copy: no user-space pass over the data (and a reflink on
      // filesystems that offer one).
      loff_t in_off = static_cast<loff_t>(done), out_off = static_cast<loff_t>(done);
      ssize_t n = ::copy_file_range(src_fd, &in_off, fd_.get(), &out_off, want, 0);
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EXDEV || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL || err == EBADF) {
          use_copy_file_range = false;  // unsupported pair of files: copy by hand
          continue;
        }
        return fail(Status::FromErrno(err, "copy into staging file"));
      }
      got = static_cast<size_t>(n);
      if (got > 0) size_ = std::max(size_, done + got);
      if (got > 0 && hashing) {
        // Hash what landed in the staging file; it is in the page cache.
        if (!buf) buf = NewChunk();
        auto r = PreadFull(fd_.get(), buf.get(), got, done, "read back staging file");
        if (!r.ok()) return fail(r.status());
        if (*r != got) return fail(Status(Code::kIo, "staging file shorter than just copied", EIO));
        XXH3_128bits_update(state_->state.get(), buf.get(), got);
      }
    } else {
      if (!buf) buf = NewChunk();
      auto r = PreadFull(src_fd, buf.get(), want, done, "read copy source");
      if (!r.ok()) return fail(r.status());
      got = *r;
      size_t written = 0;
      Status st = PwriteAll(fd_.get(), buf.get(), got, done, &written);
      if (written > 0) size_ = std::max(size_, done + written);
      if (!st.ok()) return fail(st);
      if (hashing) XXH3_128bits_update(state_->state.get(), buf.get(), got);
    }
    if (got == 0) {
      return fail(Status(Code::kIo,
                         "copy source ended at " + std::to_string(done) + " of " + std::to_string(size) + " bytes",
                         EIO));
    }
    done += got;
    if (hashing) hashed_upto_ = done;
    StartWriteback(done);
  }
  return Status::Ok();
}

Result<ContentHash> ObjectWriter::HashFromDisk() const { return HashFd(fd_.get(), size_); }

Result<PublishedObject> ObjectWriter::Publish() {
  ObjectWriter* self = this;
  return std::move(PublishAll(std::span<ObjectWriter* const>(&self, 1))[0]);
}

Status ObjectWriter::SyncData(bool synced) {
  // The data must be durable before any name points at it.
  if (!synced) store_->data_syncs_.fetch_add(1, std::memory_order_relaxed);
  while (!synced && ::fsync(fd_.get()) != 0) {
    if (errno != EINTR) return Status::FromErrno(errno, "fsync staging file " + path_);
  }
  CrashPoint("after-staging-fsync");
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return Status::FromErrno(errno, "stat staging file " + path_);
  staged_mtime_sec_ = st.st_mtim.tv_sec;
  if (static_cast<uint64_t>(st.st_size) != size_) {
    // Only possible if someone changed the file behind our back (fd() is
    // shared for reads); the disk is the truth.
    size_ = static_cast<uint64_t>(st.st_size);
    in_order_ = false;
  }
  return Status::Ok();
}

Result<ContentHash> ObjectWriter::Digest() {
  std::lock_guard lock(digest_mu_);
  if (digest_generation_ == generation_) return digest_;
  if (in_order_ && hashed_upto_ == size_) {
    digest_ = FinishDigest(state_->state.get());
  } else {
    SFS_ASSIGN_OR_RETURN(digest_, HashFromDisk());
  }
  digest_generation_ = generation_;
  return digest_;
}

Status ObjectWriter::WriteSeal(Seal seal, bool durable) {
  if (published_) return Status::Ok();  // recorded by its publisher's commit
  if (seal_generation_ == generation_ && (seal_durable_ || !durable)) return Status::Ok();
  SFS_ASSIGN_OR_RETURN(seal.hash, Digest());
  seal.size = size_;
  if (durable) {
    while (::fdatasync(fd_.get()) != 0)
      if (errno != EINTR) return Status::FromErrno(errno, "fsync staging file " + path_);
  }
  if (!seal_log_) return Status(Code::kInvalidArgument, "this staging file cannot be sealed");
  // One line appended to the session's log (catalog/seal_log.h), instead
  // of a seal file of its own: no inode made here and deleted at commit.
  // A daemon killed halfway leaves a line without its end, which recovery
  // ignores; its version had not been closed yet (sealing is what close()
  // waits for), so nothing closed is lost.
  SFS_RETURN_IF_ERROR(seal_log_->Append(path_.substr(path_.rfind('/') + 1), seal, durable));
  seal_written_ = true;
  if (durable && !entry_durable_) {
    // The staging file's own name must survive a power cut too.
    SFS_RETURN_IF_ERROR(FsyncPath(path_.substr(0, path_.rfind('/'))));
    entry_durable_ = true;
  }
  seal_generation_ = generation_;
  seal_durable_ = durable;
  return Status::Ok();
}

void ObjectWriter::RemoveSeal() {
  if (!seal_written_) return;
  seal_log_->Done(path_.substr(path_.rfind('/') + 1));
  seal_written_ = false;
  seal_generation_ = UINT64_MAX;
}

bool ObjectWriter::DeduplicateEarly() {
  // Before anything of this file is synced: if its content is already an
  // object, the staging file is dropped while its data is still only in
  // the page cache (never written to the disk), and nothing of it needs a
  // journal commit. The bytes are compared first (SPEC section 3: a hash
  // collision must never substitute data); the staging file's are in the
  // page cache, the object's usually too (a re-copy of what was just
  // copied) or one read. Anything unexpected (no object, another size,
  // other bytes, an error) leaves the writer to the full path, which
  // publishes, replaces a corrupt object or refuses a collision.
  auto hash = Digest();
  if (!hash.ok()) return false;
  UniqueFd existing(::open(store_->ObjectPath(*hash).c_str(), O_RDONLY | O_CLOEXEC));
  if (!existing.valid()) return false;
  struct stat st;
  if (::fstat(existing.get(), &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size_)
    return false;
  auto same = SameBytes(fd_.get(), size_, existing.get());
  if (!same.ok() || !*same) return false;
  // gc's grace period must spare the object until the caller's record
  // names it: a fresh mtime, always (an object of a previous mount's last
  // minute may be older than this mount's start, which is what spares
  // objects from `gc --grace 0` under a live mount). A touch that fails
  // (gc removed it meanwhile) leaves the writer to the full path, which
  // links it again.
  if (::futimens(existing.get(), nullptr) != 0) return false;
  // The caller's record may name the object once its directory entry is
  // durable. It is if this store linked it and synced its folder, or if it
  // was linked more than kSettledSec ago (its ctime, read before the touch):
  // file systems commit their metadata within seconds (ext4 every 5 s, XFS
  // 30 s), and a crash since then would have left what we see on the disk.
  // Otherwise (another process's link of the last moments) its folder is
  // synced with the batch's, as before. A syncfs for folders that need
  // none would write every pending staging file of the mount, duplicates
  // included, which is what this path avoids.
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  dedup_dir_sync_ = now - static_cast<int64_t>(st.st_ctim.tv_sec) < ObjectStore::kSettledSec && !store_->LinkedDurably(*hash);
  ::unlink(path_.c_str());  // a leftover name is harmless: CleanStaging
  published_object_.hash = *hash;
  published_object_.size = size_;
  published_object_.deduplicated = true;
  published_ = true;
  early_dedup_ = true;
  store_->early_dedups_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Result<PublishedObject> ObjectWriter::Link(std::vector<std::string>* dirs_to_sync) {
  SFS_ASSIGN_OR_RETURN(ContentHash hash, Digest());
  SFS_RETURN_IF_ERROR(store_->EnsureObjectDir(hash, dirs_to_sync));
  if (::fchmod(fd_.get(), 0400) != 0) return Status::FromErrno(errno, "chmod staging file " + path_);

  const std::string final_path = store_->ObjectPath(hash);
  PublishedObject out;
  out.hash = hash;
  out.size = size_;
  // A few rounds only matter if gc removes the existing object between our
  // link() and open(); then the next link() simply succeeds.
  for (int attempt = 0;; ++attempt) {
    if (::link(path_.c_str(), final_path.c_str()) == 0) {
      ::unlink(path_.c_str());  // a leftover name is harmless: CleanStaging
      break;
    }
    if (errno == ENOENT && attempt < 3) {
      // Its directory went (removed by hand: nothing of ours removes
      // them) since EnsureObjectDir last saw it: made again.
      store_->ForgetObjectDir(hash);
      SFS_RETURN_IF_ERROR(store_->EnsureObjectDir(hash, dirs_to_sync));
      continue;
    }
    if (errno != EEXIST) return Status::FromErrno(errno, "link " + path_ + " to " + final_path);

    UniqueFd existing(::open(final_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!existing.valid()) {
      if (errno == ENOENT && attempt < 3) continue;
      return Status::FromErrno(errno, "open existing object " + final_path);
    }
    // Never trust the name alone: a collision must not substitute data.
    SFS_ASSIGN_OR_RETURN(bool same, SameBytes(fd_.get(), size_, existing.get()));
    if (same) {
      // A fresh mtime keeps gc's grace period from taking the object before
      // the caller's catalog transaction references it.
      if (::futimens(existing.get(), nullptr) != 0)
        return Status::FromErrno(errno, "touch existing object " + final_path);
      ::unlink(path_.c_str());
      out.deduplicated = true;
      break;
    }
    struct stat est;
    if (::fstat(existing.get(), &est) != 0) return Status::FromErrno(errno, "stat existing object " + final_path);
    SFS_ASSIGN_OR_RETURN(ContentHash existing_hash, HashFd(existing.get(), static_cast<uint64_t>(est.st_size)));
    if (existing_hash == hash) {
      return Status(Code::kCorrupt, "hash collision on " + hash.hex() +
                                        ": the existing object holds different bytes with the same "
                                        "XXH3-128; refusing to substitute data");
    }
    // The existing object no longer hashes to its name: it is corrupt and
    // our bytes are the right ones. rename() swaps it in atomically.
    if (::rename(path_.c_str(), final_path.c_str()) != 0)
      return Status::FromErrno(errno, "replace corrupt object " + final_path);
    spdlog::warn("object {} was corrupt (its bytes hash to {}); replaced it with new data of that content",
                 hash.hex(), existing_hash.hex());
    break;
  }
  published_object_ = out;
  published_ = true;
  DropBehind();
  return out;
}

void ObjectWriter::DropBehind() {
  // A large file is written once and seldom read right away (raw data
  // copied in): once durable, its pages are clean and can go, instead of
  // pushing out what the machine is working with. Small files stay cached.
  if (size_ >= kDropBehindBytes) (void)::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_DONTNEED);
}

ObjectStore::~ObjectStore() {
  FinishOrphanedSessions(false);
  if (!session_dir_.empty()) EndSession();
  session_lock_fd_.reset();
  root_fd_.reset();
}

Status ObjectStore::SyncFilesystem() const {
  if (::syncfs(root_fd_.get()) != 0) return Status::FromErrno(errno, "syncfs of the object store " + root_);
  return Status::Ok();
}

std::vector<Result<PublishedObject>> ObjectWriter::PublishAll(std::span<ObjectWriter* const> writers) {
  // Phases over the whole batch rather than one writer after the other, so
  // that a file system with a journal commits it once per phase: the first
  // fsync of the data commits every file's allocation (their writeback was
  // started first), and the first directory fsync every link. N files cost
  // about what one costs, which is what makes copying many small files fast.
  std::vector<Result<PublishedObject>> out;
  out.reserve(writers.size());
  std::vector<char> retry(writers.size(), 0);  // published by an earlier round
  for (size_t i = 0; i < writers.size(); ++i) {
    out.emplace_back(Status(Code::kIo, "not published"));
    retry[i] = writers[i]->published_;
  }
  // Content already in the store first (DeduplicateEarly): its staging data
  // is dropped before the writeback below starts, so a re-copy writes no
  // data and costs no more than new content (it cost 1.3-2.9x more when
  // every duplicate was synced, then compared, docs/DECISIONS.md).
  for (ObjectWriter* w : writers)
    if (!w->published_) (void)w->DeduplicateEarly();
  size_t fresh = 0;
  for (ObjectWriter* w : writers) {
    if (w->published_) continue;
    ++fresh;
    if (w->size_ > w->writeback_from_)
      (void)::sync_file_range(w->fd_.get(), static_cast<off_t>(w->writeback_from_), 0, SYNC_FILE_RANGE_WRITE);
  }
  // Several files: one syncfs makes all their data durable with one journal
  // commit and one cache flush. An fsync per file would commit once and
  // then still flush the disk's cache once per file (a few ms each here).
  // If it fails, per-file fsyncs find which file it was.
  const bool batch_synced = fresh >= 2 && writers[0]->store_->SyncFilesystem().ok();
  if (batch_synced) writers[0]->store_->data_syncs_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> new_dirs;  // made for the batch's objects, not yet fsynced
  for (size_t i = 0; i < writers.size(); ++i) {
    ObjectWriter* w = writers[i];
    if (w->published_) {
      // A retry after the caller's catalog transaction failed (a locked
      // catalog): the object is in place; its directory is fsynced again
      // below and its mtime refreshed, so gc's grace period spares it until
      // the retried transaction references it.
      out[i] = w->published_object_;
      continue;
    }
    Status s = w->SyncData(batch_synced);
    out[i] = s.ok() ? w->Link(&new_dirs) : Result<PublishedObject>(s);
  }
  // The directory entries must be durable before a record names an object
  // (the objects' own, and those of objects/xx/yy directories made for
  // them): one syncfs for many directories, else an fsync of each.
  std::unordered_map<std::string, Status> dirs;
  for (size_t i = 0; i < writers.size(); ++i)
    if (out[i].ok() && !(writers[i]->early_dedup_ && !writers[i]->dedup_dir_sync_))
      dirs.emplace(DirOf(writers[i]->store_->ObjectPath(out[i]->hash)), Status::Ok());
  for (const std::string& d : new_dirs) dirs.emplace(d, Status::Ok());
  if (!(dirs.size() >= 2 && writers[0]->store_->SyncFilesystem().ok())) {
    for (auto& [dir, st] : dirs) st = FsyncPath(dir);
  }
  if (!writers.empty()) {
    const ObjectStore& store = *writers[0]->store_;
    std::lock_guard<std::mutex> lock(store.dir_mu_);
    for (const auto& [dir, st] : dirs)
      if (st.ok()) store.unsynced_parents_.erase(dir);
  }
  for (size_t i = 0; i < writers.size(); ++i) {
    if (!out[i].ok()) continue;
    // Its directory, and the two above it if they were made for the batch.
    std::string dir = DirOf(writers[i]->store_->ObjectPath(out[i]->hash));
    for (int level = 0; level < 3 && out[i].ok(); ++level, dir = DirOf(dir)) {
      auto it = dirs.find(dir);
      if (it != dirs.end() && !it->second.ok()) out[i] = it->second;
    }
    if (out[i].ok() && !out[i]->deduplicated) writers[i]->store_->NoteLinkedDurably(out[i]->hash);
  }
  // gc's grace period must spare each object until its record is written.
  // A deduplicated object was touched when compared (if it was not young
  // already); a new one has its data's mtime, recent unless the file was
  // written long ago and kept open (touching every new object would dirty
  // its inode again right after the sync); a retried one is touched again.
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  for (size_t i = 0; i < writers.size(); ++i) {
    if (!out[i].ok()) continue;
    const bool recent = !retry[i] && (out[i]->deduplicated || now - writers[i]->staged_mtime_sec_ < 60);
    if (!recent) {
      Status t = writers[i]->store_->Touch(out[i]->hash);
      if (!t.ok()) {
        out[i] = t;
        continue;
      }
    }
    CrashPoint("after-link");  // once per object, as for one Publish()
  }
  return out;
}

// ---------------------------------------------------------------------------
// ObjectStore

Result<std::unique_ptr<ObjectStore>> ObjectStore::Open(const std::string& root_in) {
  if (root_in.empty()) return Status(Code::kInvalidArgument, "empty object store path");
  std::string root = root_in;
  // Absolute, because a daemonised mount changes its working directory.
  if (root[0] != '/') {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd)) return Status::FromErrno(errno, "getcwd");
    root = std::string(cwd) + "/" + root;
  }
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  SFS_RETURN_IF_ERROR(MakeDirs(root));
  for (const char* sub : {"/objects", "/staging"}) {
    auto made = MakeDir(root + sub);
    if (!made.ok()) return made.status();
  }
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open object store " + root);
  std::unique_ptr<ObjectStore> store(new ObjectStore(std::move(root), std::move(fd)));
  store->seal_log_ = std::make_shared<SealLog>(store->root_ + "/staging");
  return store;
}

std::string ObjectStore::ObjectPath(const ContentHash& hash) const {
  const std::string hex = hash.hex();
  std::string path = root_;
  path.reserve(root_.size() + 9 + 3 + 3 + hex.size());
  path += "/objects/";
  path.append(hex, 0, 2);
  path += '/';
  path.append(hex, 2, 2);
  path += '/';
  path += hex;
  return path;
}

Status ObjectStore::EnsureObjectDir(const ContentHash& hash, std::vector<std::string>* to_sync) const {
  const std::string hex = hash.hex();
  const std::string objects = root_ + "/objects";
  const std::string d1 = objects + "/" + hex.substr(0, 2);
  const std::string d2 = d1 + "/" + hex.substr(2, 2);
  const size_t leaf = size_t{hash.bytes[0]} << 8 | hash.bytes[1];
  std::lock_guard<std::mutex> lock(dir_mu_);
  // A leaf known to be there, and durable, costs no syscall: in a store
  // that has most of them, that was a mkdir (EEXIST) and a stat per level
  // for every object published.
  if (known_dirs_.empty()) known_dirs_.assign(size_t{1} << 16, false);
  if (known_dirs_[leaf]) return Status::Ok();
  // `parent` needs an fsync if we made a directory in it, or if a batch
  // made one there and has not fsynced it yet (the directory we found may
  // be that one).
  auto sync_parent = [&](const std::string& parent, bool made) -> Status {
    if (!made && unsynced_parents_.count(parent) == 0) return Status::Ok();
    if (!to_sync) return FsyncPath(parent);
    to_sync->push_back(parent);
    unsynced_parents_.insert(parent);
    return Status::Ok();
  };
  SFS_ASSIGN_OR_RETURN(bool made1, MakeDir(d1));
  SFS_RETURN_IF_ERROR(sync_parent(objects, made1));
  SFS_ASSIGN_OR_RETURN(bool made2, MakeDir(d2));
  SFS_RETURN_IF_ERROR(sync_parent(d1, made2));
  // Known from now on once nothing about it waits for a batch's fsync.
  if (unsynced_parents_.count(objects) == 0 && unsynced_parents_.count(d1) == 0) known_dirs_[leaf] = true;
  return Status::Ok();
}

namespace {
std::pair<uint64_t, uint64_t> HashKey(const ContentHash& hash) {
  std::pair<uint64_t, uint64_t> k;
  std::memcpy(&k.first, hash.bytes.data(), 8);
  std::memcpy(&k.second, hash.bytes.data() + 8, 8);
  return k;
}
}  // namespace

bool ObjectStore::LinkedDurably(const ContentHash& hash) const {
  std::lock_guard<std::mutex> lock(durable_mu_);
  return durable_links_.count(HashKey(hash)) != 0;
}

void ObjectStore::NoteLinkedDurably(const ContentHash& hash) const {
  std::lock_guard<std::mutex> lock(durable_mu_);
  // Bounded (memory stays flat): past the cap it starts over; an object
  // forgotten here is only synced once more if it is met again in its
  // first kSettledSec.
  if (durable_links_.size() >= kMaxDurableLinks) durable_links_.clear();
  durable_links_.insert(HashKey(hash));
}

void ObjectStore::ForgetObjectDir(const ContentHash& hash) const {
  std::lock_guard<std::mutex> lock(dir_mu_);
  if (!known_dirs_.empty()) known_dirs_[size_t{hash.bytes[0]} << 8 | hash.bytes[1]] = false;
}

Result<std::unique_ptr<ObjectWriter>> ObjectStore::NewWriter() {
  const std::string dir = session_dir_.empty() ? root_ + "/staging" : session_dir_;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string path = dir + "/" + RandomHex() + ".tmp";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.valid()) {
      std::unique_ptr<ObjectWriter> w(new ObjectWriter(this, std::move(fd), std::move(path)));
      std::lock_guard lock(seal_log_mu_);
      w->seal_log_ = seal_log_;
      return w;
    }
    if (errno != EEXIST) return Status::FromErrno(errno, "create staging file " + path);
  }
  return Status(Code::kIo, "could not pick an unused staging file name", EEXIST);
}

Result<UniqueFd> ObjectStore::OpenObject(const ContentHash& hash) const {
  UniqueFd fd(::open(ObjectPath(hash).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open object " + hash.hex());
  return fd;
}

bool ObjectStore::Exists(const ContentHash& hash) const {
  struct stat st;
  return ::stat(ObjectPath(hash).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<ObjectInfo> ObjectStore::Stat(const ContentHash& hash) const {
  struct stat st;
  if (::stat(ObjectPath(hash).c_str(), &st) != 0) return Status::FromErrno(errno, "stat object " + hash.hex());
  ObjectInfo info;
  info.hash = hash;
  info.size = static_cast<uint64_t>(st.st_size);
  info.mtime_sec = st.st_mtim.tv_sec;
  return info;
}

Status ObjectStore::Touch(const ContentHash& hash) const {
  if (::utimensat(AT_FDCWD, ObjectPath(hash).c_str(), nullptr, 0) != 0)
    return Status::FromErrno(errno, "touch object " + hash.hex());
  return Status::Ok();
}

Status ObjectStore::ForEachObject(const std::function<Status(const ObjectInfo&)>& fn) const {
  const std::string objects = root_ + "/objects";
  UniqueDir top(::opendir(objects.c_str()));
  if (!top.get()) return Status::FromErrno(errno, "open directory " + objects);
  return ForEachEntry(top.get(), objects, [&](const char* n1) -> Status {
    if (!IsHexPair(n1)) return Status::Ok();
    const std::string d1 = objects + "/" + n1;
    UniqueDir mid(::opendir(d1.c_str()));
    if (!mid.get()) return errno == ENOENT || errno == ENOTDIR ? Status::Ok() : Status::FromErrno(errno, "open " + d1);
    return ForEachEntry(mid.get(), d1, [&](const char* n2) -> Status {
      if (!IsHexPair(n2)) return Status::Ok();
      const std::string d2 = d1 + "/" + n2;
      UniqueDir leaf(::opendir(d2.c_str()));
      if (!leaf.get())
        return errno == ENOENT || errno == ENOTDIR ? Status::Ok() : Status::FromErrno(errno, "open " + d2);
      return ForEachEntry(leaf.get(), d2, [&](const char* name) -> Status {
        std::string_view sv(name);
        // Only a valid hash filed under its own prefix is an object; any
        // other name (editor droppings, a misplaced file) is not ours.
        if (!IsHashHex(sv) || sv.substr(0, 2) != n1 || sv.substr(2, 2) != n2) return Status::Ok();
        struct stat st;
        if (::fstatat(::dirfd(leaf.get()), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
          if (errno == ENOENT) return Status::Ok();  // removed meanwhile (gc)
          return Status::FromErrno(errno, "stat object " + std::string(sv));
        }
        if (!S_ISREG(st.st_mode)) return Status::Ok();
        ObjectInfo info;
        info.hash = *ContentHash::FromHex(sv);
        info.size = static_cast<uint64_t>(st.st_size);
        info.mtime_sec = st.st_mtim.tv_sec;
        return fn(info);
      });
    });
  });
}

Status ObjectStore::Remove(const ContentHash& hash) {
  if (::unlink(ObjectPath(hash).c_str()) != 0) return Status::FromErrno(errno, "remove object " + hash.hex());
  return Status::Ok();
}

Status ObjectStore::Verify(const ContentHash& hash) const {
  SFS_ASSIGN_OR_RETURN(UniqueFd owned, OpenObject(hash));
  struct stat st;
  if (::fstat(owned.get(), &st) != 0) return Status::FromErrno(errno, "stat object " + hash.hex());
  SFS_ASSIGN_OR_RETURN(ContentHash actual, HashFd(owned.get(), static_cast<uint64_t>(st.st_size)));
  if (actual != hash)
    return Status(Code::kCorrupt, "object " + hash.hex() + " is corrupt: its bytes hash to " + actual.hex());
  return Status::Ok();
}

namespace {

// Staging files (`*.tmp`, regular) whose mtime is at least `min_age_sec`
// old. A live writer bumps the mtime with every write.
Result<std::vector<std::string>> StaleStagingNames(const std::string& dir, int64_t min_age_sec) {
  UniqueDir d(::opendir(dir.c_str()));
  if (!d.get()) return Status::FromErrno(errno, "open directory " + dir);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<std::string> names;
  Status st = ForEachEntry(d.get(), dir, [&](const char* name) -> Status {
    std::string_view sv(name);
    if (sv.size() < 5 || sv.substr(sv.size() - 4) != ".tmp") return Status::Ok();
    struct stat sb;
    if (::fstatat(::dirfd(d.get()), name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return Status::FromErrno(errno, "stat staging file " + std::string(sv));
    }
    if (!S_ISREG(sb.st_mode)) return Status::Ok();
    if (now - static_cast<int64_t>(sb.st_mtim.tv_sec) >= min_age_sec) names.emplace_back(sv);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return names;
}

}  // namespace

Result<int> ObjectStore::CleanStaging(int64_t min_age_sec) {
  const std::string dir = root_ + "/staging";
  SFS_ASSIGN_OR_RETURN(std::vector<std::string> names, StaleStagingNames(dir, min_age_sec));
  int removed = 0;
  for (const auto& name : names) {
    std::string path = dir + "/" + name;
    if (::unlink(path.c_str()) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      return Status::FromErrno(errno, "remove staging file " + path);
    }
  }
  return removed;
}

Result<std::vector<std::string>> ObjectStore::StaleStaging(int64_t min_age_sec) const {
  const std::string dir = root_ + "/staging";
  SFS_ASSIGN_OR_RETURN(std::vector<std::string> names, StaleStagingNames(dir, min_age_sec));
  for (auto& name : names) name = dir + "/" + name;
  return names;
}

// ---------------------------------------------------------------------------
// Seals and sessions

std::string Seal::Encode(const std::string& staging) const {
  nlohmann::json j = {{"v", 1},           {"entry_id", entry_id}, {"hash", hash.hex()},
                      {"size", size},     {"mtime_ns", mtime_ns}, {"sealed_ns", sealed_ns},
                      {"mode", mode},     {"closed", closed},     {"path", path}};
  if (!staging.empty()) j["staging"] = staging;
  return j.dump() + "\n";
}

Result<Seal> Seal::Decode(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    if (j.at("v").get<int>() != 1) return Status(Code::kInvalidArgument, "unknown seal version");
    Seal s;
    s.entry_id = j.at("entry_id").get<int64_t>();
    auto h = ContentHash::FromHex(j.at("hash").get<std::string>());
    if (!h) return Status(Code::kInvalidArgument, "bad hash in seal");
    s.hash = *h;
    s.size = j.at("size").get<uint64_t>();
    s.mtime_ns = j.at("mtime_ns").get<int64_t>();
    s.sealed_ns = j.at("sealed_ns").get<int64_t>();
    s.mode = j.at("mode").get<int>();
    s.closed = j.at("closed").get<bool>();
    s.path = j.at("path").get<std::string>();
    return s;
  } catch (const std::exception& e) {
    return Status(Code::kInvalidArgument, std::string("malformed seal: ") + e.what());
  }
}

namespace {

constexpr const char* kSessionSuffix = ".d";

// Removes a session directory and everything in it (one level: sessions
// hold plain files only).
void RemoveTreeImpl(const std::string& dir) {
  UniqueDir d(::opendir(dir.c_str()));
  if (d.get()) {
    (void)ForEachEntry(d.get(), dir, [&](const char* name) -> Status {
      ::unlinkat(::dirfd(d.get()), name, 0);
      return Status::Ok();
    });
  }
  ::rmdir(dir.c_str());
}

// A seal file, or a session's seal log (kept small by SealLog, but read
// whole whatever its size).
Result<std::string> ReadWholeFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  std::string text;
  size_t got = 0;
  for (;;) {
    text.resize(got + 64 * 1024);
    SFS_ASSIGN_OR_RETURN(size_t n, PreadFull(fd.get(), text.data() + got, text.size() - got, got, "read a seal"));
    got += n;
    if (got < text.size()) break;
  }
  text.resize(got);
  return text;
}

bool EndsWith(std::string_view s, std::string_view tail) {
  return s.size() > tail.size() && s.substr(s.size() - tail.size()) == tail;
}

}  // namespace

void ObjectStore::EndSession() {
  // Staging files left here were never closed (their writers are gone):
  // removed. Sealed versions left here could not be recorded (a catalog
  // locked through the unmount's last attempt, reported then): kept, with
  // the seal log, so the next mount finds this session unlocked and
  // records them.
  std::vector<std::string> live;
  {
    std::lock_guard lock(seal_log_mu_);
    if (seal_log_ && seal_log_->dir() == session_dir_) live = seal_log_->LiveNames();
  }
  std::sort(live.begin(), live.end());
  std::vector<std::string> names;
  UniqueDir d(::opendir(session_dir_.c_str()));
  if (d.get()) {
    (void)ForEachEntry(d.get(), session_dir_, [&](const char* name) -> Status {
      names.emplace_back(name);
      return Status::Ok();
    });
  }
  std::sort(names.begin(), names.end());
  bool sealed = !live.empty();
  for (const auto& n : names) {
    if (EndsWith(n, ".seal")) sealed = true;
    else if (EndsWith(n, ".tmp") && !std::binary_search(names.begin(), names.end(), n + ".seal") &&
             !std::binary_search(live.begin(), live.end(), n))
      ::unlink((session_dir_ + "/" + n).c_str());
  }
  if (!sealed) RemoveTreeImpl(session_dir_);
}

Status ObjectStore::ClaimSession() {
  if (!session_dir_.empty()) return Status::Ok();
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string dir = root_ + "/staging/" + RandomHex() + kSessionSuffix;
    if (::mkdir(dir.c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;
      return Status::FromErrno(errno, "create staging session " + dir);
    }
    UniqueFd fd(::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      Status st = Status::FromErrno(errno, "lock staging session " + dir);
      fd.reset();
      RemoveTreeImpl(dir);
      return st;
    }
    {
      std::lock_guard lock(seal_log_mu_);
      seal_log_ = std::make_shared<SealLog>(dir);
    }
    session_dir_ = std::move(dir);
    session_lock_fd_ = std::move(fd);
    return Status::Ok();
  }
  return Status(Code::kIo, "could not pick an unused staging session name", EEXIST);
}

Result<std::vector<ObjectStore::Orphan>> ObjectStore::TakeOrphanedSessions(int* unsealed) {
  const std::string staging = root_ + "/staging";
  std::vector<std::string> dirs;
  {
    UniqueDir d(::opendir(staging.c_str()));
    if (!d.get()) return Status::FromErrno(errno, "open directory " + staging);
    SFS_RETURN_IF_ERROR(ForEachEntry(d.get(), staging, [&](const char* name) -> Status {
      std::string_view sv(name);
      if (sv.size() > 2 && sv.substr(sv.size() - 2) == kSessionSuffix) dirs.push_back(staging + "/" + name);
      return Status::Ok();
    }));
  }
  std::vector<Orphan> out;
  if (unsealed) *unsealed = 0;
  for (const auto& dir : dirs) {
    if (dir == session_dir_) continue;
    UniqueFd fd(::open((dir + "/lock").c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) {
      // A session that died between mkdir and creating its lock holds
      // nothing sealed; one whose lock vanished otherwise is left alone.
      struct stat st;
      if (errno == ENOENT && ::stat(dir.c_str(), &st) == 0 && std::time(nullptr) - st.st_mtime > 3600)
        RemoveTreeImpl(dir);
      continue;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // alive: another mount's
    taken_sessions_.emplace_back(dir, std::move(fd));
    std::vector<std::string> names;
    UniqueDir d(::opendir(dir.c_str()));
    if (!d.get()) continue;
    SFS_RETURN_IF_ERROR(ForEachEntry(d.get(), dir, [&](const char* name) -> Status {
      names.emplace_back(name);
      return Status::Ok();
    }));
    std::sort(names.begin(), names.end());
    // The session's seal log (a mount since issue 16), and seal files of
    // their own (`<staging>.seal`, an older daemon's): staging name -> seal.
    std::map<std::string, std::pair<std::string, Result<Seal>>> seals;  // name -> (where, seal)
    bool log_damaged = false;
    const std::string log_path = dir + "/" + SealLog::kFileName;
    if (std::binary_search(names.begin(), names.end(), std::string(SealLog::kFileName))) {
      auto text = ReadWholeFile(log_path);
      if (!text.ok()) {
        Orphan o;
        o.seal_path = log_path;
        o.seal = text.status();
        out.push_back(std::move(o));
        log_damaged = true;
      } else {
        SealLog::Parsed parsed = SealLog::Parse(*text);
        for (auto& [name, seal] : parsed.live) seals.emplace(name, std::make_pair(log_path, Result<Seal>(seal)));
        for (uint64_t at : parsed.damaged) {
          Orphan o;
          o.seal_path = log_path;
          o.seal = Status(Code::kInvalidArgument, "a damaged record at byte " + std::to_string(at) +
                                                      " (its checksum does not match): the version it sealed "
                                                      "cannot be recovered");
          out.push_back(std::move(o));
          log_damaged = true;
        }
        if (parsed.torn_tail)
          spdlog::info("{}: its last record was cut short (never completed, so never a close() that returned)",
                       log_path);
      }
    }
    for (const auto& name : names) {
      if (!EndsWith(name, ".seal")) continue;
      const std::string staging_name = name.substr(0, name.size() - 5);
      if (seals.count(staging_name)) continue;  // the log's is the later
      auto text = ReadWholeFile(dir + "/" + name);
      seals.emplace(staging_name,
                    std::make_pair(dir + "/" + name, text.ok() ? Seal::Decode(*text) : Result<Seal>(text.status())));
    }
    for (const auto& name : names) {
      if (EndsWith(name, ".tmp") && !seals.count(name)) {
        ::unlink((dir + "/" + name).c_str());  // never closed: never committed
        if (unsealed) ++*unsealed;
      }
    }
    for (auto& [name, where_seal] : seals) {
      Orphan o;
      o.seal_path = std::move(where_seal.first);
      o.seal = std::move(where_seal.second);
      const std::string staging_path = dir + "/" + name;
      UniqueFd sfd(::open(staging_path.c_str(), O_RDWR | O_CLOEXEC));
      if (sfd.valid()) {
        o.writer.reset(new ObjectWriter(this, std::move(sfd), staging_path));
        struct stat st;
        uint64_t on_disk = ::fstat(o.writer->fd(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
        o.writer->size_ = on_disk;
        o.writer->in_order_ = false;  // hashed from disk at Publish
        // Content written after an fsync seal is not part of the sealed version.
        if (o.seal.ok() && on_disk > o.seal->size) (void)o.writer->Truncate(o.seal->size);
      } else if (errno != ENOENT) {
        o.seal = Status::FromErrno(errno, "open staging file " + staging_path);
      } else if (log_damaged && o.seal.ok()) {
        // Published, and maybe recorded since: its done mark may be the
        // damaged record. Not recorded again over what may be newer.
        o.seal = Status(Code::kInvalidArgument,
                        (o.seal->path.empty() ? "file #" + std::to_string(o.seal->entry_id) : o.seal->path) +
                            ": its staging file is gone and the session's seal log is damaged (it may have been "
                            "recorded already); not recorded again");
      }
      out.push_back(std::move(o));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Orphan& a, const Orphan& b) {
    int64_t ta = a.seal.ok() ? a.seal->sealed_ns : 0, tb = b.seal.ok() ? b.seal->sealed_ns : 0;
    return ta < tb;
  });
  return out;
}

void ObjectStore::FinishOrphanedSessions(bool remove) {
  for (auto& [dir, fd] : taken_sessions_) {
    if (remove) RemoveTreeImpl(dir);
    fd.reset();
  }
  taken_sessions_.clear();
}

Status ObjectStore::Space(uint64_t* free_bytes, uint64_t* total_bytes, uint64_t* free_files) const {
  struct statvfs sv;
  if (::statvfs(root_.c_str(), &sv) != 0) return Status::FromErrno(errno, "statvfs " + root_);
  if (free_bytes) *free_bytes = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  if (total_bytes) *total_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  if (free_files) *free_files = static_cast<uint64_t>(sv.f_favail);
  return Status::Ok();
}

bool ObjectStore::WriteBehindRoom() const {
  const uint64_t min_free = write_behind_min_free_.load(std::memory_order_relaxed);
  if (min_free == kWriteBehindOff) return false;
  if (min_free == 0) return true;
  constexpr int64_t kRecheckNs = 100'000'000;
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  auto stale = [&](int64_t checked) { return checked == 0 || now - checked >= kRecheckNs; };
  if (stale(room_checked_ns_.load(std::memory_order_acquire))) {
    std::lock_guard lock(room_mu_);
    if (stale(room_checked_ns_.load(std::memory_order_relaxed))) {
      struct statvfs sv;
      uint64_t avail = 0;  // unknown counts as full: write first, then answer
      if (::fstatvfs(root_fd_.get(), &sv) == 0) avail = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
      room_free_.store(avail, std::memory_order_relaxed);
      room_checked_ns_.store(now, std::memory_order_release);
    }
  }
  return room_free_.load(std::memory_order_relaxed) >= min_free;
}

}  // namespace samplefs
