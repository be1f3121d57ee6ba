#include "catalog/seal_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string_view>

namespace samplefs {

namespace {

// The log is truncated once nothing in it is live and it is this big.
constexpr uint64_t kTruncateAt = uint64_t{64} << 10;
// ... and rewritten with the live seals only past this (and 4x live).
constexpr uint64_t kCompactAt = uint64_t{1} << 20;

std::string Checksum(std::string_view payload) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(payload.data(), payload.size())));
  return std::string(hex, 16);
}

std::string Line(std::string_view payload) {
  std::string out = Checksum(payload);
  out.reserve(out.size() + payload.size() + 2);
  out += ' ';
  out += payload;
  out += '\n';
  return out;
}

Status WriteAll(int fd, const std::string& data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, what);
    }
    if (n == 0) return Status(Code::kIo, what + ": no progress", EIO);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open directory " + dir);
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync directory " + dir);
  return Status::Ok();
}

}  // namespace

SealLog::SealLog(std::string dir) : dir_(std::move(dir)) {}

std::string SealLog::SealLine(const std::string& name, const Seal& seal) {
  std::string payload = seal.Encode(name);
  if (!payload.empty() && payload.back() == '\n') payload.pop_back();
  return Line(payload);
}

std::string SealLog::DoneLine(const std::string& name) {
  return Line(nlohmann::json({{"done", name}}).dump());
}

Status SealLog::OpenLocked() {
  if (fd_.valid()) return Status::Ok();
  const std::string p = path();
  // O_APPEND: each line lands whole at the end, whatever else appends.
  fd_ = UniqueFd(::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd_.valid()) return Status::FromErrno(errno, "open seal log " + p);
  struct stat st;
  size_ = ::fstat(fd_.get(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  entry_durable_ = false;
  return Status::Ok();
}

Status SealLog::WriteLocked(const std::string& line) {
  SFS_RETURN_IF_ERROR(OpenLocked());
  Status s = WriteAll(fd_.get(), line, "append to seal log " + path());
  if (!s.ok()) {
    // A partial line is a damaged record for a recovery; the next line
    // starts on a line of its own (best effort).
    struct stat st;
    if (::fstat(fd_.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) != size_) {
      (void)WriteAll(fd_.get(), "\n", "");
      if (::fstat(fd_.get(), &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
    }
    return s;
  }
  size_ += line.size();
  return Status::Ok();
}

Status SealLog::Append(const std::string& name, const Seal& seal, bool durable) {
  std::string line = SealLine(name, seal);
  std::lock_guard lock(mu_);
  SFS_RETURN_IF_ERROR(WriteLocked(line));
  if (durable) {
    while (::fdatasync(fd_.get()) != 0)
      if (errno != EINTR) return Status::FromErrno(errno, "fsync seal log " + path());
    if (!entry_durable_) {
      SFS_RETURN_IF_ERROR(FsyncDir(dir_));
      entry_durable_ = true;
    }
  }
  auto [it, inserted] = live_.try_emplace(name);
  if (!inserted) live_bytes_ -= it->second.line.size();
  // A durable seal superseded by a plain one: the plain one is the latest.
  it->second.durable = durable;
  it->second.line = std::move(line);
  live_bytes_ += it->second.line.size();
  return Status::Ok();
}

void SealLog::Done(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = live_.find(name);
  if (it == live_.end()) return;
  live_bytes_ -= it->second.line.size();
  live_.erase(it);
  // Nothing live any more: truncating says the same as a done mark.
  if (live_.empty() && size_ >= kTruncateAt && fd_.valid()) {
    if (::ftruncate(fd_.get(), 0) == 0) {
      size_ = 0;
      return;
    }
  }
  Status s = WriteLocked(DoneLine(name));
  if (!s.ok()) spdlog::warn("seal log: {}", s.ToString());
  MaybeShrinkLocked();
}

void SealLog::MaybeShrinkLocked() {
  if (size_ < kCompactAt || size_ < 4 * live_bytes_) return;
  // Rewritten with the live seals only, then renamed over the log: a
  // recovery reads either the old log or the new one, both saying the same
  // of every live seal.
  const std::string p = path(), tmp = p + ".new";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) return;
  std::string all;
  all.reserve(live_bytes_);
  bool durable = false;
  for (const auto& [name, l] : live_) {
    all += l.line;
    durable |= l.durable;
  }
  bool ok = WriteAll(fd.get(), all, "").ok();
  if (ok && durable) ok = ::fdatasync(fd.get()) == 0;
  if (!ok || ::rename(tmp.c_str(), p.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return;
  }
  if (durable) entry_durable_ = FsyncDir(dir_).ok();
  else entry_durable_ = false;
  fd_ = std::move(fd);
  size_ = all.size();
}

std::vector<std::string> SealLog::LiveNames() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(live_.size());
  for (const auto& [name, l] : live_) out.push_back(name);
  return out;
}

size_t SealLog::live() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

SealLog::Parsed SealLog::Parse(const std::string& text) {
  Parsed out;
  std::vector<uint64_t> bad;  // damaged lines since the last good one
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    const bool whole = end != std::string::npos;
    if (!whole) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    const uint64_t at = pos;
    pos = whole ? end + 1 : end;
    if (line.empty()) continue;
    bool good = whole && line.size() > 17 && line[16] == ' ' && Checksum(line.substr(17)) == line.substr(0, 16);
    if (good) {
      try {
        auto j = nlohmann::json::parse(line.substr(17));
        if (j.contains("done")) {
          out.live.erase(j.at("done").get<std::string>());
        } else {
          const std::string name = j.at("staging").get<std::string>();
          auto seal = Seal::Decode(std::string(line.substr(17)));
          if (!seal.ok() || name.empty() || name.find('/') != std::string::npos) good = false;
          else out.live[name] = std::move(*seal);
        }
      } catch (const std::exception&) {
        good = false;
      }
    }
    if (!good) {
      bad.push_back(at);
      continue;
    }
    out.damaged.insert(out.damaged.end(), bad.begin(), bad.end());
    bad.clear();
  }
  // Damaged lines with nothing good after them: a torn tail (a power cut
  // in the middle of the last appends), whose close() had not returned or
  // whose seal was not durable.
  out.torn_tail = !bad.empty();
  return out;
}

}  // namespace samplefs
