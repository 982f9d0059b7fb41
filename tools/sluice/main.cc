// sluice: the command-line front of libsluice. Parses flags and hands off.
#include <CLI/CLI.hpp>
#include <iostream>

#include "tools/sluice/tour.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  CLI::App app{"sluice: a performance layer for services that call slow, expensive upstreams"};
  app.require_subcommand(1);
  auto* version = app.add_subcommand("version", "Print the version and exit");
  auto* tour = app.add_subcommand("tour", "Run every libsluice primitive once and report");
  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) {
    std::cout << "sluice " << SLUICE_VERSION << "\n";
    return 0;
  }
  if (tour->parsed()) return sluice::tools::run_tour(std::cout);
  return 0;
}
