// samplectl init: create a catalog and an object store.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

struct InitOptions {
  std::string catalog;
  std::string store;
};

std::string Absolute(const std::string& p) {
  if (p.empty() || p[0] == '/' || IsPostgresUrl(p)) return p;
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) return p;
  return std::string(buf) + "/" + p;
}

int RunInit(Context& ctx, const InitOptions& o) {
  if (!o.catalog.empty()) ctx.config.catalog = Absolute(o.catalog);
  if (!o.store.empty()) ctx.config.store = Absolute(o.store);
  struct stat st;
  bool catalog_existed = !IsPostgresUrl(ctx.config.catalog) &&
                         ::stat(ctx.config.catalog.c_str(), &st) == 0 && st.st_size > 0;
  bool store_existed = ::stat((ctx.config.store + "/objects").c_str(), &st) == 0;
  int rc = ctx.Open(OpenMode::kCreate);
  if (rc != kExitOk) return rc;
  if (!ctx.globals.quiet) {
    std::printf("catalog %s: %s (schema version %d)\n", RedactCatalogUrl(ctx.config.catalog).c_str(),
                catalog_existed ? "already exists, kept as it is" : "created",
                ctx.catalog->schema_version());
    std::printf("store   %s: %s\n", ctx.config.store.c_str(),
                store_existed ? "already exists, kept as it is" : "created");
    if ((!o.catalog.empty() || !o.store.empty()) && ctx.config.source == "defaults")
      std::printf(
          "To use them by default, put 'catalog = %s' and 'store = %s' in "
          "~/.config/samplefs/samplefs.conf\n",
          RedactCatalogUrl(ctx.config.catalog).c_str(), ctx.config.store.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddInitCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<InitOptions>(app, out, "init",
      "Create the catalog (0600) and object store (0700) at the configured place, or where "
      "--catalog/--store say. An existing catalog and store are kept with their data.", RunInit);
  sub->add_option("--catalog", o->catalog, "Catalog file to create (overrides the configuration)");
  sub->add_option("--store", o->store, "Object store directory to create (overrides the configuration)");
}

}  // namespace samplefs::ctl
