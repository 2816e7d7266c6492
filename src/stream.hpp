// ByteStream: the layer between the socket and the framing. A plain socket
// passes bytes through; TLS (to come) decrypts what is read and encrypts
// what is sent, and is one more implementation of this interface.
#pragma once

#include <memory>
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
  // A stateless layer is one object shared by every connection.
  virtual bool shared() const { return false; }
};

// Owns a layer unless it is a shared one (a connection costs no allocation
// for a plain socket with lines).
template <class Layer>
struct DeleteUnlessShared {
  void operator()(Layer* layer) const {
    if (!layer->shared()) delete layer;
  }
};
template <class Layer>
using LayerPtr = std::unique_ptr<Layer, DeleteUnlessShared<Layer>>;

class PlainStream final : public ByteStream {
 public:
  static PlainStream& instance() {
    static PlainStream one;
    return one;
  }
  bool shared() const override { return true; }
  std::string_view decode(std::string_view wire) override { return wire; }
  void encode(std::string& plain, std::string& wire) override {
    if (wire.empty()) wire.swap(plain);  // no copy on the usual path
    else wire.append(plain);
    plain.clear();
  }
};

}  // namespace glockd
