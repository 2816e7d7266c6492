// glock exec: take the lock, run CMD under it, pass signals on, and end CMD
// when the lock is lost (the connection to the daemon drops).
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "client/glock.hpp"

namespace glockd::glock {

namespace {

using client::Client;
using client::Errc;
using Clock = std::chrono::steady_clock;

std::string default_name(const ExecOptions& options) {
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  const passwd* pw = ::getpwuid(::geteuid());
  std::string user = pw != nullptr ? pw->pw_name : std::to_string(::geteuid());
  std::string cmd = options.command.front();
  if (const auto slash = cmd.rfind('/'); slash != std::string::npos) cmd.erase(0, slash + 1);
  // No ": " in it: `d` lines are split at their last ": ".
  return user + "@" + host + " " + cmd + "[" + std::to_string(::getpid()) + "]";
}

// Takes the lock as the options say. 1: held, 0: busy, -1: failed (exit
// code in `code`).
int acquire(Client& c, const ExecOptions& o, int& code) {
  auto fail = [&](const client::Error& e) {
    complain(e.message);
    code = exit_code_for(e);
    return -1;
  };
  if (o.shared && o.limit == 0) {
    auto r = c.shared_get(o.lock);
    if (!r) return fail(r.error());
    if (*r == 0) {
      complain("the daemon refused the shared lock " + o.lock +
               " (its memory or per-connection limit; see its log)");
      return 0;
    }
    return 1;
  }
  // w/sw ask for at most kMaxWaitMs; a longer (or endless) wait renews.
  std::optional<std::uint64_t> left = o.wait_ms;
  for (bool first = true;; first = false) {
    const std::uint64_t chunk = left ? std::min<std::uint64_t>(*left, client::kMaxWaitMs)
                                     : client::kMaxWaitMs;
    if (!first && chunk == 0) return 0;
    const auto started = Clock::now();
    bool held = false;
    if (o.limit > 0) {
      auto r = c.shared_wait(o.limit, static_cast<std::uint32_t>(chunk), o.lock);
      if (!r) return fail(r.error());
      held = *r > 0;
    } else if (chunk == 0) {
      auto r = c.get(o.lock);  // g: also what the original glockd knows
      if (!r) return fail(r.error());
      held = *r;
    } else {
      auto r = c.wait(static_cast<std::uint32_t>(chunk), o.lock);
      if (!r) return fail(r.error());
      held = *r;
    }
    if (held) return 1;
    const auto spent = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    // A failure well before the wait was up: the daemon would not queue it
    // (one of its limits). Asking again would only spin.
    if (chunk > 0 && spent < chunk / 2) {
      complain("the daemon refused to queue the wait for " + o.lock +
               " (one of its limits: --max-waiters, --max-waiters-per-lock, "
               "--max-locks-per-connection or --max-memory; see its log)");
      return 0;
    }
    if (left) {
      *left -= std::min(*left, std::max(spent, chunk));
      if (*left == 0) return 0;
    }
  }
}

[[noreturn]] void run_child(const ExecOptions& o, const sigset_t& old_mask,
                            const struct sigaction& old_chld, pid_t parent, int report_fd,
                            const std::string& token) {
  // CMD ends with glock: if glock is killed (SIGKILL too), its connection
  // and so the lock are gone, and CMD must not go on without it.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::raise(SIGTERM);  // glock died before prctl
  ::sigaction(SIGCHLD, &old_chld, nullptr);  // CMD gets what glock was given
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (!token.empty()) ::setenv(o.token_env.c_str(), token.c_str(), 1);
  std::vector<char*> argv;
  for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  const int e = errno;
  (void)!::write(report_fd, &e, sizeof e);
  ::_exit(e == ENOENT ? kExitNotFound : kExitCannotRun);
}

// Released explicitly so the daemon counts a release, not an orphan; if
// that fails, closing the connection releases it all the same.
void release(Client& c, const ExecOptions& o) {
  if (o.shared) {
    (void)c.shared_release(o.lock);
  } else {
    (void)c.release(o.lock);
  }
}

// "10", "0.5": std::to_string(double) would say "10.000000".
std::string seconds_text(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", seconds);
  return buf;
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int run_exec(const Common& common, const ExecOptions& o) {
  int code = 0;
  auto conn = connect(common, code);
  if (!conn) return code;
  Client& c = *conn;

  const std::string name = common.name ? *common.name : default_name(o);
  if (!name.empty()) {
    auto r = c.iam(name);
    if (!r && r.error().code != Errc::Disabled && r.error().code != Errc::BadRequest) {
      complain(r.error().message);
      return exit_code_for(r.error());
    }
    if (!r && common.name) complain("warning: not registered as '" + name + "': " + r.error().message);
  }

  const int got = acquire(c, o, code);
  if (got < 0) return code;
  if (got == 0) {
    if (o.limit > 0) {
      complain(o.lock + " is held by " + std::to_string(o.limit) + " other clients (--limit " +
               std::to_string(o.limit) + ")");
    } else if (!o.shared) {
      complain(o.lock + " is held by another client");
    }
    return o.conflict_exit_code;
  }

  std::string token;
  if (!o.token_env.empty()) {
    auto t = c.token(o.lock);
    if (!t) {
      complain(t.error().message);
      return exit_code_for(t.error());
    }
    if (*t == 0) {
      complain("the daemon gave no fencing token for " + o.lock + " though it is held");
      return kExitProtocol;
    }
    token = std::to_string(*t);
  }

  // Signals become events on a signalfd from here on; CMD gets the old mask.
  // SIGCHLD at SIG_IGN (inherited across exec) would have the kernel reap
  // CMD unseen: glock would wait forever, lock held, and signal a pid that
  // may be another process's by then.
  struct sigaction dfl{}, old_chld{};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &dfl, &old_chld);
  sigset_t handled, old_mask;
  sigemptyset(&handled);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&handled, s);
  ::sigprocmask(SIG_BLOCK, &handled, &old_mask);
  const int sfd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    complain(std::string("signalfd: ") + std::strerror(errno));
    return kExitUnavailable;
  }
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    complain(std::string("pipe: ") + std::strerror(errno));
    return kExitUnavailable;
  }
  std::fflush(nullptr);
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    complain(std::string("fork: ") + std::strerror(errno));
    return kExitUnavailable;
  }
  if (child == 0) run_child(o, old_mask, old_chld, parent, report[1], token);
  ::close(report[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    complain(o.command.front() + ": " + std::strerror(exec_errno));
    release(c, o);
    return exec_errno == ENOENT ? kExitNotFound : kExitCannotRun;
  }

  bool lost = false;
  std::optional<Clock::time_point> kill_at;
  for (;;) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {lost ? -1 : c.fd(), POLLIN | POLLRDHUP, 0}};
    int timeout = -1;
    if (kill_at) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*kill_at - Clock::now());
      timeout = static_cast<int>(std::max<long long>(0, left.count()));
    }
    const int ready = ::poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR) {
      complain(std::string("poll: ") + std::strerror(errno));
      ::kill(child, SIGTERM);
    }
    if (kill_at && Clock::now() >= *kill_at) {
      complain("CMD (pid " + std::to_string(child) + ") did not end after SIGTERM; sending SIGKILL");
      ::kill(child, SIGKILL);
      kill_at.reset();
    }
    if (!lost && fds[1].revents != 0) {
      if (auto err = c.check_link()) {
        lost = true;
        if (o.keep_running) {
          complain("lost the lock " + o.lock + ": " + err->message +
                   "; --keep-running: CMD goes on without it");
        } else {
          complain("lost the lock " + o.lock + ": " + err->message +
                   "; stopping CMD (SIGTERM, SIGKILL after " +
                   seconds_text(o.kill_after_seconds) + " s)");
          ::kill(child, SIGTERM);
          kill_at = Clock::now() + std::chrono::milliseconds(
                                       static_cast<long long>(o.kill_after_seconds * 1000));
        }
      }
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGCHLD) continue;
        // A terminal's ^C (and ^\, hangup) goes to the whole foreground
        // process group, CMD included (si_code SI_KERNEL): pass on only
        // what was sent to glock alone, so CMD does not get it twice.
        if (si.ssi_code != SI_KERNEL) ::kill(child, static_cast<int>(si.ssi_signo));
      }
    }
    int status = 0;
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) {
      if (lost) return kExitLost;
      release(c, o);
      return status_code(status);
    }
  }
}

}  // namespace glockd::glock
