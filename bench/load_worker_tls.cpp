// The TLS worker (load_worker.hpp): Worker<true>'s TLS steps and its run.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdio>

#include "load_worker.hpp"
#include "tls.hpp"

namespace bench {

namespace {

// The client's side of the handshake, driven by the socket's readiness.
// It succeeds once the client sent its Finished; with TLS 1.3 the server
// checks the client certificate after that, so a refused certificate shows
// as an alert on the first read, and either way the connection counts as
// opened only at its first answer.
template <>
void Worker<true>::handshake(Conn& c, unsigned i) {
  ERR_clear_error();
  const int r = SSL_connect(c.ssl);
  if (r == 1) {
    c.state = Conn::State::Open;
    set_events(c, EPOLLIN, i);
    issue(c);
    return;
  }
  const int e = SSL_get_error(c.ssl, r);
  if (e == SSL_ERROR_WANT_READ) return set_events(c, EPOLLIN, i);
  if (e == SSL_ERROR_WANT_WRITE) return set_events(c, EPOLLOUT, i);
  if (r_.tls_failures++ == 0)
    std::fprintf(stderr, "glockd-loadgen: TLS handshake failed: %s\n",
                 tls_error("the server closed the connection").c_str());
  lost(c);
}

// Every record the socket holds (read-ahead keeps what one recv brought in
// inside OpenSSL, so stop only when it wants more from the socket).
template <>
void Worker<true>::read_tls(Conn& c) {
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(c.ssl, scratch_.get(), static_cast<int>(kScratch));
    if (n > 0) {
      consume(c, std::string_view(scratch_.get(), static_cast<std::size_t>(n)));
      if (c.state != Conn::State::Open) return;
      continue;
    }
    const int e = SSL_get_error(c.ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_SSL && r_.tls_failures++ == 0)
      std::fprintf(stderr, "glockd-loadgen: TLS read failed: %s\n",
                   tls_error("unknown error").c_str());
    return lost(c);  // close_notify, EOF, reset or an alert: the server dropped us
  }
  issue(c);
}

// The batch issue() built is one SSL_write: one TLS record (a batch of 16
// requests is a few hundred bytes, far below the 16 KiB record limit).
template <>
void Worker<true>::flush_tls(Conn& c) {
  const auto i = static_cast<unsigned>(&c - conns_.data());
  while (c.out_off < c.out.size()) {
    ERR_clear_error();
    const int n = SSL_write(c.ssl, c.out.data() + c.out_off,
                            static_cast<int>(c.out.size() - c.out_off));
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    const int e = SSL_get_error(c.ssl, n);
    if (e == SSL_ERROR_WANT_WRITE) {
      if (!c.want_out) {
        c.want_out = true;
        set_events(c, EPOLLIN | EPOLLOUT, i);
      }
      return;
    }
    if (e == SSL_ERROR_WANT_READ) return;  // the next read lets it go on
    return lost(c);
  }
  c.out.clear();
  c.out_off = 0;
  if (c.want_out) {
    c.want_out = false;
    set_events(c, EPOLLIN, i);
  }
}

template <>
void Worker<true>::tls_start(Conn& c, unsigned i) {
  c.ssl = SSL_new(o_.tls);
  SSL_set_fd(c.ssl, c.fd);
  c.state = Conn::State::Handshaking;
  handshake(c, i);
}

template <>
void Worker<true>::tls_close(Conn& c) {
  SSL_free(c.ssl);
  c.ssl = nullptr;
}

}  // namespace

void run_worker_tls(const LoadOptions& o, unsigned first, unsigned count, std::uint64_t budget,
                    const std::atomic<int>& phase, Progress& progress, WorkerResult& result) {
  Worker<true> w(o, first, count, budget, phase, progress, result);
  w.run();
}

}  // namespace bench
