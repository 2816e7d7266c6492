// Crash cleanup: on a fatal signal (SIGSEGV, SIGABRT, SIGBUS, ...) remove
// the files glockd created (its unix socket, its pidfile), then die by it.
#pragma once

#include <string>

namespace glockd {

// Installs the handler for every fatal signal, with an alternate signal
// stack so a stack overflow still gets there. Call once, early in main,
// before any file is created.
void install_crash_cleanup();

// Adds the file now at `path` to the files the handler removes: only that
// file (device and inode), not one another process puts there later. Only
// for files glockd created itself: never a socket systemd passed in.
void remove_on_crash(const std::string& path);

// Takes `path` off that list again (it was removed, or renamed away).
void keep_on_crash(const std::string& path);

// At a clean stop: removes the file at `path` if it is still the one
// registered, and takes it off the list.
void remove_if_ours(const std::string& path);

}  // namespace glockd
