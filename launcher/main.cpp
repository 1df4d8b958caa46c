#include "launcher/cli/cli.hpp"

int main(int argc, char** argv) { return tokfence::cli::run(argc, argv); }
