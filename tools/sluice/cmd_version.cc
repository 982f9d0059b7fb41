// `sluice version` and `sluice tour`: the two commands that need no gateway.
#include <CLI/CLI.hpp>
#include <iostream>

#include "tools/sluice/command.h"
#include "tools/sluice/tour.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

SLUICE_COMMAND(90, [](CLI::App& app, int& exit_code) {
  auto* version = app.add_subcommand("version", "Print the version and exit");
  version->callback([&exit_code] {
    std::cout << "sluice " << SLUICE_VERSION << "\n";
    exit_code = 0;
  });
});

SLUICE_COMMAND(80, [](CLI::App& app, int& exit_code) {
  auto* tour = app.add_subcommand("tour", "Run every libsluice primitive once and report");
  tour->callback([&exit_code] { exit_code = sluice::tools::run_tour(std::cout); });
});
