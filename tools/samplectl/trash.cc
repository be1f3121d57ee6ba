// samplectl trash list|restore|empty: the desktop trash kept in the catalog
// (docs/DECISIONS.md "Trash"; what .Trash-<uid>/ of a mount shows).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <ctime>

#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

struct TrashOptions {
  int64_t uid = -2;  // -2: the caller's
  bool all = false;
  bool json = false;
  std::vector<std::string> names;
  std::string into;  // restore into SLIDE/IMAGE[/folder] instead
  double older_than_days = -1;
};

const char* TypeName(EntryType t) {
  return t == EntryType::kFolder ? "folder" : t == EntryType::kSymlink ? "symlink" : "file";
}

int64_t UidOf(const TrashOptions& o) {
  if (o.all) return -1;
  return o.uid == -2 ? static_cast<int64_t>(::getuid()) : o.uid;
}

// A trash name, or #ID for the trash row with that id.
Result<TrashItem> Find(Catalog& cat, int64_t uid, const std::string& name) {
  if (name.size() > 1 && name[0] == '#') {
    try {
      return cat.TrashItemById(std::stoll(name.substr(1)));
    } catch (const std::exception&) {
      return Status(Code::kInvalidArgument, "bad trash id " + name);
    }
  }
  if (uid >= 0) return cat.TrashItemByName(uid, name);
  SFS_ASSIGN_OR_RETURN(std::vector<TrashItem> all, cat.ListTrash(-1));
  for (const TrashItem& t : all)
    if (t.name == name) return t;
  return Status(Code::kNotFound, "'" + name + "' is not in the trash");
}

int RunList(Context& ctx, const TrashOptions& o) {
  int rc = ctx.Open(OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  auto items = ctx.catalog->ListTrash(UidOf(o));
  if (!items.ok()) {
    spdlog::error("{}", items.status().message());
    return kExitProblems;
  }
  if (o.json) {
    Json all = Json::array();
    for (const TrashItem& t : *items)
      all.push_back(Json{{"id", t.id}, {"uid", t.uid}, {"name", t.name}, {"original_path", t.original_path},
                         {"deleted_at", t.deleted_at}, {"type", TypeName(t.type)},
                         {"size", static_cast<int64_t>(t.size)}});
    std::printf("%s\n", JsonText(all, 2).c_str());
    return kExitOk;
  }
  for (const TrashItem& t : *items)
    std::printf("#%lld\t%s\t%s\t%s\t%s\n", static_cast<long long>(t.id), t.deleted_at.c_str(),
                TypeName(t.type), t.name.c_str(), t.original_path.c_str());
  return kExitOk;
}

int RunRestore(Context& ctx, const TrashOptions& o) {
  int rc = ctx.Open(OpenMode::kReadWrite);
  if (rc != kExitOk) return rc;
  Catalog& cat = *ctx.catalog;
  int64_t into = 0;
  if (!o.into.empty()) {
    auto t = ResolveTarget(cat, o.into);
    if (!t.ok()) return UsageError("{}: {}", o.into, t.status().message());
    if (t->entity == Entity::kImage) {
      auto root = cat.FilesRoot(t->id);
      if (!root.ok()) {
        spdlog::error("{}: {}", o.into, root.status().message());
        return kExitProblems;
      }
      into = root->id;
    } else if (t->entity == Entity::kEntry) {
      into = t->id;
    } else {
      spdlog::error("{}: --into takes SLIDE/IMAGE or a folder in its files/", o.into);
      return kExitUsage;
    }
  }
  int result = kExitOk;
  for (const std::string& name : o.names) {
    auto t = Find(cat, UidOf(o), name);
    if (!t.ok()) {
      spdlog::error("{}", t.status().message());
      result = kExitProblems;
      continue;
    }
    auto r = cat.RestoreTrash(t->id, into, "");
    if (!r.ok()) {
      spdlog::error("cannot restore {}: {}", t->name, r.status().message());
      result = kExitProblems;
      continue;
    }
    if (!ctx.globals.quiet) std::printf("restored %s\n", into ? t->original_name.c_str() : t->original_path.c_str());
  }
  return result;
}

int RunEmpty(Context& ctx, const TrashOptions& o) {
  int rc = ctx.Open(OpenMode::kReadWrite);
  if (rc != kExitOk) return rc;
  std::string before;
  if (o.older_than_days >= 0) {
    // Deletion dates are local time, as the freedesktop spec writes them.
    before = LocalIso8601(std::time(nullptr) - static_cast<std::time_t>(o.older_than_days * 86400));
  }
  auto n = ctx.catalog->EmptyTrash(UidOf(o), before);
  if (!n.ok()) {
    spdlog::error("{}", n.status().message());
    return kExitProblems;
  }
  if (!ctx.globals.quiet)
    std::printf("deleted %lld trashed entr%s (objects are freed by samplectl gc)\n",
                static_cast<long long>(*n), *n == 1 ? "y" : "ies");
  return kExitOk;
}

void AddUidOptions(CLI::App* cmd, TrashOptions* o) {
  cmd->add_option("--uid", o->uid, "The trash of this user id (default: your own)");
  cmd->add_flag("--all", o->all, "Every user's trash");
}

}  // namespace

void AddTrashCommand(CLI::App& app, Commands& out) {
  auto* trash = app.add_subcommand(
      "trash",
      "The desktop trash kept in the catalog (what a mount's .Trash-<uid>/ shows): list it,\n"
      "restore entries to their original path, or empty it (objects are then freed by gc).");
  trash->require_subcommand(1);

  auto ls = std::make_shared<TrashOptions>();
  auto* ls_cmd = trash->add_subcommand("list", "List trashed entries: #id, deletion date, type, name, original path");
  AddUidOptions(ls_cmd, ls.get());
  ls_cmd->add_flag("--json", ls->json, "JSON output");

  auto restore = std::make_shared<TrashOptions>();
  auto* restore_cmd = trash->add_subcommand("restore", "Put trashed entries back where they were");
  AddUidOptions(restore_cmd, restore.get());
  restore_cmd->add_option("NAME", restore->names, "Names in the trash (as listed), or #ID")->required();
  restore_cmd->add_option("--into", restore->into,
                          "Restore into this image (SLIDE/IMAGE) or folder (SLIDE/IMAGE/path) instead");

  auto empty = std::make_shared<TrashOptions>();
  auto* empty_cmd = trash->add_subcommand("empty", "Delete trashed entries for good");
  AddUidOptions(empty_cmd, empty.get());
  empty_cmd->add_option("--older-than", empty->older_than_days, "Only those trashed more than DAYS days ago")
      ->check(CLI::NonNegativeNumber);

  out.push_back({trash, [=](Context& ctx) {
                   if (ls_cmd->parsed()) return RunList(ctx, *ls);
                   if (restore_cmd->parsed()) return RunRestore(ctx, *restore);
                   return RunEmpty(ctx, *empty);
                 }});
}

}  // namespace samplefs::ctl
