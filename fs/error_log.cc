#include "fs/error_log.h"

#include <spdlog/spdlog.h>

#include "catalog/records.h"

namespace samplefs::fs {

void ErrorLog::Add(const std::string& op, const std::string& path, const std::string& reason) {
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
