// Crash cleanup (crash.hpp): an async-signal-safe handler that unlinks the
// files glockd created and re-raises, so exit status and core dump stay.
#include "crash.hpp"

#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

namespace glockd {

namespace {

// The signals whose default action ends the process and that glockd does
// not handle in its loop (SIGTERM, SIGINT, SIGQUIT stop it gracefully) nor
// ignore (loop_setup.cpp). SIGKILL cannot be caught.
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
                                 SIGSYS,  SIGABRT, SIGXCPU};

// The handler may only touch memory that is there before it runs, so the
// paths are copied into fixed arrays: room for the unix socket, its
// temporary name and the pidfile.
struct Slot {
  volatile std::sig_atomic_t used = 0;
  char path[PATH_MAX] = {};
  // The file glockd made there: another glockd may have put its own file
  // on the same path since (the operator removed ours and started one), and
  // that one is not ours to remove.
  dev_t dev = 0;
  ino_t ino = 0;
};
Slot g_slots[4];

// What was installed before us (a sanitizer's handler, or SIG_DFL).
struct sigaction g_previous[NSIG];

// A stack overflow must still reach the handler.
alignas(16) char g_alt_stack[64 * 1024];

// lstat() and unlink() are async-signal-safe.
bool still_ours(const Slot& s) {
  struct stat st{};
  return ::lstat(s.path, &st) == 0 && st.st_dev == s.dev && st.st_ino == s.ino;
}

void on_fatal_signal(int sig, siginfo_t* info, void* context) {
  for (const Slot& s : g_slots)
    if (s.used && still_ours(s)) ::unlink(s.path);
  // A fault the kernel raised (si_code > 0) under a sanitizer that had a
  // handler before ours: let it print its report, which ends the process.
  // A signal someone sent (kill, si_code <= 0) is not a memory error and
  // gets no report: it ends the process the same way in every build.
  const struct sigaction& prev = g_previous[sig];
  if (info != nullptr && info->si_code > 0 && (prev.sa_flags & SA_SIGINFO) != 0 &&
      prev.sa_sigaction != nullptr)
    prev.sa_sigaction(sig, info, context);
  // SA_RESETHAND has put back the default action, and the signal is blocked
  // while we are in here: it is delivered, with that default action (core
  // dump, "killed by signal" status), as soon as this handler returns.
  ::raise(sig);
}

}  // namespace

void install_crash_cleanup() {
  // A sanitizer may have installed its own alternate stack (bigger, for its
  // report): keep it.
  stack_t current{};
  if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) != 0) {
    stack_t ss{};
    ss.ss_sp = g_alt_stack;
    ss.ss_size = sizeof g_alt_stack;
    ::sigaltstack(&ss, nullptr);
  }
  struct sigaction sa{};
  sa.sa_sigaction = on_fatal_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kFatalSignals) ::sigaction(sig, &sa, &g_previous[sig]);
}

void remove_on_crash(const std::string& path) {
  if (path.empty() || path.size() >= sizeof g_slots[0].path) return;
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  for (Slot& s : g_slots) {
    if (s.used) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    // The handler must not see the slot in use before the path is whole.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    s.used = 1;
    return;
  }
}

void keep_on_crash(const std::string& path) {
  for (Slot& s : g_slots)
    if (s.used && path == s.path) s.used = 0;
}

void remove_if_ours(const std::string& path) {
  for (Slot& s : g_slots) {
    if (!s.used || path != s.path) continue;
    s.used = 0;
    if (still_ours(s)) ::unlink(s.path);
  }
}

}  // namespace glockd
