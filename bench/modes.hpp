// The load generator's modes besides closed-loop load: ping (wait until a
// server answers), idle (RSS per idle connection holding a lock) and
// orphan (time from a holder's death until its locks are free), plus the
// small blocking client they share.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "workload.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace bench {

// Connects within timeout_s (retrying while the server is not up yet).
int connect_retry(const Target& t, double timeout_s, std::string& error);
// Sends all of `out`, then reads into `in` until done(in) or the timeout.
bool exchange(int fd, std::string_view out, std::string& in,
              const std::function<bool(const std::string&)>& done, double timeout_s);

struct PingOptions {
  Target target;
  Proto proto = Proto::Line;
  double timeout_s = 10;
  ssl_ctx_st* tls = nullptr;  // not null: ping over TLS
};
int run_ping(const PingOptions& o);

struct IdleOptions {
  Target target;
  Proto proto = Proto::Line;
  unsigned connections = 1000;
  unsigned open_window = 128;
  double settle_s = 0.5;  // pause before reading the server's RSS
  double hold_s = 0;      // keep the connections open this long afterwards
  double timeout_s = 120;
  pid_t server_pid = 0;
};
int run_idle(const IdleOptions& o);

struct OrphanOptions {
  Target target;
  unsigned locks = 10000;
  bool kill_process = true;  // false: close the holder's socket with RST in-process
  unsigned poll_interval_us = 0;
  double timeout_s = 30;
};
int run_orphan(const OrphanOptions& o);

// Connection set-up cost (handshake.cpp): `connections` slots each loop
// connect, handshake (with tls), one request, its answer, RST.
struct HandshakeOptions {
  Target target;
  ssl_ctx_st* tls = nullptr;  // null: plain TCP, the baseline
  bool tls_resume = false;
  unsigned connections = 16;
  unsigned threads = 1;
  double warmup_s = 1.0;
  double duration_s = 5.0;
  std::uint64_t count = 0;  // > 0: this many connections, no warm-up (the smoke test)
  pid_t server_pid = 0;
};
int run_handshakes(const HandshakeOptions& o);

}  // namespace bench
