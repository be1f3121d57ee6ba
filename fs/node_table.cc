#include "fs/node_table.h"

namespace samplefs::fs {

const char* NodeKindName(NodeKind kind) {
  switch (kind) {
    case NodeKind::kRoot: return "the root";
    case NodeKind::kSpeciesView: return "species/";
    case NodeKind::kSamplesView: return "samples/";
    case NodeKind::kSlidesView: return "slides/";
    case NodeKind::kDyesView: return "dyes/";
    case NodeKind::kStructuresView: return "structures/";
    case NodeKind::kTagsView: return "tags/";
    case NodeKind::kQueryView: return "query/";
    case NodeKind::kMetaDir: return ".samplefs/";
    case NodeKind::kSpecies: return "a species";
    case NodeKind::kSample: return "a sample";
    case NodeKind::kDye: return "a dye";
    case NodeKind::kStructure: return "a structure";
    case NodeKind::kTag: return "a tag";
    case NodeKind::kQuery: return "a query";
    case NodeKind::kSlideList: return "a slides/ listing";
    case NodeKind::kTagImages: return "a tag's images/";
    case NodeKind::kTagFiles: return "a tag's files/";
    case NodeKind::kQueryImages: return "a query's images/";
    case NodeKind::kSlide: return "a slide";
    case NodeKind::kImages: return "images/";
    case NodeKind::kImage: return "an image";
    case NodeKind::kFolder: return "a folder";
    case NodeKind::kFile: return "a file";
    case NodeKind::kSymlink: return "a symlink";
    case NodeKind::kSidecar: return "a sidecar";
    case NodeKind::kStatusFile: return "status.json";
    case NodeKind::kErrorsFile: return "errors";
    case NodeKind::kScratch: return "a temporary file";
    case NodeKind::kTrashDir: return "the trash";
    case NodeKind::kTrashFiles: return "the trash's files/";
    case NodeKind::kTrashInfoDir: return "the trash's info/";
    case NodeKind::kTrashInfo: return "a .trashinfo file";
  }
  return "a node";
}

NodeTable::NodeTable() {
  auto root = std::make_unique<Node>();
  root->ino = FUSE_ROOT_ID;
  root->parent = FUSE_ROOT_ID;
  root->spec.kind = NodeKind::kRoot;
  root->nlookup = 1;  // the kernel never forgets the root
  nodes_.emplace(FUSE_ROOT_ID, std::move(root));
}

std::optional<Node> NodeTable::Get(fuse_ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  return *it->second;
}

std::optional<std::pair<fuse_ino_t, std::string>> NodeTable::NameOf(fuse_ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  const Node& n = *it->second;
  auto known = [&](fuse_ino_t dir) { return dir == FUSE_ROOT_ID || nodes_.count(dir) != 0; };
  if (known(n.parent)) return std::make_pair(n.parent, n.name);
  for (const auto& link : n.links)
    if (known(link.first)) return link;
  return std::nullopt;
}

Node NodeTable::Resolve(fuse_ino_t parent, const std::string& name, const NodeSpec& spec,
                        uint64_t lookups) {
  std::lock_guard lock(mu_);
  Key key{parent, name};
  auto it = by_name_.find(key);
  if (it != by_name_.end()) {
    auto nit = nodes_.find(it->second);
    if (nit != nodes_.end() && nit->second->spec == spec) {
      nit->second->nlookup += lookups;
      return *nit->second;
    }
  }
  if (!spec.is_dir()) {
    auto rit = by_record_.find({static_cast<int>(spec.kind), spec.record_id});
    if (rit != by_record_.end()) {
      for (fuse_ino_t ino : rit->second) {
        auto nit = nodes_.find(ino);
        if (nit == nodes_.end() || !(nit->second->spec == spec)) continue;
        Node& node = *nit->second;
        BindLocked(node, key);
        node.parent = parent;
        node.name = name;
        node.nlookup += lookups;
        return node;
      }
    }
  }
  auto node = std::make_unique<Node>();
  node->ino = next_ino_++;
  node->parent = parent;
  node->name = name;
  node->spec = spec;
  node->nlookup = lookups;
  BindLocked(*node, key);
  Node copy = *node;
  by_record_[{static_cast<int>(spec.kind), spec.record_id}].insert(node->ino);
  nodes_.emplace(node->ino, std::move(node));
  return copy;
}

void NodeTable::BindLocked(Node& node, const Key& key) {
  UnbindLocked(key);
  by_name_[key] = node.ino;
  node.links.push_back(key);
}

void NodeTable::UnbindLocked(const Key& key) {
  auto bit = by_name_.find(key);
  if (bit == by_name_.end()) return;
  auto nit = nodes_.find(bit->second);
  if (nit != nodes_.end()) std::erase(nit->second->links, key);
  by_name_.erase(bit);
}

std::optional<fuse_ino_t> NodeTable::Find(fuse_ino_t parent, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = by_name_.find({parent, name});
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

bool NodeTable::Forget(fuse_ino_t ino, uint64_t n) {
  if (ino == FUSE_ROOT_ID) return false;
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return false;
  Node& node = *it->second;
  node.nlookup = n >= node.nlookup ? 0 : node.nlookup - n;
  if (node.nlookup > 0) return false;
  for (const Key& key : node.links) {
    auto bit = by_name_.find(key);
    if (bit != by_name_.end() && bit->second == ino) by_name_.erase(bit);
  }
  UnindexLocked(node);
  nodes_.erase(it);
  return true;
}

std::optional<fuse_ino_t> NodeTable::Rename(fuse_ino_t old_parent, const std::string& old_name,
                                            fuse_ino_t new_parent, const std::string& new_name) {
  std::lock_guard lock(mu_);
  Key old{old_parent, old_name};
  auto bit = by_name_.find(old);
  if (bit == by_name_.end()) {
    UnbindLocked({new_parent, new_name});
    return std::nullopt;
  }
  auto it = nodes_.find(bit->second);
  if (it == nodes_.end()) {
    by_name_.erase(bit);
    UnbindLocked({new_parent, new_name});
    return std::nullopt;
  }
  Node& node = *it->second;
  UnbindLocked(old);
  BindLocked(node, {new_parent, new_name});
  node.parent = new_parent;
  node.name = new_name;
  return node.ino;
}

void NodeTable::Unbind(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lock(mu_);
  UnbindLocked({parent, name});
}

void NodeTable::SetSpec(fuse_ino_t ino, const NodeSpec& spec) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  UnindexLocked(*it->second);
  it->second->spec = spec;
  by_record_[{static_cast<int>(spec.kind), spec.record_id}].insert(ino);
}

void NodeTable::UnindexLocked(const Node& node) {
  auto rit = by_record_.find({static_cast<int>(node.spec.kind), node.spec.record_id});
  if (rit == by_record_.end()) return;
  rit->second.erase(node.ino);
  if (rit->second.empty()) by_record_.erase(rit);
}

std::vector<Node> NodeTable::ByRecord(NodeKind kind, int64_t record_id) const {
  std::lock_guard lock(mu_);
  std::vector<Node> out;
  auto rit = by_record_.find({static_cast<int>(kind), record_id});
  if (rit == by_record_.end()) return out;
  for (fuse_ino_t ino : rit->second) {
    auto nit = nodes_.find(ino);
    if (nit != nodes_.end()) out.push_back(*nit->second);
  }
  return out;
}

std::vector<Node> NodeTable::Children(fuse_ino_t parent) const {
  std::lock_guard lock(mu_);
  std::vector<Node> out;
  for (auto it = by_name_.lower_bound({parent, std::string()});
       it != by_name_.end() && it->first.first == parent; ++it) {
    auto nit = nodes_.find(it->second);
    if (nit != nodes_.end()) out.push_back(*nit->second);
  }
  return out;
}

size_t NodeTable::size() const {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

}  // namespace samplefs::fs
