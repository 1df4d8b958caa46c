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

using namespace tokfence::sandbox;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("tf-git-audit-" + std::to_string(::getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("git_settings: the settings that make git run a program") {
  const std::string config =
      "[core]\n\trepositoryformatversion = 0\n\tFsMonitor = touch /tmp/x\n\tbare = false\n"
      "[core] hooksPath = .h\n"
      "[remote \"origin\"]\n\turl = https://example.test/r.git\n\tuploadpack = sh -c x\n"
      "[filter \"lfs\"]\n\tsmudge = x %f\n"
      "[alias]\n\tst = status\n\tpwn = !sh -c x\n"
      "[diff \"bin\"]\n\ttextconv = hexdump\n"
      "[url \"ext::sh -c x\"]\n\tinsteadOf = https://\n"
      "[includeIf \"gitdir:/\"]\n\tpath = /tmp/other\n"
      "[branch.main]\n\tremote = origin\n"
      "; fsmonitor = commented\n# [core] pager = less\n"
      "[submodule \"s\"]\n\tupdate = !rm -rf /\n\turl = ../s\n";
  const auto found = program_settings(config);
  CHECK(found == std::vector<std::string>{"core.fsmonitor", "core.hookspath", "remote.origin.uploadpack",
                                          "filter.lfs.smudge", "alias.pwn", "diff.bin.textconv",
                                          "url.ext::sh -c x.insteadof", "includeif.gitdir:/.path",
                                          "submodule.s.update"});
  // What an ordinary clone's config holds runs nothing.
  CHECK(program_settings("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
                         "\tlogallrefupdates = true\n[remote \"origin\"]\n\turl = git@example.test:r.git\n"
                         "\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n"
                         "\tmerge = refs/heads/main\n[alias]\n\tco = checkout\n")
            .empty());
}

TEST_CASE("git_settings: a nested repository's settings and hooks changed during the run are found") {
  TempDir dir;
  const fs::path root = dir.path;
  // Before the run: the top repository (its own settings are the user's), an old nested repository.
  write(root / ".git/config", "[core]\n\thooksPath = .husky\n");
  write(root / "old/.git/config", "[core]\n\tpager = less\n");
  ::usleep(50000);  // past the coarse clock's tick, so the files above are older than `since`
  const timespec since = git_audit_clock();
  CHECK(audit_git_changes(root.string(), since).findings.empty());

  // The run: a nested repository with fsmonitor and a hook, a submodule's git directory with a
  // pager, a .git file naming a git directory elsewhere in the tree, and a symlink never followed.
  write(root / "sub/.git/config", "[core]\n\tfsmonitor = touch /tmp/pwned\n");
  write(root / "sub/.git/hooks/post-checkout", "#!/bin/sh\n");
  write(root / "sub/.git/hooks/pre-push.sample", "#!/bin/sh\n");
  write(root / ".git/modules/lib/a/HEAD", "ref: refs/heads/main\n");
  write(root / ".git/modules/lib/a/config", "[core]\n\tpager = sh -c x\n");
  write(root / "hidden/gitdir/HEAD", "ref: refs/heads/main\n");
  write(root / "hidden/gitdir/config", "[alias]\n\tx = !sh\n");
  write(root / "wt/.git", "gitdir: ../hidden/gitdir\n");
  fs::create_directories(root / "elsewhere/.git");
  write(root / "elsewhere/.git/config", "[core]\n\teditor = vi\n");
  fs::create_directory_symlink(root / "elsewhere", root / "link");

  auto audit = audit_git_changes(root.string(), since);
  CHECK_FALSE(audit.cut_short);
  std::vector<std::string> seen;
  for (const auto& f : audit.findings) seen.push_back(f.path.substr(root.string().size()) + " " + f.what);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"/.git/modules/lib/a/config core.pager",
                                         "/elsewhere/.git/config core.editor",
                                         "/sub/.git/config core.fsmonitor",
                                         "/sub/.git/hooks/post-checkout hook post-checkout",
                                         "/wt/.git -> ../hidden/gitdir/config alias.x"});
  // Bounded: a walk cut short says so.
  CHECK(audit_git_changes(root.string(), since, 3).cut_short);
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
