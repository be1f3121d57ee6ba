#include "fs/scratch.h"

#include "fs/namespace.h"

namespace samplefs::fs {

Result<std::shared_ptr<ScratchFile>> ScratchFiles::Create(Entity dir, int64_t dir_id,
                                                          const std::string& name, mode_t mode) {
  std::lock_guard lock(mu_);
  Key key{static_cast<int>(dir), dir_id, name};
  if (files_.count(key)) return Status(Code::kAlreadyExists, "'" + name + "' already exists");
  size_t in_dir = 0;
  for (auto it = files_.lower_bound({static_cast<int>(dir), dir_id, std::string()});
       it != files_.end() && std::get<0>(it->first) == static_cast<int>(dir) &&
       std::get<1>(it->first) == dir_id;
       ++it)
    ++in_dir;
  if (in_dir >= kMaxPerDirectory)
    return Status(Code::kNoSpace, "too many temporary files in this directory");
  auto f = std::make_shared<ScratchFile>();
  f->mode = mode & 07777;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  f->mtime_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  files_[key] = f;
  return f;
}

std::shared_ptr<ScratchFile> ScratchFiles::Get(Entity dir, int64_t dir_id,
                                               const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = files_.find({static_cast<int>(dir), dir_id, name});
  return it == files_.end() ? nullptr : it->second;
}

Status ScratchFiles::Remove(Entity dir, int64_t dir_id, const std::string& name) {
  std::lock_guard lock(mu_);
  if (!files_.erase({static_cast<int>(dir), dir_id, name}))
    return Status(Code::kNotFound, "'" + name + "' does not exist");
  return Status::Ok();
}

Status ScratchFiles::Rename(Entity dir, int64_t dir_id, const std::string& from,
                            const std::string& to) {
  std::lock_guard lock(mu_);
  auto it = files_.find({static_cast<int>(dir), dir_id, from});
  if (it == files_.end()) return Status(Code::kNotFound, "'" + from + "' does not exist");
  auto f = it->second;
  files_.erase(it);
  files_[{static_cast<int>(dir), dir_id, to}] = f;
  return Status::Ok();
}

std::optional<ScratchDir> Namespace::ScratchDirOf(const NodeSpec& s) {
  switch (s.kind) {
    case NodeKind::kSpecies: return ScratchDir{Entity::kSpecies, s.record_id};
    case NodeKind::kSample: return ScratchDir{Entity::kSample, s.record_id};
    case NodeKind::kDye: return ScratchDir{Entity::kDye, s.record_id};
    case NodeKind::kSlide: return ScratchDir{Entity::kSlide, s.record_id};
    case NodeKind::kImage: return ScratchDir{Entity::kImage, s.record_id};
    // A .trashinfo being written before its file is moved to the trash
    // (fs/trash.cc); keyed by -1 - uid, which no entry id is.
    case NodeKind::kTrashInfoDir: return ScratchDir{Entity::kEntry, -1 - s.record_id};
    default: return std::nullopt;
  }
}

NodeSpec Namespace::ScratchSpec(const ScratchDir& dir, const std::string& name) {
  NodeSpec s = Spec(NodeKind::kScratch, dir.id, name);
  s.entity = dir.entity;
  return s;
}

std::optional<NodeSpec> Namespace::LookupScratch(const NodeSpec& parent, const std::string& name) const {
  auto dir = ScratchDirOf(parent);
  if (!dir || !scratch_.Get(dir->entity, dir->id, name)) return std::nullopt;
  return ScratchSpec(*dir, name);
}

std::shared_ptr<ScratchFile> Namespace::ScratchOf(const NodeSpec& spec) const {
  return scratch_.Get(spec.entity, spec.record_id, spec.text);
}

}  // namespace samplefs::fs
