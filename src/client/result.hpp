// Result<T>: a value or an Error with a message, the client library's way of
// reporting failure (no exceptions; like hiredis's err/errstr, per call).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace glockd::client {

enum class Errc {
  Usage,       // the caller asked for something the protocol cannot carry
  Address,     // the server address does not parse
  Connect,     // no connection could be made (TLS: no handshake either)
  Certificate, // a TLS certificate, key or CA file cannot be read or used
  Io,          // the connection failed (reset, timed out by the kernel)
  Closed,      // the daemon closed the connection
  Timeout,     // no (complete) answer within the request deadline
  Protocol,    // an answer this library does not understand
  Disabled,    // the daemon has the feature turned off ("0 disabled")
  BadRequest,  // "0 Bad Request: REASON" (REASON is in the message)
};

const char* errc_name(Errc code);

struct Error {
  Errc code;
  std::string message;
};

struct Done {};  // the value of a call that only succeeds or fails

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace glockd::client
