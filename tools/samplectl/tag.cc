// samplectl tag add|rm|ls: tags on slides, images and files.
#include <spdlog/spdlog.h>

#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

struct TagOptions {
  std::string target;
  std::vector<std::string> tags;
  bool json = false;
};

const char* Noun(Entity e) {
  switch (e) {
    case Entity::kSlide: return "slide";
    case Entity::kImage: return "image";
    case Entity::kEntry: return "file";
    default: return EntityName(e);
  }
}

int ResolveOrFail(Context& ctx, const std::string& spec, Target* t) {
  auto r = ResolveTarget(*ctx.catalog, spec);
  if (!r.ok()) return UsageError("{}: {}", spec, r.status().message());
  *t = *r;
  return kExitOk;
}

int RunAdd(Context& ctx, const TagOptions& o, bool add) {
  int rc = ctx.Open(OpenMode::kReadWrite);
  if (rc != kExitOk) return rc;
  Target t;
  if ((rc = ResolveOrFail(ctx, o.target, &t)) != kExitOk) return rc;
  Catalog& cat = *ctx.catalog;
  // All tags or none: a bad name in the middle must not leave half applied.
  Transaction txn(cat);
  if (!txn.status().ok()) {
    spdlog::error("{}", txn.status().message());
    return kExitProblems;
  }
  for (const auto& name : o.tags) {
    Status s = add ? cat.AddTag(t.entity, t.id, name) : cat.RemoveTag(t.entity, t.id, name);
    if (!s.ok()) {
      spdlog::error("{} {}: {}", Noun(t.entity), t.display, s.message());
      return s.code() == Code::kInvalidArgument || s.code() == Code::kNameTooLong ||
                     s.is_not_found()
                 ? kExitUsage
                 : kExitProblems;
    }
  }
  if (Status s = txn.Commit(); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitProblems;
  }
  if (!ctx.globals.quiet) {
    auto now = cat.TagsOf(t.entity, t.id);
    std::string list;
    if (now.ok())
      for (const auto& n : *now) list += (list.empty() ? "" : ",") + n;
    std::printf("%s %s: %s\n", Noun(t.entity), t.display.c_str(), list.empty() ? "(no tags)" : list.c_str());
  }
  return kExitOk;
}

int RunList(Context& ctx, const TagOptions& o) {
  int rc = ctx.Open(OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  Catalog& cat = *ctx.catalog;
  if (!o.target.empty()) {
    Target t;
    if ((rc = ResolveOrFail(ctx, o.target, &t)) != kExitOk) return rc;
    auto tags = cat.TagsOf(t.entity, t.id);
    if (!tags.ok()) {
      spdlog::error("{}", tags.status().message());
      return kExitProblems;
    }
    if (o.json) {
      std::printf("%s\n", JsonText(Json(*tags)).c_str());
    } else {
      for (const auto& n : *tags) std::printf("%s\n", n.c_str());
    }
    return kExitOk;
  }
  // Every tag with how many slides, images and files carry it.
  auto st = cat.db().Prepare(
      "SELECT t.name, "
      " (SELECT count(*) FROM tagging g WHERE g.tag_id = t.id AND g.entity = 'slide'),"
      " (SELECT count(*) FROM tagging g WHERE g.tag_id = t.id AND g.entity = 'image'),"
      " (SELECT count(*) FROM tagging g WHERE g.tag_id = t.id AND g.entity = 'entry'),"
      " (SELECT count(*) FROM tagging g WHERE g.tag_id = t.id) "
      "FROM tag t ORDER BY t.name");
  if (!st.ok()) {
    spdlog::error("{}", st.status().message());
    return kExitProblems;
  }
  StatementScope scope(**st);
  Json all = Json::array();
  if (!o.json) std::printf("%-24s %8s %8s %8s %8s\n", "tag", "slides", "images", "files", "other");
  for (;;) {
    auto row = scope->Step();
    if (!row.ok()) {
      spdlog::error("{}", row.status().message());
      return kExitProblems;
    }
    if (!*row) break;
    int64_t slides = scope->Int(1), images = scope->Int(2), files = scope->Int(3);
    int64_t other = scope->Int(4) - slides - images - files;
    if (o.json) {
      all.push_back(Json{{"tag", scope->Text(0)}, {"slides", slides}, {"images", images},
                         {"files", files}, {"other", other}});
    } else {
      std::printf("%-24s %8lld %8lld %8lld %8lld\n", scope->Text(0).c_str(),
                  static_cast<long long>(slides), static_cast<long long>(images),
                  static_cast<long long>(files), static_cast<long long>(other));
    }
  }
  if (o.json) std::printf("%s\n", JsonText(all, 2).c_str());
  return kExitOk;
}

}  // namespace

void AddTagCommand(CLI::App& app, Commands& out) {
  auto* tag = app.add_subcommand(
      "tag",
      "Add, remove or list tags of a slide (SLIDE), an image (SLIDE/IMAGE) or a file or folder\n"
      "(SLIDE/IMAGE/path/inside/files), or of a path through a mount\n"
      "(/mnt/x/slides/S1/images/cell01/files/a.tif).");
  tag->require_subcommand(1);

  auto add = std::make_shared<TagOptions>();
  auto* add_cmd = tag->add_subcommand("add", "Add tags to a record (tags that do not exist are created)");
  add_cmd->add_option("TARGET", add->target, "SLIDE, SLIDE/IMAGE, SLIDE/IMAGE/path or a mount path")
      ->required();
  add_cmd->add_option("TAG", add->tags, "Tag names")->required();

  auto rm = std::make_shared<TagOptions>();
  auto* rm_cmd = tag->add_subcommand("rm", "Remove tags from a record");
  rm_cmd->add_option("TARGET", rm->target, "SLIDE, SLIDE/IMAGE, SLIDE/IMAGE/path or a mount path")
      ->required();
  rm_cmd->add_option("TAG", rm->tags, "Tag names")->required();

  auto ls = std::make_shared<TagOptions>();
  auto* ls_cmd = tag->add_subcommand("ls", "List a record's tags, or every tag with its use counts");
  ls_cmd->add_option("TARGET", ls->target, "SLIDE, SLIDE/IMAGE, SLIDE/IMAGE/path or a mount path");
  ls_cmd->add_flag("--json", ls->json, "JSON output");

  out.push_back({tag, [=](Context& ctx) {
                   if (add_cmd->parsed()) return RunAdd(ctx, *add, true);
                   if (rm_cmd->parsed()) return RunAdd(ctx, *rm, false);
                   return RunList(ctx, *ls);
                 }});
}

}  // namespace samplefs::ctl
