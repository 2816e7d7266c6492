// TLS with OpenSSL 3: a Context (certificate, key, the CAs that sign client
// certificates, their CRLs) loaded from PEM files, and a Stream, the byte
// stream of one TLS connection. The Stream never touches the socket: the
// ring's recv hands it ciphertext, and what it has to send (handshake,
// alerts, records) goes into the connection's send buffer, both through a
// BIO of ours, so the handshake never blocks the loop. Why not kernel TLS:
// docs/DESIGN.md.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "stream.hpp"

namespace glockd::tls {

// Counts what OpenSSL allocates, so its memory counts in --max-memory.
// Must run before any other OpenSSL call; false if too late.
bool count_allocations();
std::size_t allocated();

// OpenSSL's reason for its last failure; its error queue is emptied (it is
// per thread: a reason left there would be blamed on the next connection).
std::string openssl_reason();
// A certificate's subject CN as one line of printable text (at most 256
// bytes), or empty.
std::string common_name(X509* cert);

// What a context is made of, and the flags that name each file in errors.
struct Files {
  std::string cert, key;  // --ssl-cert, --ssl-key
  std::string ca;         // client certificates required and verified when set
  const char* ca_flag = "--ssl-ca";
  std::string crl;        // --ssl-crl (only with a CA)
};

class Context {
 public:
  // Reads and checks every file; null with `error` naming the flag, the
  // file and the problem when one is missing, unreadable, malformed,
  // mismatched or refused by OpenSSL's security level.
  static std::unique_ptr<Context> load(const Files& files, std::string& error);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  SSL_CTX* get() const { return ctx_; }
  // The server certificate's notAfter (unix time), subject CN.
  std::int64_t not_after() const { return not_after_; }
  const std::string& subject() const { return subject_; }

 private:
  explicit Context(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  std::int64_t not_after_ = 0;
  std::string subject_;
};

// One connection's TLS: the server side of the handshake, then records.
// OpenSSL reads and writes through a BIO of ours (tls_stream.cpp): the
// ciphertext is read straight from the ring's receive buffer, and records
// are written straight into the connection's send buffer.
class Stream final : public ByteStream {
 public:
  // Null when OpenSSL cannot allocate the connection's state.
  static Stream* make(const Context& context);
  ~Stream() override;

  bool established() const override { return established_; }
  bool has_output() const override { return !pending_out_.empty(); }
  const std::string& failure() const override { return failure_; }
  bool peer_closed() const override { return peer_closed_; }
  void hold(std::string_view wire) override;
  void close(std::string& wire) override;
  std::string peer_name() const override;
  void free_buffers() override { SSL_free_buffers(ssl_); }

 private:
  friend struct StreamBio;
  explicit Stream(SSL* ssl) : ByteStream(false), ssl_(ssl) {}
  std::string_view unwrap(std::string_view wire) override;
  void wrap(std::string& app, std::string& wire) override;
  bool check_input(std::string_view wire);
  void fail(int ret);
  // Where OpenSSL's writes go: `out` for the duration of a call, else
  // pending_out_ (what a handshake step has to send).
  void write_to(std::string& out);

  SSL* ssl_;
  std::string_view in_;      // ciphertext being decoded (the ring's buffer)
  std::string held_;         // ciphertext kept for later (a deferred handshake)
  std::string* out_ = nullptr;
  std::string pending_out_;  // ciphertext made outside encode(): handshake, alerts
  std::size_t handshake_input_ = 0;  // bytes received before the handshake ended
  bool seen_input_ = false;
  bool established_ = false;
  bool peer_closed_ = false;
  bool close_sent_ = false;
  std::string failure_;
};

// Bytes a client may send before its handshake is over (a ClientHello,
// a certificate chain); past it the handshake fails.
inline constexpr std::size_t kMaxHandshakeInput = 64 * 1024;

}  // namespace glockd::tls
