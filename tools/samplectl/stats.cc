// samplectl stats: what the catalog holds and what deduplication saves.
#include <spdlog/spdlog.h>

#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

struct StatsOptions {
  bool json = false;
};

int RunStats(Context& ctx, const StatsOptions& o) {
  int rc = ctx.Open(OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  auto stats = ctx.catalog->Stats();
  if (!stats.ok()) {
    spdlog::error("{}", stats.status().message());
    return kExitProblems;
  }
  const CatalogStats& s = *stats;
  int64_t saved = s.file_bytes - s.distinct_bytes;
  if (o.json) {
    Json j;
    j["catalog"] = RedactCatalogUrl(ctx.config.catalog);
    j["store"] = ctx.config.store;
    j["species"] = s.species;
    j["samples"] = s.samples;
    j["dyes"] = s.dyes;
    j["slides"] = s.slides;
    j["labellings"] = s.labellings;
    j["images"] = s.images;
    j["files"] = s.files;
    j["folders"] = s.folders;
    j["symlinks"] = s.symlinks;
    j["tags"] = s.tags;
    j["annotations"] = s.annotations;
    j["bytes_recorded"] = s.file_bytes;
    j["objects"] = s.distinct_objects;
    j["bytes_stored"] = s.distinct_bytes;
    j["bytes_saved_by_dedup"] = saved;
    j["trash"] = {{"items", s.trash_items}, {"files", s.trashed_files}, {"folders", s.trashed_folders},
                  {"symlinks", s.trashed_symlinks}, {"bytes", s.trashed_bytes}};
    std::printf("%s\n", JsonText(j, 2).c_str());
    return kExitOk;
  }
  auto row = [](const char* name, int64_t v) { std::printf("%-22s %lld\n", name, static_cast<long long>(v)); };
  auto bytes = [](const char* name, int64_t v) {
    std::printf("%-22s %lld (%s)\n", name, static_cast<long long>(v),
                HumanBytes(static_cast<uint64_t>(v)).c_str());
  };
  std::printf("%-22s %s\n", "catalog", RedactCatalogUrl(ctx.config.catalog).c_str());
  std::printf("%-22s %s\n", "store", ctx.config.store.c_str());
  row("species", s.species);
  row("samples", s.samples);
  row("dyes", s.dyes);
  row("slides", s.slides);
  row("labellings", s.labellings);
  row("images", s.images);
  row("files", s.files);
  row("folders", s.folders);
  row("symlinks", s.symlinks);
  row("tags", s.tags);
  row("annotations", s.annotations);
  bytes("bytes recorded", s.file_bytes);
  row("distinct objects", s.distinct_objects);
  bytes("bytes stored", s.distinct_bytes);
  bytes("saved by dedup", saved);
  row("in trash", s.trash_items);
  row("trashed files", s.trashed_files);
  row("trashed folders", s.trashed_folders);
  row("trashed symlinks", s.trashed_symlinks);
  bytes("trashed bytes", s.trashed_bytes);
  return kExitOk;
}

}  // namespace

void AddStatsCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<StatsOptions>(app, out, "stats",
      "Counts per entity, bytes recorded (sum of file sizes), bytes stored (distinct objects\n"
      "the records reference) and bytes saved by deduplication. Files, folders and bytes\n"
      "recorded count files/ only; what is in the desktop trash is counted apart (its objects\n"
      "stay in bytes stored until the trash is emptied and gc runs).", RunStats);
  sub->add_flag("--json", o->json, "JSON output");
}

}  // namespace samplefs::ctl
