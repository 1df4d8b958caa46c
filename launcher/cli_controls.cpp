#include "launcher/cli.hpp"

namespace tokfence::cli {

// Not implemented yet: registers nothing, so no command that does not work is offered.
void register_control_commands(CLI::App& app, Context& ctx) {}

}  // namespace tokfence::cli
