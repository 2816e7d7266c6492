// Loop setup: the ring (with the best flags this kernel takes), the
// provided buffer ring for recv, the signalfd; and what to say when
// io_uring is not available.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;

namespace {

std::string read_sysctl(const char* path) {
  std::ifstream f(path);
  std::string v;
  if (f) std::getline(f, v);
  return v;
}

std::string explain_ring_error(int err) {
  const std::string why = std::strerror(err);
  if (err == ENOSYS)
    return "io_uring is not available (io_uring_setup: " + why +
           "): the kernel lacks it or a seccomp filter hides it. glockd needs Linux 5.19 or "
           "later with io_uring enabled; in a container, allow io_uring_setup, "
           "io_uring_enter and io_uring_register in its seccomp profile";
  if (err == EPERM) {
    const std::string disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
    if (!disabled.empty() && disabled != "0")
      return "io_uring is disabled by the sysctl kernel.io_uring_disabled=" + disabled +
             ": set it to 0 (sysctl -w kernel.io_uring_disabled=0), or for value 1 run "
             "glockd in the group named by kernel.io_uring_group";
    return "io_uring is refused (io_uring_setup: " + why +
           "): a seccomp filter blocks it (container default profiles do); allow "
           "io_uring_setup, io_uring_enter and io_uring_register";
  }
  if (err == ENOMEM)
    return "not enough locked memory for the io_uring ring (io_uring_setup: " + why +
           "): raise RLIMIT_MEMLOCK (ulimit -l, or LimitMEMLOCK= in the systemd unit)";
  return "cannot set up io_uring: " + why;
}

}  // namespace

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
  // gracefully, SIGHUP is logged (the reload signal to come).
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  return mask;
}

std::string Loop::init() {
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

  if (token_mark_ != nullptr) {
    table_.seed_tokens(token_mark_->first(), token_mark_->mark(), token_mark_);
    spdlog::info("fencing tokens from {} (mark in {} was {}; reserved up to {})",
                 token_mark_->first(), config_.state_dir, token_mark_->stored_before(),
                 token_mark_->mark());
  }

  io_uring_params p{};
  // SINGLE_ISSUER + DEFER_TASKRUN: only this thread submits, and completion
  // work runs when we ask for events instead of interrupting us (6.1+).
  // COOP_TASKRUN is the next best (5.19+). CQSIZE: never overflow the CQ.
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  const unsigned tries[] = {base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                            base | IORING_SETUP_COOP_TASKRUN, base};
  int rc = -EINVAL;
  for (unsigned flags : tries) {
    p = io_uring_params{};
    p.flags = flags;
    p.cq_entries = kCqEntries;
    rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (rc != -EINVAL) {
      ring_flags_ = flags;
      break;
    }
  }
  if (rc < 0) return explain_ring_error(-rc);
  ring_ready_ = true;

  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  const bool has_ops = probe && io_uring_opcode_supported(probe, IORING_OP_ACCEPT) &&
                       io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                       io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                       io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL) &&
                       io_uring_opcode_supported(probe, IORING_OP_CLOSE);
  if (probe) io_uring_free_probe(probe);
  if (!has_ops)
    return "this kernel's io_uring lacks accept/recv/send/close: glockd needs Linux 5.19 or later";

  const std::size_t ring_bytes = kBufCount * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                     -1, 0);
  if (mem == MAP_FAILED) return std::string("cannot map the buffer ring: ") + std::strerror(errno);
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  if (int r = io_uring_register_buf_ring(&ring_, &reg, 0); r < 0)
    return std::string("cannot register the recv buffer ring (") + std::strerror(-r) +
           "): glockd needs Linux 5.19 or later";
  buffers_ = std::make_unique<char[]>(std::size_t{kBufCount} * kBufSize);
  for (unsigned i = 0; i < kBufCount; ++i)
    io_uring_buf_ring_add(buf_ring_, buffers_.get() + std::size_t{i} * kBufSize, kBufSize,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(kBufCount),
                          static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, kBufCount);

  const sigset_t mask = take_over_signals();
  signal_fd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return std::string("cannot create a signalfd: ") + std::strerror(errno);
  return {};
}

}  // namespace glockd
