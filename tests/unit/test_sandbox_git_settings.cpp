#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/file.hpp"
#include "sandbox/git_settings.hpp"
#include "temp_dir.hpp"

using namespace tokfence::sandbox;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

using tokfence::test::TempDir;

}  // namespace

TEST_CASE("git_settings: the settings that make git run a program") {
  const std::string config =
      "[core]\n\trepositoryformatversion = 0\n\tFsMonitor = touch /tmp/x\n\tbare = false\n"
      "[core] hooksPath = .h\n"
      "[remote \"origin\"]\n\turl = https://example.test/r.git\n\tuploadpack = sh -c x\n"
      "[filter \"lfs\"]\n\tsmudge = x %f\n"
      "[alias]\n\tst = status\n\tpwn = !sh -c x\n\tquoted = \"!sh\"\n[gpg \"ssh\"]\n\tdefaultKeyCommand = sh\n"
      "[diff \"bin\"]\n\ttextconv = hexdump\n"
      "[url \"ext::sh -c x\"]\n\tinsteadOf = https://\n"
      "[includeIf \"gitdir:/\"]\n\tpath = /tmp/other\n"
      "[branch.main]\n\tremote = origin\n"
      "; fsmonitor = commented\n# [core] pager = less\n"
      "[submodule \"s\"]\n\tupdate = !rm -rf /\n\turl = ../s\n";
  const auto found = program_settings(config);
  CHECK(found == std::vector<std::string>{"core.fsmonitor", "core.hookspath", "remote.origin.uploadpack",
                                          "filter.lfs.smudge", "alias.pwn", "alias.quoted", "gpg.ssh.defaultkeycommand",
                                          "diff.bin.textconv",
                                          "url.ext::sh -c x.insteadof", "includeif.gitdir:/.path",
                                          "submodule.s.update"});
  // What an ordinary clone's config holds runs nothing.
  CHECK(program_settings("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
                         "\tlogallrefupdates = true\n[remote \"origin\"]\n\turl = git@example.test:r.git\n"
                         "\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n"
                         "\tmerge = refs/heads/main\n[alias]\n\tco = checkout\n")
            .empty());
}

TEST_CASE("git_settings: what the run left for git is found, by time, not by what files say") {
  TempDir dir;
  const fs::path root = dir.path;
  // Before the run: the top repository (its own settings are the user's), an old nested repository
  // with a harmless config, a git directory staged under another name (an earlier run's).
  write(root / ".git/config", "[core]\n\thooksPath = .husky\n");
  write(root / "old/.git/config", "[core]\n\tpager = less\n");
  write(root / "old/.git/HEAD", "ref: refs/heads/main\n");
  write(root / "staged/HEAD", "ref: refs/heads/main\n");
  write(root / "staged/config", "[core]\n\tfsmonitor = touch /tmp/pwned\n");
  write(root / "staged2/HEAD", "ref: refs/heads/main\n");
  write(root / "staged2/config", "[core]\n\tfsmonitor = touch /tmp/pwned\n");
  ::usleep(50000);  // past the coarse clock's tick, so the files above are older than `since`
  const timespec since = git_audit_clock();
  const GitInventory before = git_inventory(root.string());
  CHECK(audit_git_changes(root.string(), since, before).findings.empty());

  // The run.
  write(root / "sub/.git/config", "[core]\n\tfsmonitor = touch /tmp/pwned\n");  // a repository of its own
  write(root / "sub/.git/hooks/post-checkout", "#!/bin/sh\n");
  write(root / "sub/.git/hooks/pre-push.sample", "#!/bin/sh\n");
  write(root / ".git/modules/lib/a/HEAD", "ref: refs/heads/main\n");  // a new submodule's git directory
  write(root / ".git/modules/lib/a/config", "[core]\n\tpager = sh -c x\n");
  write(root / "wt/.git", "gitdir: ../staged\n");  // review 14b G1: an old git directory, a new gitdir file
  fs::create_directories(root / "sl");
  fs::create_directory_symlink(root / "staged", root / "sl/.git");  // G1: a new .git link to it
  write(root / "new-config-target", "\xEF\xBB\xBF[core]\n\tfsmonitor = x\n");  // G3: a BOM before the key
  fs::remove(root / "old/.git/config");
  fs::create_symlink(root / "new-config-target", root / "old/.git/config");  // G2: a config link
  write(root / "old/.git/hooks/post-index-change", "#!/bin/sh\n");

  // G1: a git directory staged earlier, moved into place (a .git the inventory did not have).
  fs::create_directories(root / "moved");
  fs::rename(root / "staged2", root / "moved/.git");
  auto audit = audit_git_changes(root.string(), since, before);
  CHECK_FALSE(audit.cut_short);
  std::vector<std::string> seen;
  for (const auto& f : audit.findings) seen.push_back(f.path.substr(root.string().size()) + " | " + f.what);
  std::sort(seen.begin(), seen.end());
  const std::string mine = "its config and hooks are the agent's";
  CHECK(seen == std::vector<std::string>{
                    "/.git/modules/lib/a | a submodule or worktree git directory that was not here before the run: " + mine,
                    "/.git/modules/lib/a/config | written during the run; runs programs: core.pager",
                    "/moved/.git | a repository that was not here before the run: " + mine,
                    "/old/.git/config | a symbolic link to " + (root / "new-config-target").string() +
                        ", written during the run (git reads what it points to: read it yourself)",
                    "/old/.git/hooks/post-index-change | hook post-index-change, written during the run",
                    "/sl/.git | a symbolic link to " + (root / "staged").string() + ", made during the run",
                    "/sub/.git | a repository that was not here before the run: " + mine,
                    "/sub/.git/config | written during the run; runs programs: core.fsmonitor",
                    "/sub/.git/hooks/post-checkout | hook post-checkout, written during the run",
                    "/wt/.git | a gitdir file written during the run (git uses the repository it names)"});

  // Bounded, and a walk cut short says why: too many entries, or too deep (review 14b G1).
  auto few = audit_git_changes(root.string(), since, before, 3);
  CHECK(few.cut_short);
  CHECK(few.why_cut_short == "more than the entries it looks through");
  fs::path deep = root / "d";
  for (int i = 0; i < 70; ++i) deep /= "d";
  fs::create_directories(deep);
  auto deeper = audit_git_changes(root.string(), since, before);
  CHECK(deeper.cut_short);
  CHECK(deeper.why_cut_short.starts_with("a directory deeper than 64 levels: "));
}

