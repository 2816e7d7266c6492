// glockd-loadgen: the benchmark's load generator (bench/README.md). Parses
// the command line, raises its own open-file limit, runs one mode and
// prints a human summary plus one machine-readable `RESULT k=v ...` line.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "load.hpp"
#include "modes.hpp"
#include "tls.hpp"

using namespace bench;

namespace {

const char* kUsage = R"(usage: glockd-loadgen [options]
target (this machine only):
  --host 127.0.0.1|::1|localhost   (default 127.0.0.1)   --port N (default 9999)
  --unix PATH                      a unix socket instead of TCP
  --proto line|resp                glockd line protocol (default) or RESP for Redis
                                   (resp: SET key 1 NX takes, DEL key releases)
modes:
  --mode load     closed-loop load (default)
  --mode idle     N connections each take a lock and sit idle; server RSS per connection
  --mode orphan   a holder takes --locks locks and dies; time until q shows them free
  --mode ping     wait until the server answers (--timeout S)
  --mode handshake  --connections slots each loop connect, TLS handshake, one request,
                  RST: connections per second and server CPU per connection
load:
  --workload gr|contend|i|sgsr|wait   g/r own key | g/r over --keys shared keys | i own key
                                   | sg/sr own key | `w --wait-ms KEY`/r over --keys keys
  --connections N (50)  --depth D requests in flight per connection (1)  --threads T (1)
  --duration S (5) after --warmup S (1), or --requests N (whole run, no warmup)
  --keys K (16)  --wait-ms MS (100)  --open-window N (128)  --drain S (2)
  --server-pid PID                 sample the server's utime+stime: CPU per request
idle:   --connections N  --server-pid PID (VmRSS)  --hold S (0)  --settle S (0.5)
orphan: --locks N (10000)  --kill sigkill|rst  --poll-interval-us N (0: back to back)
        --timeout S (30)
handshake: --connections N (16)  --threads T  --duration S after --warmup S, or
        --requests N (this many connections)  --server-pid PID  --tls-resume 0|1 (0)
TLS (load, handshake and ping modes, TCP only; glockd --ssl):
  --tls-ca FILE      turns TLS on; verifies the server's certificate (chain and address)
  --tls-cert FILE --tls-key FILE   the client certificate and its key
  --tls-version 1.2|1.3            (default: either, the server picks)
  In load mode each batch of requests is one SSL_write (one TLS record).
)";

bool take(std::map<std::string, std::string>& args, const char* key, std::string& out) {
  auto it = args.find(key);
  if (it == args.end()) return false;
  out = it->second;
  args.erase(it);
  return true;
}

template <class T>
bool number(std::map<std::string, std::string>& args, const char* key, T& out) {
  std::string v;
  if (!take(args, key, v)) return true;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || d < 0) {
    std::fprintf(stderr, "glockd-loadgen: --%s needs a non-negative number, got '%s'\n", key,
                 v.c_str());
    return false;
  }
  out = static_cast<T>(d);
  return true;
}

void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

