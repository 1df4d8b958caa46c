#pragma once
// Starting other programs: finding them on PATH and the desktop notification the daemon's budget
// warnings and `watch`'s alerts show. One environment policy for every program tokfence starts
// for itself: an allow-list, because the caller's environment may hold a key or the vault's
// passphrase and a deny-list only knows the names it was told.
#include <optional>
#include <string>

namespace tokfence {

// The first executable regular file called `name` in PATH's directories (PATH unset: the
// system's /usr/local/bin:/usr/bin:/bin). Empty and relative entries (the current directory)
// are never searched. A name with a '/' is not looked up.
std::optional<std::string> find_program(const std::string& name);

// notify-send, if installed, with argv only (no shell), stdio on /dev/null and only the
// variables a desktop session needs (PATH, HOME, DISPLAY, WAYLAND_DISPLAY,
// DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR, LANG, LC_ALL). Waits at most 5 s, then kills it,
// so a hung session bus stalls nothing.
void desktop_notify(const std::string& title, const std::string& body, bool urgent = false);

}  // namespace tokfence
