// WebSocketState: what a connection on the websocket/HTTP port carries
// beyond a line connection: the HTTP request head until it is complete,
// then the frame decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "http.hpp"
#include "websocket.hpp"

namespace glockd {

struct WebSocketState {
  enum class Phase : std::uint8_t {
    Http,       // reading the request head (bounded in size and time)
    WebSocket,  // upgraded: frames in, one text message per answer out
    Done,       // answered or closing: ignore further input
  };
  WebSocketState(std::size_t max_header, std::size_t max_message)
      : parser(max_header), decoder(max_message) {}

  Phase phase = Phase::Http;
  http::RequestParser parser;
  ws::Decoder decoder;
  std::vector<ws::Event> events;  // reused between reads
};

}  // namespace glockd
