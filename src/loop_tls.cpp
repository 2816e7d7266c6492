// TLS on the loop: a TLS connection's stream (tls::Stream) sits between
// the ring's recv/send and the framing. Its handshake runs on the loop,
// never blocking it: bounded in CPU per turn (kHandshakeSlice; the rest
// waits its turn, in order) and in time (--ssl-handshake-timeout). A
// failure costs only its own connection, logged rate limited with the
// peer and OpenSSL's reason. SIGHUP reloads the certificates.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;

std::string load_tls(const Config& config, TlsContexts& out) {
  TlsContexts loaded;
  std::string error;
  if (config.ssl) {
    loaded.tcp = tls::Context::load(
        tls::Files{config.ssl_cert, config.ssl_key, config.ssl_ca, "--ssl-ca", config.ssl_crl},
        error);
    if (!loaded.tcp) return error;
  }
  if (config.ws_ssl) {
    // Client certificates on the websocket port only when a CA is given
    // for it: browsers rarely have one.
    loaded.ws = tls::Context::load(
        tls::Files{config.ssl_cert, config.ssl_key, config.ws_ssl_ca, "--ws-ssl-ca",
                   config.ws_ssl_ca.empty() ? std::string() : config.ssl_crl},
        error);
    if (!loaded.ws) return error;
  }
  const tls::Context* any = loaded.tcp ? loaded.tcp.get() : loaded.ws.get();
  if (any != nullptr && any->not_after() != 0 && any->not_after() < std::time(nullptr))
    spdlog::warn("--ssl-cert {}: the certificate (CN={}) has expired: clients will refuse it",
                 config.ssl_cert, any->subject());
  out = std::move(loaded);
  return {};
}

ByteStream* Loop::tls_stream(const std::string& addr, Transport transport) {
  const tls::Context* context = transport == Transport::Tcp  ? tls_.tcp.get()
                                : transport == Transport::Ws ? tls_.ws.get()
                                                             : nullptr;
  if (context == nullptr) return &PlainStream::instance();
  // A handshake costs tens of KiB: at the memory budget new ones wait
  // (the client may retry) rather than push everyone else out.
  tls::Stream* stream = budget_.full() ? nullptr : tls::Stream::make(*context);
  if (stream == nullptr) {
    ++tls_memory_refusals_;
    warn_limited(tls_memory_limit_,
                 addr + ": TLS connection refused: the memory budget (--max-memory) is full");
  }
  return stream;
}

void Loop::tls_input(Connection& c, std::string_view wire) {
  ByteStream& s = c.stream();
  // Handshakes take their turn: past this turn's slice, or behind others
  // already waiting, the bytes are kept and the handshake goes on later.
  if (!s.established() &&
      (c.handshake_queued || !handshake_backlog_.empty() ||
       handshake_spent_ns_ >= std::chrono::nanoseconds(kHandshakeSlice).count())) {
    s.hold(wire);
    if (!c.handshake_queued) {
      c.handshake_queued = true;
      ++tls_deferrals_;
      handshake_backlog_.emplace_back(c.session.id, c.gen);
    }
    if (!s.failure().empty()) tls_failed(c);
    return;
  }
  tls_step(c, wire);
}

void Loop::tls_step(Connection& c, std::string_view wire) {
  ByteStream& s = c.stream();
  std::string_view bytes;
  if (!s.established()) {
    const std::int64_t start = now_ns();
    bytes = s.decode(wire);
    handshake_spent_ns_ += now_ns() - start;
    if (s.established()) handshake_done(c);
  } else {
    bytes = s.decode(wire);
  }
  if (s.has_output()) queue_flush(c);
  if (!bytes.empty()) on_bytes(c, bytes);
  if (!c.open()) return;
  if (!s.failure().empty()) return tls_failed(c);
  if (s.peer_closed()) {
    // close_notify: as at the end of stream, every request sent before it
    // is answered, then ours goes, then FIN.
    serve_queued_now(c);
    if (c.open()) terminate(c, "close_notify from the peer", true);
  }
}

void Loop::serve_deferred_handshakes() {
  std::size_t taken = 0;
  const std::int64_t slice = std::chrono::nanoseconds(kHandshakeSlice).count();
  while (taken < handshake_backlog_.size() && handshake_spent_ns_ < slice) {
    const auto [id, gen] = handshake_backlog_[taken++];
    Connection& c = conns_.at(id);
    if (c.gen != gen || !c.handshake_queued) continue;
    c.handshake_queued = false;
    if (c.open()) tls_step(c, {});
  }
  handshake_backlog_.erase(handshake_backlog_.begin(),
                           handshake_backlog_.begin() + static_cast<std::ptrdiff_t>(taken));
}

void Loop::handshake_done(Connection& c) {
  ++tls_handshakes_;
  disarm_deadline(c, Deadline::Handshake);
  if (config_.ssl_subject_name) {
    const std::string name = c.stream().peer_name();
    if (!name.empty()) protocol_->name_from_certificate(c.session, name);
  }
  if (config_.verbose)
    spdlog::debug("{} TLS handshake done{}", c.session.addr,
                  c.stream().peer_name().empty() ? "" : " (CN=" + c.stream().peer_name() + ")");
}

void Loop::tls_failed(Connection& c) {
  const bool in_handshake = !c.stream().established();
  if (in_handshake) ++tls_failures_;
  warn_limited(tls_failure_limit_, c.session.addr + (in_handshake ? ": TLS handshake failed: "
                                                                   : ": TLS failed: ") +
                                       c.stream().failure());
  // Its alert (if any) still goes out, then FIN.
  terminate(c, "TLS failure", true);
}

void Loop::handshake_timeout(Connection& c) {
  if (!c.open()) return;
  ++tls_timeouts_;
  warn_limited(tls_timeout_limit_,
               c.session.addr + ": TLS handshake not finished within " +
                   std::to_string(config_.ssl_handshake_timeout_seconds) +
                   " s (--ssl-handshake-timeout); dropped");
  terminate(c, "TLS handshake timeout");
}

void Loop::reload_tls(std::uint32_t pid) {
  if (!config_.tls_anywhere()) {
    std::uint64_t suppressed = 0;
    if (sighup_limit_.allow(suppressed))
      spdlog::info("received SIGHUP from pid {}: no TLS configured, nothing to reload; still "
                   "serving, every lock kept{}",
                   pid, suppressed > 0 ? fmt::format(" ({} more not logged)", suppressed) : "");
    return;
  }
  // Files are read again whatever the rate: the last SIGHUP must win.
  TlsContexts fresh;
  if (std::string error = load_tls(config_, fresh); !error.empty()) {
    ++tls_reload_failures_;
    spdlog::error("SIGHUP from pid {}: TLS reload failed: {}; keeping the certificates loaded "
                  "before",
                  pid, error);
    return;
  }
  tls_ = std::move(fresh);  // open connections keep the context they started with
  ++tls_reloads_;
  const tls::Context& now = tls_.tcp ? *tls_.tcp : *tls_.ws;
  const std::time_t until = static_cast<std::time_t>(now.not_after());
  std::tm tm{};
  ::gmtime_r(&until, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
  spdlog::info("SIGHUP from pid {}: reloaded TLS certificates (CN={}, valid until {} UTC); new "
               "connections use them, open ones go on",
               pid, now.subject(), date);
}

}  // namespace glockd
