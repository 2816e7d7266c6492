// ByteStream: the layer between the socket and the framing. A plain socket
// passes bytes through; TLS (tls.hpp) decrypts what is read and encrypts
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
  std::string_view decode(std::string_view wire) {
    return transparent_ ? wire : unwrap(wire);
  }
  // The application's bytes to send (consumed) become bytes for the socket,
  // appended to `wire`.
  void encode(std::string& app, std::string& wire) {
    if (transparent_ && wire.empty()) wire.swap(app);  // no copy on the usual path
    else wrap(app, wire);
  }
  // A transparent stream (a plain socket) is one object shared by every
  // connection, and costs no call per read or send.
  bool shared() const { return transparent_; }

  // --- a stream with a state of its own (TLS); the loop asks only when
  // the stream is not shared, so a plain socket pays nothing for these.
  // Its handshake is over (a plain socket has none).
  virtual bool established() const { return true; }
  // It has bytes of its own to send (handshake, alerts): encode() takes
  // them, with the application's bytes or without.
  virtual bool has_output() const { return false; }
  // Why it failed (the connection is over), or empty.
  virtual const std::string& failure() const {
    static const std::string none;
    return none;
  }
  // The peer ended the stream (TLS close_notify): nothing more will come.
  virtual bool peer_closed() const { return false; }
  // Keeps bytes read from the socket to be decoded later (decode({})): a
  // handshake waiting for the loop's next turn.
  virtual void hold(std::string_view) {}
  // The stream's own closing bytes (close_notify), appended to `wire`.
  virtual void close(std::string&) {}
  // The peer's name as its certificate gives it (the subject CN), or empty.
  virtual std::string peer_name() const { return {}; }

 protected:
  explicit ByteStream(bool transparent) : transparent_(transparent) {}
  virtual std::string_view unwrap(std::string_view wire) = 0;
  virtual void wrap(std::string& app, std::string& wire) = 0;

 private:
  bool transparent_;
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

 private:
  PlainStream() : ByteStream(true) {}
  std::string_view unwrap(std::string_view wire) override { return wire; }
  void wrap(std::string& app, std::string& wire) override {
    wire.append(app);
    app.clear();
  }
};

}  // namespace glockd
