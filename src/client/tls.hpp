// TLS for the client library (tls://host:port), with OpenSSL 3.
//
// TlsContext: the certificate, key and CA files, loaded once and checked
// (load_tls), shared by every connection made with them.
// TlsSession: one TLS connection over a connected socket. It talks to
// OpenSSL through memory BIOs and does the socket I/O itself, non-blocking
// (MSG_DONTWAIT, MSG_NOSIGNAL: a closed peer is an error, never a SIGPIPE),
// so the caller polls with its own deadlines exactly as for plain TCP.
// OpenSSL's headers stay out of here: only its types are named.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "client/address.hpp"
#include "client/io.hpp"
#include "client/result.hpp"

struct ssl_ctx_st;  // SSL_CTX
struct ssl_st;      // SSL
struct bio_st;      // BIO

namespace glockd::client {

struct TlsFiles {
  std::string cert;  // PEM: our certificate, then any intermediates; empty: send none
  std::string key;   // PEM: its private key, unencrypted; empty: the key is in `cert`
  std::string ca;    // PEM: the CA(s) the server must chain to; empty: the system's store
};

class TlsContext {
 public:
  explicit TlsContext(ssl_ctx_st* ctx, bool has_certificate)
      : ctx_(ctx), has_certificate_(has_certificate) {}
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  ssl_ctx_st* get() const { return ctx_; }
  bool has_certificate() const { return has_certificate_; }

 private:
  ssl_ctx_st* ctx_;
  bool has_certificate_;
};

// TLS 1.2 or later, the server verified against `files.ca` (or the system's
// CAs) and, per connection, against the host name or IP address it was
// reached by; our certificate sent when asked. A file that cannot be read
// or used is an Errc::Certificate error naming the file and the problem.
Result<std::shared_ptr<const TlsContext>> load_tls(const TlsFiles& files);

class TlsSession {
 public:
  // A session on `fd` (connected) for reaching `address`; nothing is sent
  // until handshake().
  static Result<std::unique_ptr<TlsSession>> start(int fd, const TlsContext& context,
                                                   const Address& address);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Each returns at once: Moved when done (handshake: complete), else what
  // to wait for before calling again, or why it failed. After End or
  // Failed the session is finished; abandon() also finishes it (no
  // close_notify, e.g. after a timeout).
  Step handshake();
  Step read(char* buf, std::size_t size);
  Step write(std::string_view bytes);  // on WantWrite/WantRead call again with the same bytes
  void abandon() { usable_ = false; }
  // At an orderly end, while the socket is open: our close_notify, sent if
  // it can go at once (the server's is not waited for).
  void close_notify();

 private:
  TlsSession(int fd, ssl_st* ssl, bio_st* in, bio_st* out, bool has_certificate)
      : fd_(fd), ssl_(ssl), in_(in), out_bio_(out), has_certificate_(has_certificate) {}

  void take_output();  // what OpenSSL wrote to out_bio_, into out_
  Step flush();        // out_ to the socket
  Step pump_in();      // flush, then socket -> in_ (Moved: bytes came)
  Step failed(int ret);
  Step sys_failed(int err);

  int fd_;
  ssl_st* ssl_;
  bio_st* in_;       // bytes from the socket for OpenSSL (owned by ssl_)
  bio_st* out_bio_;  // bytes from OpenSSL for the socket (owned by ssl_)
  bool has_certificate_;
  std::string out_;  // ciphertext not yet sent
  std::size_t owed_ = 0;  // plaintext taken by a write() whose ciphertext is still in out_
  bool usable_ = true;
  bool finished_handshake_ = false;
};

}  // namespace glockd::client
