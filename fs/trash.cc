// The desktop trash at the mount's root (freedesktop.org Trash
// specification; docs/DECISIONS.md "Trash"):
//
//   /.Trash-<uid>/files/<name>             the trashed entry (a folder keeps its subtree)
//   /.Trash-<uid>/info/<name>.trashinfo    rendered from the catalog's trash table
//
// Only what gio (GLib), Nautilus and GVfs do is supported (KDE's KIO would
// do the same, but never picks a FUSE mount's trash: docs/DECISIONS.md
// "Trash"): they write info/<name>.trashinfo (O_CREAT|O_EXCL; kept in memory as a scratch
// file until the move) and rename the file to files/<name>, which moves the
// record into the catalog's trash (no byte copied). Renaming files/<name>
// back into an image's files/ restores it; unlinking (rm -r) files/<name>
// or its .trashinfo deletes it for good (the objects then go with gc).
// The root lists .Trash-<uid> of each uid with something in its trash
// (Namespace::List).
#include <cctype>
#include <ctime>

#include "catalog/names.h"
#include "fs/namespace.h"

namespace samplefs::fs {

namespace {

constexpr const char* kTrashPrefix = ".Trash-";
constexpr const char* kInfoSuffix = ".trashinfo";
constexpr const char* kExpunged = "expunged";

// uid of ".Trash-<uid>", or -1.
int64_t TrashUid(const std::string& name) {
  const std::string prefix = kTrashPrefix;
  if (name.size() <= prefix.size() || name.size() > prefix.size() + 10 || name.compare(0, prefix.size(), prefix))
    return -1;
  int64_t uid = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    uid = uid * 10 + (name[i] - '0');
  }
  if (name[prefix.size()] == '0' && name.size() > prefix.size() + 1) return -1;  // one spelling per uid
  return uid <= 0xfffffffeLL ? uid : -1;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// RFC 2396 escaping of a path, as the spec wants for Path=.
std::string EscapePath(const std::string& p) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : p) {
    if (isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~' || c == '!' || c == '*' ||
        c == '\'' || c == '(' || c == ')' || c == ',' || c == '=' || c == ':' || c == '@' || c == '&' ||
        c == '+' || c == '$') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string UnescapePath(const std::string& p) {
  std::string out;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '%' && i + 2 < p.size() && val(p[i + 1]) >= 0 && val(p[i + 2]) >= 0) {
      out += static_cast<char>(val(p[i + 1]) * 16 + val(p[i + 2]));
      i += 2;
    } else {
      out += p[i];
    }
  }
  return out;
}

// The value of `key=` in a .trashinfo text ("" if absent).
std::string InfoValue(const std::string& text, const std::string& key) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.compare(0, key.size() + 1, key + "=") == 0) return line.substr(key.size() + 1);
    at = end + 1;
  }
  return "";
}

std::string Now() { return LocalIso8601(std::time(nullptr)); }

NodeSpec EntrySpecOf(const Entry& e) { return Namespace::SpecOf(e); }

}  // namespace

std::optional<Result<NodeSpec>> Namespace::LookupTrash(const NodeSpec& parent, const std::string& name) {
  switch (parent.kind) {
    case NodeKind::kRoot: {
      int64_t uid = TrashUid(name);
      if (uid < 0) return std::nullopt;
      return Result<NodeSpec>(Spec(NodeKind::kTrashDir, uid));
    }
    case NodeKind::kTrashDir:
      // expunged/ (text "expunged"): where GVfs moves what it empties
      // before deleting it; always empty here, a move into it deletes.
      if (parent.text.empty() && name == "files") return Result<NodeSpec>(Spec(NodeKind::kTrashFiles, parent.record_id));
      if (parent.text.empty() && name == "info") return Result<NodeSpec>(Spec(NodeKind::kTrashInfoDir, parent.record_id));
      if (parent.text.empty() && name == kExpunged) return Result<NodeSpec>(Spec(NodeKind::kTrashDir, parent.record_id, kExpunged));
      return Result<NodeSpec>(Status(Code::kNotFound, "'" + name + "' does not exist"));
    case NodeKind::kTrashFiles: {
      auto t = catalog_.TrashItemByName(parent.record_id, name);
      if (!t.ok()) return Result<NodeSpec>(t.status());
      auto e = catalog_.EntryById(t->entry_id);
      if (!e.ok()) return Result<NodeSpec>(e.status());
      return Result<NodeSpec>(EntrySpecOf(*e));
    }
    case NodeKind::kTrashInfoDir: {
      if (!EndsWith(name, kInfoSuffix)) return Result<NodeSpec>(Status(Code::kNotFound, "'" + name + "' does not exist"));
      auto t = catalog_.TrashItemByName(parent.record_id, name.substr(0, name.size() - std::string(kInfoSuffix).size()));
      if (!t.ok()) return Result<NodeSpec>(t.status().is_not_found() ? Status(Code::kNotFound, "'" + name + "' does not exist") : t.status());
      return Result<NodeSpec>(Spec(NodeKind::kTrashInfo, t->id));
    }
    default:
      return std::nullopt;
  }
}