unsigned fd_budget() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur > 16 ? static_cast<unsigned>(rl.rlim_cur - 16) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      std::fprintf(stderr, "glockd-loadgen: unexpected argument '%s'\n%s", a.c_str(), kUsage);
      return 2;
    }
    a = a.substr(2);
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      args[a.substr(0, eq)] = a.substr(eq + 1);
    } else if (i + 1 < argc) {
      args[a] = argv[++i];
    } else {
      std::fprintf(stderr, "glockd-loadgen: --%s needs a value\n", a.c_str());
      return 2;
    }
  }
  raise_fd_limit();

  std::string mode = "load", host = "127.0.0.1", unix_path, proto = "line", workload = "gr";
  std::string kill = "sigkill";
  const bool args_had_connections = args.count("connections") > 0;
  int port = 9999;
  take(args, "mode", mode);
  take(args, "host", host);
  take(args, "unix", unix_path);
  take(args, "proto", proto);
  take(args, "workload", workload);
  take(args, "kill", kill);
  TlsOptions tls;
  take(args, "tls-ca", tls.ca);
  take(args, "tls-cert", tls.cert);
  take(args, "tls-key", tls.key);
  take(args, "tls-version", tls.version);
  unsigned tls_resume = 0;
  LoadOptions lo;
  IdleOptions io;
  OrphanOptions oo;
  PingOptions po;
  unsigned pid = 0;
  double timeout = -1;
  bool ok = number(args, "port", port) && number(args, "connections", lo.connections) &&
            number(args, "depth", lo.depth) && number(args, "threads", lo.threads) &&
            number(args, "duration", lo.duration_s) && number(args, "warmup", lo.warmup_s) &&
            number(args, "requests", lo.requests) && number(args, "keys", lo.keys) &&
            number(args, "wait-ms", lo.wait_ms) && number(args, "open-window", lo.open_window) &&
            number(args, "drain", lo.drain_s) && number(args, "server-pid", pid) &&
            number(args, "hold", io.hold_s) && number(args, "settle", io.settle_s) &&
            number(args, "locks", oo.locks) &&
            number(args, "poll-interval-us", oo.poll_interval_us) &&
            number(args, "timeout", timeout) && number(args, "tls-resume", tls_resume);
  tls.resume = tls_resume != 0;
  if (!ok) return 2;
  if (!args.empty()) {
    std::fprintf(stderr, "glockd-loadgen: unknown option --%s\n%s", args.begin()->first.c_str(),
                 kUsage);
    return 2;
  }
  Target target;
  std::string error;
  if (!make_target(host, port, unix_path, target, error)) {
    std::fprintf(stderr, "glockd-loadgen: %s\n", error.c_str());
    return 2;
  }
  Proto p = Proto::Line;
  if (proto == "resp") p = Proto::Resp;
  else if (proto != "line") {
    std::fprintf(stderr, "glockd-loadgen: --proto is line or resp\n");
    return 2;
  }
  if (lo.depth == 0 || lo.connections == 0 || lo.threads == 0 || lo.open_window == 0) {
    std::fprintf(stderr, "glockd-loadgen: --depth, --connections, --threads and "
                         "--open-window must be at least 1\n");
    return 2;
  }
  if (lo.connections > fd_budget()) {
    std::fprintf(stderr, "glockd-loadgen: %u connections need more descriptors than the "
                         "open-file limit allows (%u usable)\n", lo.connections, fd_budget());
    return 2;
  }

  SslCtx ctx;
  if (tls.enabled() || !tls.cert.empty() || !tls.key.empty() || !tls.version.empty() ||
      tls.resume) {
    if (!tls.enabled() || !unix_path.empty()) {
      std::fprintf(stderr, "glockd-loadgen: TLS needs --tls-ca FILE and a TCP target "
                           "(not --unix)\n");
      return 2;
    }
    if (mode != "load" && mode != "ping" && mode != "handshake") {
      std::fprintf(stderr, "glockd-loadgen: --mode %s has no TLS\n", mode.c_str());
      return 2;
    }
    ctx = make_client_ctx(tls, host == "::1" ? "::1" : "127.0.0.1", error);
    if (!ctx) {
      std::fprintf(stderr, "glockd-loadgen: %s\n", error.c_str());
      return 2;
    }
  }
  if (mode == "handshake") {
    HandshakeOptions ho;
    ho.target = target;
    ho.tls = ctx.get();
    ho.tls_resume = tls.resume;
    ho.connections = args_had_connections ? lo.connections : 16;
    ho.threads = lo.threads;
    ho.warmup_s = lo.warmup_s;
    ho.duration_s = lo.duration_s;
    ho.count = lo.requests;
    ho.server_pid = static_cast<pid_t>(pid);
    return run_handshakes(ho);
  }
  if (mode == "ping") {
    po.target = target;
    po.proto = p;
    po.tls = ctx.get();
    if (timeout >= 0) po.timeout_s = timeout;
    return run_ping(po);
  }
  if (mode == "idle") {
    io.target = target;
    io.proto = p;
    io.connections = lo.connections;
    io.open_window = lo.open_window;
    io.server_pid = static_cast<pid_t>(pid);
    if (timeout >= 0) io.timeout_s = timeout;
    return run_idle(io);
  }
  if (mode == "orphan") {
    if (p != Proto::Line) {
      std::fprintf(stderr, "glockd-loadgen: orphan mode speaks the glockd line protocol only\n");
      return 2;
    }
    oo.target = target;
    oo.kill_process = kill != "rst";
    if (timeout >= 0) oo.timeout_s = timeout;
    return run_orphan(oo);
  }
  if (mode != "load") {
    std::fprintf(stderr, "glockd-loadgen: unknown --mode %s\n%s", mode.c_str(), kUsage);
    return 2;
  }
  if (!parse_workload(workload, lo.workload)) {
    std::fprintf(stderr, "glockd-loadgen: unknown --workload %s\n", workload.c_str());
    return 2;
  }
  if (lo.workload == Workload::Wait)
    lo.drain_s = std::max(lo.drain_s, lo.depth * lo.wait_ms / 1000.0 + 1.0);
  lo.target = target;
  lo.proto = p;
  lo.tls = ctx.get();
  lo.server_pid = static_cast<pid_t>(pid);
  if (timeout >= 0) lo.open_timeout_s = timeout;
  return run_load(lo);
}
