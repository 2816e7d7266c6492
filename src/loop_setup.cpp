// Loop setup: the limits (descriptors, sessions), the fencing tokens, the
// ring and the signalfd; and the signals glockd takes over.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "loop.hpp"
#include "loop_internal.hpp"
#include "memory_limit.hpp"

namespace glockd {

using namespace loop_detail;

sigset_t take_over_signals() {
  // Ignored, not blocked: the kernel then drops them as they are sent,
  // where a blocked one would stay pending for good with its default
  // action (end or stop the process) still set. Each of these ends or stops
  // a process by default and means nothing to a lock server: the timer and
  // user signals, terminal job control (Ctrl-Z, a background read or write),
  // a write past RLIMIT_FSIZE (the write fails with EFBIG instead), a
  // closed peer (sends use MSG_NOSIGNAL too), SIGIO, SIGPWR, SIGSTKFLT and
  // the real-time signals, which nothing here uses.
  for (int sig : {SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGTSTP, SIGTTIN, SIGTTOU,
                  SIGXFSZ, SIGPIPE, SIGIO, SIGPWR, SIGSTKFLT})
    ::signal(sig, SIG_IGN);
  for (int sig = SIGRTMIN; sig <= SIGRTMAX; ++sig) ::signal(sig, SIG_IGN);
  // The two real-time signals below SIGRTMIN (32 and 33) are glibc's own
  // (thread cancellation, setuid across threads), and its signal() and
  // sigprocmask() refuse to touch them; yet a `kill -33` would end glockd
  // without cleanup. glockd has one thread and uses neither, so they are
  // blocked with the system call itself (the kernel's sigset: bit N-1).
  const std::uint64_t libc_internal = (std::uint64_t{1} << (32 - 1)) | (std::uint64_t{1} << (33 - 1));
  ::syscall(SYS_rt_sigprocmask, SIG_BLOCK, &libc_internal, nullptr, sizeof libc_internal);
  // Read by the loop from its signalfd: SIGTERM, SIGINT and SIGQUIT stop it
  // gracefully, SIGHUP reloads the TLS certificates.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  return mask;
}

std::string Loop::init() {
  if (!start_error_.empty()) return start_error_;
  // Each connection costs one descriptor: use all the kernel lets us have.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::getrlimit(RLIMIT_NOFILE, &rl);
  const std::size_t by_fds = rl.rlim_cur > kFdReserve ? rl.rlim_cur - kFdReserve : 1;
  max_connections_ = config_.max_connections == 0 ? by_fds
                                                  : std::min(config_.max_connections, by_fds);
  spdlog::info("open-file limit {}: serving at most {} connections", rl.rlim_cur,
               max_connections_);
  max_sessions_ = config_.max_sessions != 0
                      ? config_.max_sessions
                      : std::min(kDefaultMaxSessions, config_.max_connections == 0
                                                          ? kDefaultMaxSessions
                                                          : config_.max_connections);
  protocol_->set_max_sessions(max_sessions_);
  spdlog::info("sessions kept by grace: at most {} (--max-sessions)", max_sessions_);

  if (config_.max_memory != 0) {
    budget_.set_limit(config_.max_memory);
    spdlog::info("memory budget: {} bytes (--max-memory)", config_.max_memory);
  } else {
    const MemoryLimit m = default_max_memory();
    budget_.set_limit(m.bytes);
    spdlog::info("memory budget: {} bytes, {} (--max-memory sets it)", m.bytes, m.source);
  }
  protocol_->set_limits(config_.max_locks_per_connection, &budget_);

  if (token_mark_ != nullptr) {
    table_.seed_tokens(token_mark_->first(), token_mark_->mark(), token_mark_);
    spdlog::info("fencing tokens from {} (mark in {} was {}; reserved up to {})",
                 token_mark_->first(), config_.state_dir, token_mark_->stored_before(),
                 token_mark_->mark());
  }

  if (std::string error = ring_.init(); !error.empty()) return error;

  const sigset_t mask = take_over_signals();
  signal_fd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return std::string("cannot create a signalfd: ") + std::strerror(errno);
  return {};
}

}  // namespace glockd