std::optional<Status> Namespace::ListTrash(const NodeSpec& dir, uint64_t cookie,
                                           const std::function<bool(const DirEntry&)>& emit) {
  auto fixed = [&](const std::vector<std::pair<std::string, NodeSpec>>& names) {
    for (size_t i = cookie - kFirstCookie; i < names.size(); ++i)
      if (!emit({names[i].first, names[i].second, kFirstCookie + i + 1})) break;
    return Status::Ok();
  };
  switch (dir.kind) {
    case NodeKind::kTrashDir:
      if (cookie >= kRecordCookieBase || !dir.text.empty()) return Status::Ok();
      return fixed({{"files", Spec(NodeKind::kTrashFiles, dir.record_id)},
                    {"info", Spec(NodeKind::kTrashInfoDir, dir.record_id)}});
    case NodeKind::kTrashFiles:
    case NodeKind::kTrashInfoDir: {
      // A trash holds what a user deleted by hand: listed in one go.
      auto items = catalog_.ListTrash(dir.record_id);
      if (!items.ok()) return items.status();
      int64_t after = cookie < kRecordCookieBase ? 0 : static_cast<int64_t>(cookie - kRecordCookieBase);
      for (const TrashItem& t : *items) {
        if (t.id <= after) continue;
        uint64_t next = kRecordCookieBase + static_cast<uint64_t>(t.id);
        if (dir.kind == NodeKind::kTrashInfoDir) {
          if (!emit({t.name + kInfoSuffix, Spec(NodeKind::kTrashInfo, t.id), next})) break;
          continue;
        }
        auto e = catalog_.EntryById(t.entry_id);
        if (!e.ok()) return e.status();
        if (!emit({t.name, EntrySpecOf(*e), next, EntryAttr(*e, id_)})) break;
      }
      return Status::Ok();
    }
    default:
      return std::nullopt;
  }
}

std::optional<Result<struct stat>> Namespace::TrashAttr(const NodeSpec& n) {
  struct stat st {};
  st.st_gid = id_.gid;
  st.st_nlink = 1;
  st.st_blksize = 4096;
  st.st_mtim.tv_sec = st.st_ctim.tv_sec = st.st_atim.tv_sec = id_.mount_time;
  switch (n.kind) {
    case NodeKind::kTrashDir:
    case NodeKind::kTrashFiles:
    case NodeKind::kTrashInfoDir:
      // Owned by its user, 0700: what the spec (and GLib) check.
      st.st_uid = static_cast<uid_t>(n.record_id);
      st.st_mode = S_IFDIR | 0700;
      st.st_nlink = 2;
      return Result<struct stat>(st);
    case NodeKind::kTrashInfo: {
      auto t = catalog_.TrashItemById(n.record_id);
      if (!t.ok()) return Result<struct stat>(t.status());
      auto text = RenderTrashInfo(n.record_id);
      if (!text.ok()) return Result<struct stat>(text.status());
      st.st_uid = static_cast<uid_t>(t->uid);
      st.st_mode = S_IFREG | 0600;
      st.st_size = static_cast<off_t>(text->size());
      st.st_blocks = (st.st_size + 511) / 512;
      st.st_mtim.tv_sec = st.st_ctim.tv_sec = st.st_atim.tv_sec = ParseIso8601(t->deleted_at + "Z");
      return Result<struct stat>(st);
    }
    default:
      return std::nullopt;
  }
}

Result<std::string> Namespace::RenderTrashInfo(int64_t trash_id) {
  SFS_ASSIGN_OR_RETURN(TrashItem t, catalog_.TrashItemById(trash_id));
  return "[Trash Info]\nPath=" + EscapePath(t.original_path) + "\nDeletionDate=" + t.deleted_at + "\n";
}

