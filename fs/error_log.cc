#include "fs/error_log.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "catalog/names.h"
#include "catalog/records.h"

namespace samplefs::fs {

namespace {

// The errors file is UTF-8 text: bytes of a refused name that are not UTF-8
// (the very reason it was refused) are shown as \xNN, so readers can decode it.
std::string Printable(const std::string& s) {
  if (IsValidUtf8(s)) return s;
  std::string out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len && i + len <= s.size() && IsValidUtf8(std::string_view(s).substr(i, len))) {
      out.append(s, i, len);
      i += len;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    }
  }
  return out;
}

}  // namespace

void ErrorLog::Add(const std::string& op, const std::string& raw_path, const std::string& raw_reason) {
  std::string path = Printable(raw_path), reason = Printable(raw_reason);
  std::string line = NowIso8601() + " " + op + " " + path + ": " + reason + "\n";
  spdlog::warn("refused {} {}: {}", op, path, reason);
  std::lock_guard lock(mu_);
  lines_.push_back(std::move(line));
  while (lines_.size() > capacity_) lines_.pop_front();
}

std::string ErrorLog::Text() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& l : lines_) out += l;
  return out;
}

size_t ErrorLog::size() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& l : lines_) n += l.size();
  return n;
}

}  // namespace samplefs::fs
