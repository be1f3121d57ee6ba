// ScratchFiles: temporary files in record directories (slides/S1/, ...).
//
// Editors save a sidecar by writing a temporary file next to it and
// renaming it over the original (vim's 4913 probe and backups, Python's
// tempfile + os.replace). Those files have no meaning in the catalog, so
// they live in the mount's memory only (each at most 1 MiB, at most 64 per
// directory), keyed by the record so every path of the directory sees them.
// Renaming one over a sidecar applies it; they vanish at unmount. They are
// not listed by readdir.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "catalog/records.h"
#include "catalog/status.h"

namespace samplefs::fs {

// The directory of a record, where temporary files live.
struct ScratchDir {
  Entity entity;
  int64_t id;
  bool operator==(const ScratchDir& o) const { return entity == o.entity && id == o.id; }
};

struct ScratchFile {
  std::mutex mu;
  std::string data;  // GUARDED_BY(mu)
  mode_t mode = 0644;
  int64_t mtime_ns = 0;
};

class ScratchFiles {
 public:
  static constexpr size_t kMaxFileBytes = 1024 * 1024;
  static constexpr size_t kMaxPerDirectory = 64;

  // kAlreadyExists if present, kNoSpace beyond kMaxPerDirectory.
  Result<std::shared_ptr<ScratchFile>> Create(Entity dir, int64_t dir_id, const std::string& name,
                                              mode_t mode);
  std::shared_ptr<ScratchFile> Get(Entity dir, int64_t dir_id, const std::string& name) const;
  // Removes it; kNotFound if absent.
  Status Remove(Entity dir, int64_t dir_id, const std::string& name);
  // Moves a scratch file to another name of the same directory, replacing.
  Status Rename(Entity dir, int64_t dir_id, const std::string& from, const std::string& to);

 private:
  using Key = std::tuple<int, int64_t, std::string>;
  mutable std::mutex mu_;
  std::map<Key, std::shared_ptr<ScratchFile>> files_;  // GUARDED_BY(mu_)
};

}  // namespace samplefs::fs
