// ErrorLog: the recent rejected operations, shown in /.samplefs/errors so a
// user whose `mkdir` or editor save failed can read why.
#pragma once

#include <deque>
#include <mutex>
#include <string>

namespace samplefs::fs {

class ErrorLog {
 public:
  explicit ErrorLog(size_t capacity = 200) : capacity_(capacity) {}
  // Records "<time> <op> <path>: <reason>" and logs it at warning level.
  // Bytes that are not UTF-8 are written as \xNN: the file stays UTF-8 text.
  void Add(const std::string& op, const std::string& path, const std::string& reason);
  // All recorded lines, oldest first, each ending in '\n'.
  std::string Text() const;
  size_t size() const;

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::deque<std::string> lines_;  // GUARDED_BY(mu_)
};

}  // namespace samplefs::fs
