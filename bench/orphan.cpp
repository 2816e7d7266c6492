// Orphan mode: a holder takes N locks (pipelined), then dies; a watcher
// connection polls `q` back to back until `locks` is back where it was,
// which times the server's release of a dead client's locks.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "modes.hpp"
#include "stats.hpp"

namespace bench {

namespace {

constexpr std::string_view kEnd = "bench:end-of-q";

// `locks` from one `q` answer; -1 when the server did not answer in time.
long query_locks(int fd, double timeout_s) {
  static const std::string request = "q\n" + line_request("i", kEnd);
  std::string in;
  const bool ok = exchange(
      fd, request, in,
      [](const std::string& s) {
        return s.size() > kEnd.size() && s.back() == '\n' &&
               s.find(kEnd) != std::string::npos;
      },
      timeout_s);
  if (!ok) return -1;
  const std::size_t at = in.find("\nlocks: ");
  if (at == std::string::npos) return -1;
  return std::stol(in.substr(at + 8));
}

// Takes `locks` locks on a new connection; returns how many were granted.
long take_locks(const Target& t, unsigned locks, double timeout_s, int& fd_out) {
  std::string error;
  const int fd = connect_retry(t, timeout_s, error);
  fd_out = fd;
  if (fd < 0) return -1;
  std::string req;
  for (unsigned i = 0; i < locks; ++i) req += line_request("g", "bench:orphan" + std::to_string(i));
  std::string in;
  std::size_t scanned = 0, lines = 0;
  const bool ok = exchange(
      fd, req, in,
      [&](const std::string& s) {
        for (; scanned < s.size(); ++scanned) lines += s[scanned] == '\n';
        return lines >= locks;
      },
      timeout_s);
  if (!ok) return -1;
  long granted = 0;
  parse_replies(Proto::Line, in, [&](Reply r) { granted += r == Reply::Ok; });
  return granted;
}

}  // namespace

int run_orphan(const OrphanOptions& o) {
  std::string error;
  const int watcher = connect_retry(o.target, o.timeout_s, error);
  if (watcher < 0) {
    std::fprintf(stderr, "glockd-loadgen: %s\n", error.c_str());
    return 1;
  }
  const long base = query_locks(watcher, o.timeout_s);
  if (base < 0) {
    std::fprintf(stderr, "glockd-loadgen: no `locks:` in the answer to q\n");
    return 1;
  }

  pid_t child = -1;
  int holder = -1;
  long granted = -1;
  if (o.kill_process) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return 1;
    child = ::fork();
    if (child == 0) {
      ::close(pipefd[0]);
      int fd = -1;
      const long g = take_locks(o.target, o.locks, o.timeout_s, fd);
      (void)!::write(pipefd[1], &g, sizeof g);
      // Bounded: wait to be killed, but never outlive the timeout.
      std::this_thread::sleep_for(std::chrono::duration<double>(o.timeout_s));
      ::_exit(0);
    }
    ::close(pipefd[1]);
    pollfd p{pipefd[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(o.timeout_s * 1000)) == 1 &&
        ::read(pipefd[0], &granted, sizeof granted) != sizeof granted)
      granted = -1;
    ::close(pipefd[0]);
  } else {
    granted = take_locks(o.target, o.locks, o.timeout_s, holder);
  }
  const long held = query_locks(watcher, o.timeout_s);
  if (granted != static_cast<long>(o.locks) || held != base + granted) {
    std::fprintf(stderr, "glockd-loadgen: the holder got %ld of %u locks; q says %ld (was %ld)\n",
                 granted, o.locks, held, base);
    if (child > 0) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
    }
    if (holder >= 0) ::close(holder);
    return 1;
  }

  const std::uint64_t t0 = now_ns();
  if (child > 0) ::kill(child, SIGKILL);
  else close_abortive(holder);
  const std::uint64_t deadline = t0 + static_cast<std::uint64_t>(o.timeout_s * 1e9);
  unsigned polls = 0;
  long locks = held;
  std::uint64_t t1 = 0, first_change = 0, reaped = 0;
  while (now_ns() < deadline) {
    // When the kernel has finished the holder off (its socket is closed by then).
    if (child > 0 && reaped == 0 && ::waitpid(child, nullptr, WNOHANG) == child) reaped = now_ns();
    locks = query_locks(watcher, o.timeout_s);
    ++polls;
    if (locks < 0) break;
    if (first_change == 0 && locks < held) first_change = now_ns();
    if (locks <= base) {
      t1 = now_ns();
      break;
    }
    if (o.poll_interval_us > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(o.poll_interval_us));
  }
  if (child > 0 && reaped == 0) {
    ::waitpid(child, nullptr, 0);
    reaped = now_ns();
  }
  ::close(watcher);
  if (t1 == 0) {
    std::fprintf(stderr, "glockd-loadgen: locks still %ld after %.1f s (%u polls)\n", locks,
                 o.timeout_s, polls);
    std::printf("RESULT mode=orphan locks=%u released=0 orphan_ms=-1 polls=%u\n", o.locks, polls);
    return 1;
  }
  const double ms = static_cast<double>(t1 - t0) / 1e6;
  const double poll_us = static_cast<double>(t1 - t0) / 1e3 / polls;
  const double first_ms = first_change ? static_cast<double>(first_change - t0) / 1e6 : ms;
  // Seen dead at the first poll after its exit (or when awaited afterwards).
  const double dead_ms = child > 0 ? static_cast<double>(reaped - t0) / 1e6 : 0;
  std::printf("%u locks of a %s holder free %.3f ms after its %s (first drop seen at %.3f ms; "
              "holder reaped at %.3f ms); %u polls of q, one every %.1f us\n",
              o.locks, o.kill_process ? "killed" : "reset", ms,
              o.kill_process ? "SIGKILL" : "RST close", first_ms, dead_ms, polls, poll_us);
  std::printf("RESULT mode=orphan locks=%u released=1 orphan_ms=%.3f first_drop_ms=%.3f "
              "holder_reaped_ms=%.3f polls=%u poll_us=%.1f kill=%s\n",
              o.locks, ms, first_ms, dead_ms, polls, poll_us, o.kill_process ? "sigkill" : "rst");
  std::fflush(stdout);
  return 0;
}

}  // namespace bench
