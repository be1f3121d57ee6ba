// samplectl: the facility admin's tool for a samplefs catalog (SPEC section
// 5, docs/SAMPLECTL.md). A thin main: each subcommand lives in its own file
// and registers itself here.
#include <spdlog/spdlog.h>

#include <exception>

#include "tools/samplectl/common.h"

int main(int argc, char** argv) {
  using namespace samplefs::ctl;
  Context ctx;
  SetupLogging("info", false, false);

  CLI::App app{
      "samplectl: create, import, query, check and maintain a samplefs catalog.\n"
      "The catalog and object store come from the configuration (--config, $SAMPLEFS_CONFIG,\n"
      "~/.config/samplefs/samplefs.conf, /etc/samplefs/samplefs.conf, or defaults under\n"
      "~/.local/share/samplefs); $SAMPLEFS_CATALOG overrides the catalog.\n"
      "Exit codes: 0 ok, 1 problems found, 2 usage or configuration error.",
      "samplectl"};
  app.add_option("--config", ctx.globals.config_path, "Configuration file to use");
  app.add_flag("-q,--quiet", ctx.globals.quiet, "No progress bars or informational messages");
  app.add_flag("-v,--verbose", ctx.globals.verbose, "Debug messages");
  app.set_version_flag("--version", "samplectl 0.1.0");
  app.require_subcommand(0, 1);  // none: a clear message below, not CLI11's
  app.fallthrough();  // global options are accepted after the subcommand too

  Commands commands;
  AddInitCommand(app, commands);
  AddImportCommand(app, commands);
  AddQueryCommand(app, commands);
  AddExportCommand(app, commands);
  AddTagCommand(app, commands);
  AddFsckCommand(app, commands);
  AddGcCommand(app, commands);
  AddStatsCommand(app, commands);
  AddDumpCommand(app, commands);
  AddLoadCommand(app, commands);
  AddTrashCommand(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);  // prints help (code 0) or the error
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    for (auto& c : commands) {
      if (!c.app->parsed()) continue;
      int rc = ctx.Init();
      if (rc != kExitOk) return rc;
      return c.run(ctx);
    }
  } catch (const std::exception& e) {
    // Last resort: a bug or an unexpected library exception; say what it
    // was rather than aborting.
    spdlog::error("unexpected error: {}", e.what());
    return kExitProblems;
  }
  spdlog::error("no command given; run 'samplectl --help' for the list");
  return kExitUsage;
}
