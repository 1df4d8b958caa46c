#pragma once
// What in a repository makes git run programs, unfenced, the next time you use git there: the
// entries `run` and `launch` protect before the agent starts (git_settings_entries), and what the
// agent left after it (audit_git_changes).
//
// The sandbox and the container mount the workdir's .git/hooks and .git/config (and those of its
// submodules and worktrees) read only, but a repository the agent creates below it is its own: its config and hooks are
// whatever the agent wrote. And you need not go there to run them: with a gitlink in the top
// repository's index (.git/index stays writable, or the agent could not commit), a plain
// `git status` in the project starts `git status` in the nested repository, which runs its
// core.fsmonitor (attack run_git_nested_repo). Nothing can keep a program from creating a
// directory named .git, so after the run tokfence looks: every .git below each writable root
// (a directory, or a file naming its git directory), and the submodule and worktree git
// directories under the top one, whose config or hooks changed while the agent ran (ctime, which
// no process can set back), are read for settings and hooks that run programs; a commondir
// written then (it sends git to another directory's config and hooks) is named too. `tokfence run`
// prints them as a warning; nothing is changed.
//
// The walk never follows a symbolic link, opens everything relative to a directory descriptor
// (O_NOFOLLOW, O_NONBLOCK: a FIFO planted as a config cannot block it), reads at most 1 MiB of a
// config and stops after `max_entries` directory entries (reported, so a cut-short walk is not
// mistaken for a clean one).
#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>
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

struct GitFinding {
  std::string path;  // the config or hook, as root + "/" + the path below it
  std::string what;  // "core.fsmonitor", "hook pre-commit", ...
};

struct GitAudit {
  std::vector<GitFinding> findings;
  bool cut_short = false;  // max_entries reached: not everything was looked at
};

// The time to pass as `since`, taken before the run: the clock file timestamps come from
// (CLOCK_REALTIME_COARSE; CLOCK_REALTIME runs up to a tick ahead of it, so a file written right
// after a CLOCK_REALTIME reading can carry an earlier ctime).
timespec git_audit_clock();

// Walks `root` (a directory) as described above; `since`: git_audit_clock() at the run's start.
GitAudit audit_git_changes(const std::string& root, const timespec& since, std::size_t max_entries = 500000);

// What `tokfence run` and `launch` print for an audit of `root` ("" when it found nothing), each
// line starting with `who` ("tokfence", "launch").
std::string git_audit_warning(const GitAudit& audit, const std::string& root, std::string_view who);

// The settings of a git config text that make git run a program (core.fsmonitor, core.hooksPath,
// core.pager, filter.<x>.smudge, an alias starting with '!', include.path...), as "section.key" or
// "section.<sub>.key" (names in lower case). Exposed for tests.
std::vector<std::string> program_settings(std::string_view config);

}  // namespace tokfence::sandbox
