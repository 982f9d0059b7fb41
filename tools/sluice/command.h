// Subcommands of the `sluice` binary. Each lives in its own `cmd_<name>.cc` and registers
// itself with CLI11 through `SLUICE_COMMAND`:
//
//   SLUICE_COMMAND(30, [](CLI::App& app, int& exit_code) {
//     auto* cmd = app.add_subcommand("serve", "Run the gateway");
//     auto opts = std::make_shared<Options>();
//     cmd->add_option("--listen", opts->listen, "...");
//     cmd->callback([opts, &exit_code] { exit_code = run_serve(*opts); });
//   });
//
// `main` adds the commands in ascending order (the order of `sluice --help`), parses the
// arguments and returns `exit_code` as set by the callback of the subcommand that ran.
// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
#pragma once

#include <vector>

namespace CLI {
class App;
}

namespace sluice::tools {

struct CommandRegistration {
  int order;                                   // position in `sluice --help`
  void (*add)(CLI::App& app, int& exit_code);  // adds the subcommand and its callback
};

// Commands registered so far (by the static initialisers of the cmd_*.cc files).
std::vector<CommandRegistration>& commands();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandRegistration c) { commands().push_back(c); }
};

}  // namespace sluice::tools

#define SLUICE_COMMAND_CONCAT_INNER(a, b) a##b
#define SLUICE_COMMAND_CONCAT(a, b) SLUICE_COMMAND_CONCAT_INNER(a, b)
#define SLUICE_COMMAND(order, fn)                                                          \
  static const ::sluice::tools::CommandRegistrar SLUICE_COMMAND_CONCAT(command_registrar_, \
                                                                       __LINE__)({order, fn})
