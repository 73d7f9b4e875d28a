// The subcommands of `veil`: each file adds one to the app (its options and the
// callback that runs it).
#pragma once

#include <CLI/CLI.hpp>

namespace veil::cli {

void add_compile_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_keygen_command(CLI::App& app);
void add_encrypt_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_decrypt_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_query_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace veil::cli
