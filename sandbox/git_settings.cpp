#include "sandbox/git_settings.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "core/ascii.hpp"
#include "core/file.hpp"
#include "core/text_format.hpp"

namespace tokfence::sandbox {
namespace {

constexpr std::size_t kMaxConfig = 1 << 20;
constexpr int kMaxDepth = 64;

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

bool one_of(const std::string& key, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return key == n; });
}

// Whether git runs a program for this setting (git-config(1); every key whose value is a command
// or a path git executes, and the ones that pull in another file or protocol that could).
bool runs_program(const std::string& section, const std::string& sub, const std::string& key, std::string_view value) {
  if (section == "core")
    return one_of(key, {"fsmonitor", "hookspath", "pager", "editor", "sshcommand", "askpass", "gitproxy",
                        "alternaterefscommand"});
  if (section == "sequence") return key == "editor";
  if (section == "diff") return sub.empty() ? key == "external" : one_of(key, {"textconv", "command"});
  if (section == "merge") return !sub.empty() && key == "driver";
  if (section == "filter") return one_of(key, {"clean", "smudge", "process"});
  if (section == "credential") return key == "helper";
  if (section == "alias" || (section == "submodule" && key == "update")) {
    std::string_view v = trim(value);
    if (v.starts_with("\"")) v.remove_prefix(1);
    return v.starts_with("!");
  }
  if (section == "include" || section == "includeif") return key == "path";
  if (section == "gpg") return key == "program" || key == "defaultkeycommand";
  if (section == "uploadpack") return key == "packobjectshook";
  if (section == "pager") return true;
  if (section == "interactive") return key == "difffilter";
  if (section == "remote") return one_of(key, {"uploadpack", "receivepack", "vcs"});
  if (section == "protocol") return key == "allow";
  if (section == "url") return sub.starts_with("ext::") || sub.starts_with("fd::");
  if (section == "difftool" || section == "mergetool") return one_of(key, {"cmd", "path"});
  return false;
}

bool changed_since(const struct stat& st, const timespec& since) {
  return st.st_ctim.tv_sec > since.tv_sec || (st.st_ctim.tv_sec == since.tv_sec && st.st_ctim.tv_nsec >= since.tv_nsec);
}

