// PageCachePolicy: whether the kernel may keep an inode's page cache when
// a file is opened (FOPEN_KEEP_CACHE). Objects never change, so cached
// pages stay good as long as the inode still shows the object it cached:
// the policy remembers the hash each inode last served. An entry goes when
// the kernel forgets the inode (FORGET), so the table holds at most one
// entry per inode the kernel holds, however many files a mount has opened.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace samplefs::fs {

class PageCachePolicy {
 public:
  // Whether inode `ino`, now opened on the object `hash`, may keep its
  // cached pages; remembers `hash` as what it serves.
  bool Keep(uint64_t ino, const std::string& hash) {
    std::lock_guard lock(mu_);
    auto& slot = hash_[ino];
    bool keep = slot == hash;
    slot = hash;
    return keep;
  }
  // The kernel forgot the inode (and its pages with it).
  void Forget(uint64_t ino) {
    std::lock_guard lock(mu_);
    hash_.erase(ino);
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return hash_.size();
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::string> hash_;  // GUARDED_BY(mu_)
};

}  // namespace samplefs::fs
