#include "catalog/crash_point.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace samplefs {

void CrashPoint(const char* point) {
  static const char* target = std::getenv("SAMPLEFS_CRASH_AT");
  if (!target || std::strcmp(target, point) != 0) return;
  static std::atomic<long> remaining = [] {
    const char* after = std::getenv("SAMPLEFS_CRASH_AFTER");
    return after ? std::atol(after) : 0L;
  }();
  if (remaining.fetch_sub(1) > 0) return;
  _exit(99);
}

}  // namespace samplefs
