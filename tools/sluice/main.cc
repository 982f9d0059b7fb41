// sluice: the command-line front of libsluice. Each subcommand lives in its own cmd_*.cc
// (see command.h); main only builds the parser and hands off.
#include <CLI/CLI.hpp>
#include <algorithm>

#include "tools/sluice/command.h"

namespace sluice::tools {

std::vector<CommandRegistration>& commands() {
  static std::vector<CommandRegistration> registered;
  return registered;
}

}  // namespace sluice::tools

int main(int argc, char** argv) {
  CLI::App app{"sluice: a performance layer for services that call slow, expensive upstreams"};
  app.require_subcommand(1);
  int exit_code = 0;
  auto registered = sluice::tools::commands();
  std::stable_sort(registered.begin(), registered.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  for (const auto& command : registered) command.add(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // usage errors exit 2, like a bad config
  }
  return exit_code;
}