std::optional<Status> Namespace::UnlinkTrash(const NodeSpec& parent, const std::string& name, bool dir) {
  if (parent.kind == NodeKind::kTrashFiles) {
    // The check (a folder must be empty) and the delete in one transaction
    // (its reads go to the writer): the delete takes the subtree with it,
    // so an entry created in the folder after a check outside it would go
    // too. rmdir and a create in the folder: one of them fails.
    Transaction txn(catalog_);
    SFS_RETURN_IF_ERROR(txn.status());
    SFS_ASSIGN_OR_RETURN(TrashItem t, catalog_.TrashItemByName(parent.record_id, name));
    if (dir != (t.type == EntryType::kFolder))
      return Status(dir ? Code::kNotADirectory : Code::kIsADirectory, "'" + name + "'");
    if (dir) {
      SFS_ASSIGN_OR_RETURN(int64_t n, catalog_.CountEntries(t.entry_id));
      if (n) return Status(Code::kNotEmpty, "folder '" + name + "' is not empty");
    }
    SFS_RETURN_IF_ERROR(catalog_.DeleteTrashItem(t.id));
    return txn.Commit();
  }
  if (parent.kind == NodeKind::kTrashInfoDir && !dir) {
    // The .trashinfo and its file are one record: deleting either deletes
    // both (emptying the trash removes both, in either order).
    SFS_ASSIGN_OR_RETURN(NodeSpec child, *LookupTrash(parent, name));
    return catalog_.DeleteTrashItem(child.record_id);
  }
  if (parent.kind == NodeKind::kRoot || parent.kind == NodeKind::kTrashDir) {
    if (parent.kind == NodeKind::kTrashDir || TrashUid(name) >= 0)
      return Status(Code::kPermission, "the trash and its files/ and info/ cannot be removed; empty it instead");
  }
  return std::nullopt;
}

std::optional<Result<NodeSpec>> Namespace::RenameTrash(const NodeSpec& parent, const std::string& name,
                                                       const NodeSpec& new_parent, const std::string& new_name) {
  const bool from_trash = parent.kind == NodeKind::kTrashFiles, to_trash = new_parent.kind == NodeKind::kTrashFiles;
  if (!from_trash && !to_trash) return std::nullopt;
  if (from_trash && new_parent.kind == NodeKind::kTrashDir && new_parent.text == kExpunged) {
    // GVfs empties the trash by moving entries to expunged/ first.
    auto t = catalog_.TrashItemByName(parent.record_id, name);
    if (!t.ok()) return Result<NodeSpec>(t.status());
    auto e = catalog_.EntryById(t->entry_id);
    if (!e.ok()) return Result<NodeSpec>(e.status());
    Status s = catalog_.DeleteTrashItem(t->id);
    if (!s.ok()) return Result<NodeSpec>(s);
    return Result<NodeSpec>(EntrySpecOf(*e));
  }
  if (from_trash && to_trash)
    return Result<NodeSpec>(Status(Code::kPermission, "entries cannot be renamed inside the trash"));
  if (to_trash) {
    if (parent.kind != NodeKind::kFolder)
      return Result<NodeSpec>(Status(Code::kPermission, "only files and folders inside files/ can be trashed"));
    auto e = catalog_.EntryByName(parent.record_id, name);
    if (!e.ok()) return Result<NodeSpec>(e.status());
    // The .trashinfo written before the move (scratch), else our own.
    std::string path, date;
    const ScratchDir info{Entity::kEntry, -1 - new_parent.record_id};
    auto pending = scratch_.Get(info.entity, info.id, new_name + kInfoSuffix);
    if (pending) {
      std::lock_guard lock(pending->mu);
      path = UnescapePath(InfoValue(pending->data, "Path"));
      date = InfoValue(pending->data, "DeletionDate");
    }
    if (!path.empty() && path[0] == '/') path.clear();  // relative to the mount's root only
    if (path.empty()) {
      // slides/<slide>/images/<image>/files/<path>
      std::string rel = e->name;
      int64_t cur = e->parent_id;
      int64_t image_id = e->image_id;
      while (cur) {
        auto p = catalog_.EntryById(cur);
        if (!p.ok()) return Result<NodeSpec>(p.status());
        if (p->parent_id == 0) break;
        rel = p->name + "/" + rel;
        cur = p->parent_id;
      }
      auto img = catalog_.ImageById(image_id);
      if (!img.ok()) return Result<NodeSpec>(img.status());
      auto slide = catalog_.SlideById(img->slide_id);
      if (!slide.ok()) return Result<NodeSpec>(slide.status());
      path = "slides/" + slide->reference + "/images/" + img->name + "/files/" + rel;
    }
    if (date.size() < 19) date = Now();
    auto t = catalog_.TrashEntry(e->id, new_parent.record_id, new_name, path, date.substr(0, 19));
    if (!t.ok()) return Result<NodeSpec>(t.status());
    if (pending) (void)scratch_.Remove(info.entity, info.id, new_name + kInfoSuffix);
    return Result<NodeSpec>(EntrySpecOf(*e));
  }
  // Out of the trash: a restore, into any folder of files/.
  if (new_parent.kind != NodeKind::kFolder)
    return Result<NodeSpec>(Status(Code::kPermission, "trashed entries can only be restored into an image's files/"));
  auto t = catalog_.TrashItemByName(parent.record_id, name);
  if (!t.ok()) return Result<NodeSpec>(t.status());
  auto e = catalog_.RestoreTrash(t->id, new_parent.record_id, new_name);
  if (!e.ok()) return Result<NodeSpec>(e.status());
  return Result<NodeSpec>(EntrySpecOf(*e));
}

}  // namespace samplefs::fs