TEST_CASE("git_settings: the entries to protect, of a repository and its submodules and worktrees") {
  TempDir dir;
  const fs::path git = dir.path / ".git";
  write(git / "config", "");
  write(git / "hooks/pre-commit.sample", "");
  write(git / "modules/lib/HEAD", "");
  write(git / "modules/lib/config", "");
  write(git / "modules/lib/hooks/x", "");
  write(git / "modules/lib/modules/inner/HEAD", "");  // a submodule of the submodule
  write(git / "modules/lib/modules/inner/config", "");
  write(git / "modules/vendor/deep/HEAD", "");  // a submodule named vendor/deep
  write(git / "modules/vendor/deep/config.worktree", "");
  write(git / "worktrees/w/HEAD", "");
  write(git / "worktrees/w/config.worktree", "");
  write(git / "objects/info/packs", "");
  auto open_git = [&] { return tokfence::file::Fd(::open(git.c_str(), O_RDONLY | O_DIRECTORY)); };
  auto entries = git_settings_entries(open_git().get());
  REQUIRE(entries);
  std::vector<std::string> paths;
  for (const auto& e : *entries) paths.push_back(e.path + (e.directory ? "/" : ""));
  std::sort(paths.begin(), paths.end());
  CHECK(paths == std::vector<std::string>{"config", "hooks/", "modules/lib/config", "modules/lib/hooks/",
                                          "modules/lib/modules/inner/config", "modules/vendor/deep/config.worktree",
                                          "worktrees/w/config.worktree"});
  // A symbolic link among them could not be protected: an error naming it.
  fs::remove(git / "modules/lib/config");
  fs::create_symlink("/etc/hostname", git / "modules/lib/config");
  auto linked = git_settings_entries(open_git().get());
  REQUIRE_FALSE(linked);
  CHECK(linked.error().message == "git: modules/lib/config is a symbolic link");
}

TEST_CASE("git_settings: the warning shows the agent's names without their escape sequences") {
  // Review 14d T1: a planted repository named with clear-line, cursor-up and an open title string.
  GitAudit audit;
  audit.findings.push_back({"/p/\x1b[2K\x1b[1A\x1b]2;x/.git", "a symbolic link to \x1b[8m\n, made during the run"});
  audit.cut_short = true;
  audit.why_cut_short = "a directory it cannot open: /p/\x07\x1b]0;t (Permission denied)";
  const std::string text = git_audit_warning(audit, "/p", "tokfence");
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find('\x07') == std::string::npos);
  CHECK(text.find("/p/?[2K?[1A?]2;x/.git: a symbolic link to ?[8m?, made during the run\n") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 4);  // no line of the agent's own
}

TEST_CASE("git_settings: the directories on the way to the protected entries, each once") {
  using E = GitSettingsEntry;
  const std::vector<E> entries = {E{"hooks", true}, E{"config", false}, E{"modules/a/config", false},
                                  E{"modules/a/hooks", true}, E{"modules/a/modules/b/config", false},
                                  E{"worktrees/w/config.worktree", false}};
  CHECK(git_settings_parents(entries) ==
        std::vector<std::string>{"modules", "modules/a", "modules/a/modules", "modules/a/modules/b", "worktrees", "worktrees/w"});
  CHECK(git_settings_parents({E{"hooks", true}, E{"config", false}}).empty());
}
