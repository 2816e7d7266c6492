// ByteStream: the layer between the socket and the framing. A plain socket
// passes bytes through; TLS (to come) decrypts what is read and encrypts
// what is sent, and is one more implementation of this interface.
#pragma once

#include <string>
#include <string_view>

namespace glockd {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Bytes read from the socket; returns the application's bytes among them
  // (valid until the next call).
  virtual std::string_view decode(std::string_view wire) = 0;
  // The application's bytes to send (consumed) become bytes for the socket,
  // appended to `wire`.
  virtual void encode(std::string& plain, std::string& wire) = 0;
};

class PlainStream final : public ByteStream {
 public:
  std::string_view decode(std::string_view wire) override { return wire; }
  void encode(std::string& plain, std::string& wire) override {
    if (wire.empty()) wire.swap(plain);  // no copy on the usual path
    else wire.append(plain);
    plain.clear();
  }
};

}  // namespace glockd
