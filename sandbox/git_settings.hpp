#pragma once
// What in a repository makes git run programs, unfenced, the next time you use git there: the
// entries `run` and `launch` protect before the agent starts (git_settings_entries), and what the
// agent left after it (audit_git_changes).
//
// The sandbox and the container mount the workdir's .git/hooks and .git/config (and those of its
// submodules and worktrees) read only, but a repository the agent creates below it is its own:
// its config and hooks are whatever the agent wrote. And you need not go there to run them: with a gitlink in the top
// repository's index (.git/index stays writable, or the agent could not commit), a plain
// `git status` in the project starts `git status` in the nested repository, which runs its
// core.fsmonitor (attack run_git_nested_repo). Nothing can keep a program from creating a
// directory named .git, so after the run tokfence looks, by what changed while the agent ran
// (ctime, which no process can set back), never by what a file says it is:
//  - every `.git` below a writable root (but the top one) made during the run, whatever it is: a
//    gitdir file or a symbolic link written then (git follows both), a repository that was not in
//    the inventory taken before the run (a directory moved into place keeps its contents' old
//    times; git at work in an old repository changes the directory's own times);
//  - in every git directory reached (nested ones, those .git files and links name, the top's
//    submodules and worktrees): a config, config.worktree or commondir written during the run (or
//    what a link there points to), each hook but a .sample, a submodule's or worktree's git
//    directory not in the inventory;
//  - the settings that run programs are named when the config reads plainly; otherwise the
//    finding says to read it (a reader that is not git's must not decide that a file is harmless:
//    review 14b G3).
// `tokfence run` and `launch` print the findings as a warning; nothing is changed.
//
// The walk never descends through a symbolic link (a .git link is read through, as git does),
// opens everything relative to a directory descriptor, never blocks on a FIFO, reads at most
// 1 MiB of a file, and stops after `max_entries` entries or 64 levels, saying so (cut_short).
#include <sys/types.h>

#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>
#include <set>
#include <tuple>
#include <vector>

#include "core/error.hpp"

namespace tokfence::sandbox {

// One entry of a git directory that decides what git runs, relative to it.
struct GitSettingsEntry {
  std::string path;  // "hooks", "config", "config.worktree", "modules/lib/config", "worktrees/w/config.worktree"
  bool directory = false;
};

// The entries below git directory `git_fd` that decide what git runs: hooks, config and
// config.worktree, of it and of the git directories of its submodules (modules/<name>, nested, a
// name may hold '/') and worktrees (worktrees/<name>), which git uses when you work in them.
// Found through descriptors, never following a link; a symbolic link among them is an error naming
// it (it could not be protected), and so is more nesting than 16 levels.
Result<std::vector<GitSettingsEntry>> git_settings_entries(int git_fd);

// The directories between the git directory and those entries ("modules", "modules/lib",
// "worktrees", "worktrees/w"), sorted, each once. `run` and `launch` bind them read-write over
// themselves before the read-only entries: a directory that only holds mount points can be renamed,
// and one renamed aside and replaced by a directory of links made git read the agent's config
// (and made the engine mount a link's host target at a container's restart: review 15b L1). A
// mount point cannot be renamed, so the path to every protected entry stays the one checked.
std::vector<std::string> git_settings_parents(const std::vector<GitSettingsEntry>& entries);

struct GitFinding {
  std::string path;  // the config or hook, as root + "/" + the path below it
  std::string what;  // "core.fsmonitor", "hook pre-commit", ...
};

struct GitAudit {
  std::vector<GitFinding> findings;
  bool cut_short = false;     // not everything was looked at (too many entries, too deep)
  std::string why_cut_short;  // the first reason
};

// The git directories below a root before the run (nested repositories, the top's submodules and
// worktrees), by path and inode: after it, one that was not there, or is another directory now (one
// moved into place keeps its contents' old times), is a finding.
struct GitInventory {
  std::set<std::tuple<std::string, dev_t, ino_t>> git_dirs;
  bool taken = false;
};
GitInventory git_inventory(const std::string& root, std::size_t max_entries = 500000);

// The time to pass as `since`, taken before the run: the clock file timestamps come from
// (CLOCK_REALTIME_COARSE; CLOCK_REALTIME runs up to a tick ahead of it, so a file written right
// after a CLOCK_REALTIME reading can carry an earlier ctime).
timespec git_audit_clock();

// Walks `root` (a directory) as described above; `since`: git_audit_clock() at the run's start.
// `before`: the inventory taken before the run, or one not taken (a launch of an earlier version):
// then git directories are judged by their entries only.
GitAudit audit_git_changes(const std::string& root, const timespec& since, const GitInventory& before,
                           std::size_t max_entries = 500000);

// What `tokfence run` and `launch` print for an audit of `root` ("" when it found nothing), each
// line starting with `who` ("tokfence", "launch").
std::string git_audit_warning(const GitAudit& audit, const std::string& root, std::string_view who);

// The settings of a git config text that make git run a program (core.fsmonitor, core.hooksPath,
// core.pager, filter.<x>.smudge, an alias starting with '!', include.path...), as "section.key" or
// "section.<sub>.key" (names in lower case). Exposed for tests.
std::vector<std::string> program_settings(std::string_view config);

}  // namespace tokfence::sandbox