// The text of regular file `name` below `dir_fd` (a symbolic link followed: git follows it), at
// most kMaxConfig bytes; nothing for anything else. `complete` tells whether all of it was read.
// The agent chooses what a link points to, and opening some files does something (a FIFO releases
// its writer, a watchdog device arms, a tty becomes the controlling terminal: review 15b L2), so
// the file is first reached with O_PATH, which opens nothing, and opened for reading only once it
// is known to be a regular file, through that very descriptor.
std::optional<std::string> read_text(int dir_fd, const char* name, bool* complete) {
  file::Fd path(::openat(dir_fd, name, O_PATH | O_CLOEXEC));
  struct stat st{};
  if (!path || ::fstat(path.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const std::string via = "/proc/self/fd/" + std::to_string(path.get());
  file::Fd fd(::open(via.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  std::string text;
  char buf[16384];
  ssize_t n;
  while (text.size() < kMaxConfig && (n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  *complete = text.size() < kMaxConfig;
  return text;
}

// Whether the simple reading of program_settings() can be trusted for `text`: plain ASCII lines
// with LF ends, no byte-order mark, no CR, no value continued on the next line. Anything else git
// may read differently (review 14b G3), so the finding says to read the file.
bool plainly_readable(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r' || c >= 0x80 || (c < 0x20 && c != '\n' && c != '\t')) return false;
    if (c == '\\' && i + 1 < text.size() && text[i + 1] == '\n') return false;
  }
  return true;
}

// What the walk found one entry to be, for a finding: "a symbolic link to T", "written".
std::string link_target(int dir_fd, const char* name) {
  char buf[4096];
  const ssize_t n = ::readlinkat(dir_fd, name, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("?");
}

// The entries of directory `dir_fd` with their types (lstat when the file system does not say),
// at most `budget` of them (counted down); `truncated` set when entries were left unread.
std::vector<std::pair<std::string, unsigned char>> list_dir(int dir_fd, std::size_t& budget, bool& truncated) {
  std::vector<std::pair<std::string, unsigned char>> out;
  int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return out;
  DIR* dir = ::fdopendir(copy);
  if (!dir) {
    ::close(copy);
    return out;
  }
  ::rewinddir(dir);
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (budget == 0) {
      truncated = true;
      break;
    }
    --budget;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st{};
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
    }
    out.emplace_back(name, type);
  }
  ::closedir(dir);
  return out;
}

class Walker {
 public:
  // `inventory` non-null: only record the git directories reached there (no findings).
  Walker(const timespec& since, std::size_t max_entries, const GitInventory* before, GitInventory* inventory = nullptr)
      : since_(since), budget_(max_entries), before_(before), inventory_(inventory) {}

  void walk_tree(int dir_fd, const std::string& path, int depth) {
    if (depth > kMaxDepth) return cut_short("a directory deeper than " + std::to_string(kMaxDepth) + " levels: " + path);
    for (auto& [name, type] : entries(dir_fd)) {
      if (name == ".git") {
        dot_git(dir_fd, path, depth == 0);
        continue;
      }
      if (type != DT_DIR) continue;  // a symbolic link is never followed: its target is walked where it is
      file::Fd sub = open_dir(dir_fd, name.c_str(), path + "/" + name, false);
      if (sub) walk_tree(sub.get(), path + "/" + name, depth + 1);
    }
  }

  GitAudit result() { return std::move(audit_); }

 private:
  // Opens directory `name` below `dir_fd` (`follow`: through a symbolic link, as git follows a
  // .git link). A directory that is there but cannot be opened is never passed over in silence:
  // git needs only search permission where the walk needs read (review 14c G1: chmod 0311 on a
  // parent of a planted repository), so it is a finding when it changed during the run, and the
  // walk is cut short otherwise.
  file::Fd open_dir(int dir_fd, const char* name, const std::string& path, bool follow) {
    file::Fd fd(::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW)));
    if (fd || errno == ENOENT || errno == ENOTDIR || (!follow && errno == ELOOP)) return fd;
    const std::string why = std::strerror(errno);
    struct stat st{};
    if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && changed_since(st, since_))
      find(path, "a directory the audit cannot open (" + why + "), changed during the run: git may still reach into it");
    else
      cut_short("a directory it cannot open: " + path + " (" + why + ")");
    return fd;
  }

  void find(std::string path, std::string what) {
    if (!inventory_) audit_.findings.push_back({std::move(path), std::move(what)});
  }
  // A git directory: recorded when taking the inventory; else whether it is new since then.
  bool new_git_dir(const std::string& path, int fd) {
    struct stat st{};
    if (::fstat(fd, &st) != 0) return false;
    if (inventory_) {
      inventory_->git_dirs.insert({path, st.st_dev, st.st_ino});
      return false;
    }
    return before_ && before_->taken && !before_->git_dirs.count({path, st.st_dev, st.st_ino});
  }
  void cut_short(const std::string& why) {
    audit_.cut_short = true;
    if (audit_.why_cut_short.empty()) audit_.why_cut_short = why;
  }

  // The entries of a directory (list_dir), counted against the walk's budget.
  std::vector<std::pair<std::string, unsigned char>> entries(int dir_fd) {
    bool truncated = false;
    auto out = list_dir(dir_fd, budget_, truncated);
    if (truncated) cut_short("more than the entries it looks through");
    return out;
  }

  // A `.git` entry in `dir_fd`. Below the top, any .git written during the run is a finding
  // whatever it is (git follows a link and a gitdir file wherever they point, and a directory
  // moved here keeps its old contents' times); an older one is read like any git directory.
  void dot_git(int dir_fd, const std::string& path, bool top) {
    struct stat st{};
    if (::fstatat(dir_fd, ".git", &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    const std::string at = path + "/.git";
    if (!top && !S_ISDIR(st.st_mode) && changed_since(st, since_)) {
      if (S_ISLNK(st.st_mode)) find(at, "a symbolic link to " + link_target(dir_fd, ".git") + ", made during the run");
      else if (S_ISREG(st.st_mode)) find(at, "a gitdir file written during the run (git uses the repository it names)");
      else find(at, "neither a directory nor a file, made during the run");
    }
    if (S_ISREG(st.st_mode)) return follow_gitdir_file(dir_fd, at);
    // A directory, or a link git would follow to one (opened through it: read only).
    file::Fd git = open_dir(dir_fd, ".git", at, true);
    if (!git) return;
    if (!top && S_ISDIR(st.st_mode) && new_git_dir(at, git.get()))
      find(at, "a repository that was not here before the run: its config and hooks are the agent's");
    inspect_gitdir(git.get(), at, !top);
  }

  // The git directory a .git file names ("gitdir: <path>", a submodule's or a worktree's).
  void follow_gitdir_file(int dir_fd, const std::string& at) {
    bool complete = false;
    auto text = read_text(dir_fd, ".git", &complete);
    if (!text || !text->starts_with("gitdir:")) return;
    std::string target(text->substr(7, text->find('\n') == std::string::npos ? std::string::npos : text->find('\n') - 7));
    while (!target.empty() && (target.front() == ' ' || target.front() == '\t')) target.erase(0, 1);
    while (!target.empty() && (target.back() == ' ' || target.back() == '\t' || target.back() == '\r')) target.pop_back();
    if (target.empty()) return;
    file::Fd git = open_dir(dir_fd, target.c_str(), at + " -> " + target, true);
    if (git) inspect_gitdir(git.get(), at + " -> " + target, true);
  }

  // A git directory: what in it decides what git runs (config, config.worktree, commondir, hooks;
  // `own_settings` false for the top repository, whose config and hooks were read-only in the
  // sandbox and may be the user's own settings), then the git directories of its submodules and
  // worktrees.
  void inspect_gitdir(int git_fd, const std::string& path, bool own_settings) {
    struct stat st{};
    if (::fstat(git_fd, &st) != 0 || !seen_.insert({st.st_dev, st.st_ino}).second) return;
    if (own_settings) {
      settings_file(git_fd, path, "config");
      hooks(git_fd, path);
    }
    settings_file(git_fd, path, "config.worktree");
    settings_file(git_fd, path, "commondir");
    for (const char* holder : {"modules", "worktrees"}) {
      file::Fd dir = open_dir(git_fd, holder, path + "/" + holder, false);
      if (dir) walk_gitdirs(dir.get(), path + "/" + holder, 0);
    }
  }

  // A config, config.worktree or commondir: a finding when it, or what it links to, changed
  // during the run, with the settings in it that run programs when they can be read plainly.
  void settings_file(int git_fd, const std::string& path, const char* name) {
    struct stat own{}, target{};
    if (::fstatat(git_fd, name, &own, AT_SYMLINK_NOFOLLOW) != 0) return;
    const bool link = S_ISLNK(own.st_mode);
    const bool target_ok = ::fstatat(git_fd, name, &target, 0) == 0;
    if (!changed_since(own, since_) && !(link && target_ok && changed_since(target, since_))) return;
    std::string what = link ? "a symbolic link to " + link_target(git_fd, name) + ", " : std::string();
    bool complete = false;
    // What a link points to may be any file of the host's (review 15b L2, 15c: a linked config's
    // section names may hold credential URLs): the link is the finding, its target is not read.
    auto text = link ? std::nullopt : read_text(git_fd, name, &complete);
    if (std::string_view(name) == "commondir") {
      // What a link points to may be any file of the host's (review 15b L2 printed a line of
      // /etc/shadow this way): only a commondir the agent wrote itself is quoted.
      what += link ? "made during the run: git reads the config and hooks of the directory the file it points to names"
                   : "written during the run: git reads the config and hooks of " +
                         (text ? std::string(text->substr(0, std::min<std::size_t>(text->find('\n'), 200))) : std::string("?"));
    } else {
      what += "written during the run";
      if (link) {
        what += " (git reads what it points to: read it yourself)";
      } else if (!text) {
        what += " (not a regular file)";
      } else if (!complete || !plainly_readable(*text)) {
        what += " (not plain text git-config: read it yourself)";
      } else if (auto settings = program_settings(*text); !settings.empty()) {
        what += "; runs programs:";
        for (const auto& setting : settings) what += " " + setting;
      }
    }
    find(path + "/" + name, what);
  }

  // hooks/ (a link to elsewhere is followed, as git does): every hook but a .sample written during
  // the run, and the directory itself when it was replaced.
  void hooks(int git_fd, const std::string& path) {
    struct stat own{};
    if (::fstatat(git_fd, "hooks", &own, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (S_ISLNK(own.st_mode) && changed_since(own, since_))
      find(path + "/hooks", "a symbolic link to " + link_target(git_fd, "hooks") + ", made during the run");
    file::Fd dir = open_dir(git_fd, "hooks", path + "/hooks", true);
    if (!dir) return;
    for (auto& [name, type] : entries(dir.get())) {
      if (name.ends_with(".sample")) continue;
      struct stat hook{}, target{};
      if (::fstatat(dir.get(), name.c_str(), &hook, AT_SYMLINK_NOFOLLOW) != 0) continue;
      const bool target_changed = type == DT_LNK && ::fstatat(dir.get(), name.c_str(), &target, 0) == 0 &&
                                  changed_since(target, since_);
      if (changed_since(hook, since_) || target_changed) find(path + "/hooks/" + name, "hook " + name + ", written during the run");
    }
  }

  // Below modules/ or worktrees/: a directory with a HEAD is a git directory (one made during the
  // run is a finding itself); others are the path components of a submodule name.
  void walk_gitdirs(int dir_fd, const std::string& path, int depth) {
    if (depth > kMaxDepth) return cut_short("submodules nested deeper than " + std::to_string(kMaxDepth) + " levels: " + path);
    for (auto& [name, type] : entries(dir_fd)) {
      if (type != DT_DIR) continue;
      file::Fd sub = open_dir(dir_fd, name.c_str(), path + "/" + name, false);
      if (!sub) continue;
      struct stat head{};
      if (::fstatat(sub.get(), "HEAD", &head, AT_SYMLINK_NOFOLLOW) != 0) {
        walk_gitdirs(sub.get(), path + "/" + name, depth + 1);
        continue;
      }
      if (new_git_dir(path + "/" + name, sub.get()))
        find(path + "/" + name, "a submodule or worktree git directory that was not here before the run: its config and "
                                "hooks are the agent's");
      inspect_gitdir(sub.get(), path + "/" + name, true);
    }
  }

  timespec since_;
  std::size_t budget_;
  const GitInventory* before_;
  GitInventory* inventory_;
  GitAudit audit_;
  std::set<std::pair<dev_t, ino_t>> seen_;
};

Result<void> collect_settings(int git_fd, const std::string& prefix, int depth, std::vector<GitSettingsEntry>& out);

// Below modules/ or worktrees/: a directory with a HEAD is a git directory, others are components
// of a submodule's name.
Result<void> collect_holder(int dir_fd, const std::string& prefix, int depth, std::vector<GitSettingsEntry>& out) {
  if (depth > 16) return fail("git: " + prefix + ": nested too deep to protect");
  std::size_t unbounded = std::numeric_limits<std::size_t>::max();
  bool truncated = false;
  for (const auto& [name, type] : list_dir(dir_fd, unbounded, truncated)) {
    if (type != DT_DIR) continue;
    file::Fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) continue;
    struct stat st{};
    auto r = ::fstatat(sub.get(), "HEAD", &st, AT_SYMLINK_NOFOLLOW) == 0
                 ? collect_settings(sub.get(), prefix + name + "/", depth + 1, out)
                 : collect_holder(sub.get(), prefix + name + "/", depth + 1, out);
    if (!r) return r;
  }
  return {};
}

Result<void> collect_settings(int git_fd, const std::string& prefix, int depth, std::vector<GitSettingsEntry>& out) {
  if (depth > 16) return fail("git: " + prefix + ": nested too deep to protect");
  for (const char* name : {"hooks", "config", "config.worktree"}) {
    struct stat st{};
    if (::fstatat(git_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(st.st_mode)) return fail("git: " + prefix + name + " is a symbolic link");
    out.push_back({prefix + name, S_ISDIR(st.st_mode)});
  }
  for (const char* holder : {"modules", "worktrees"}) {
    file::Fd dir(::openat(git_fd, holder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (dir)
      if (auto r = collect_holder(dir.get(), prefix + holder + "/", depth + 1, out); !r) return r;
  }
  return {};
}

}  // namespace

std::vector<std::string> git_settings_parents(const std::vector<GitSettingsEntry>& entries) {
  std::set<std::string> parents;
  for (const auto& entry : entries)
    for (auto slash = entry.path.find('/'); slash != std::string::npos; slash = entry.path.find('/', slash + 1))
      parents.insert(entry.path.substr(0, slash));
  return {parents.begin(), parents.end()};
}

Result<std::vector<GitSettingsEntry>> git_settings_entries(int git_fd) {
  std::vector<GitSettingsEntry> out;
  if (auto r = collect_settings(git_fd, "", 0, out); !r) return std::unexpected(r.error());
  return out;
}

std::vector<std::string> program_settings(std::string_view config) {
  std::vector<std::string> found;
  std::string section, sub;
  while (!config.empty()) {
    const auto eol = config.find('\n');
    std::string_view line = trim(config.substr(0, eol));
    config = eol == std::string_view::npos ? std::string_view() : config.substr(eol + 1);
    if (line.starts_with("[")) {
      const auto close = line.find(']');
      if (close == std::string_view::npos) continue;
      std::string_view header = trim(line.substr(1, close - 1));
      line = trim(line.substr(close + 1));  // a key may follow on the same line
      sub.clear();
      if (const auto quote = header.find('"'); quote != std::string_view::npos) {
        section = ascii::lower(trim(header.substr(0, quote)));
        std::string_view rest = header.substr(quote + 1);
        sub = std::string(rest.substr(0, rest.rfind('"')));
      } else if (const auto dot = header.find('.'); dot != std::string_view::npos) {
        section = ascii::lower(header.substr(0, dot));
        sub = ascii::lower(header.substr(dot + 1));
      } else {
        section = ascii::lower(header);
      }
    }
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    const auto eq = line.find('=');
    const std::string key = ascii::lower(trim(line.substr(0, eq)));
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : trim(line.substr(eq + 1));
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }))
      continue;
    if (runs_program(section, ascii::lower(sub), key, value))
      found.push_back(section + (sub.empty() ? "" : "." + sub) + "." + key);
  }
  return found;
}

timespec git_audit_clock() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return t;
}

std::string git_audit_warning(const GitAudit& audit, const std::string& root, std::string_view who) {
  // Every path and link target here is the agent's choice: through printable(), so a name of
  // escape sequences cannot wipe the warning off the user's terminal (review 14d T1).
  std::string out;
  if (!audit.findings.empty()) {
    out = std::string(who) + ": warning: the agent left git settings or hooks that run programs when you use git (below " +
          printable(root) + "):\n";
    for (const auto& f : audit.findings) out += "  " + printable(f.path) + ": " + printable(f.what) + "\n";
    out += "  git runs them unfenced, in that repository and, for a repository the project's index lists as a "
           "submodule, on a plain `git status` in the project. Read them and remove what you did not ask for before "
           "you run git there (docs/SANDBOX.md)\n";
  }
  if (audit.cut_short)
    out += std::string(who) + ": warning: not everything below " + printable(root) +
           " was looked through for git settings the agent left (" + printable(audit.why_cut_short) +
           "): a repository planted there would not be named above; treat git there as running the agent's "
           "programs until you have looked\n";
  return out;
}

GitInventory git_inventory(const std::string& root, std::size_t max_entries) {
  GitInventory inventory;
  inventory.taken = true;
  Walker walker(timespec{0, 0}, max_entries, nullptr, &inventory);
  file::Fd top(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (top) walker.walk_tree(top.get(), root, 0);
  return inventory;
}

GitAudit audit_git_changes(const std::string& root, const timespec& since, const GitInventory& before,
                           std::size_t max_entries) {
  Walker walker(since, max_entries, &before);
  file::Fd top(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (top) walker.walk_tree(top.get(), root, 0);
  return walker.result();
}

}  // namespace tokfence::sandbox
