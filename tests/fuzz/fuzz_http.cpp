// libFuzzer target for the HTTP request-head parser and the upgrade check:
// any byte stream, fed whole or split at input-chosen points, must give the
// same outcome and the same request, and what is accepted must be well formed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http.hpp"
#include "websocket.hpp"

namespace {

using glockd::http::Request;
using glockd::http::RequestParser;
using Status = RequestParser::Status;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  Status status = Status::NeedMore;
  int error_status = 0;
  std::size_t consumed = 0;  // total over all calls; meaningful when Complete
};

Outcome feed_split(RequestParser& p, std::string_view in, std::uint32_t seed) {
  Outcome o;
  std::size_t pos = 0;
  do {
    seed = seed * 1664525u + 1013904223u;
    const std::size_t n = std::min<std::size_t>(in.size() - pos, (seed >> 24) % 19);
    const auto r = p.feed(in.substr(pos, n));
    pos += n;
    o.status = r.status;
    o.error_status = r.error_status;
    o.consumed += r.consumed;
    if (r.status == Status::NeedMore) check(r.consumed == n);
    if (r.status == Status::Complete) check(r.consumed <= n);
  } while (pos < in.size() && o.status == Status::NeedMore);
  return o;
}

bool is_tchar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void check_request(const Request& r, std::string_view in, std::size_t consumed) {
  check(!r.method().empty() && !r.target().empty());
  for (const char c : r.method()) check(is_tchar(c));
  for (const char c : r.target()) check(c > 0x20 && c < 0x7f);
  check(r.version_minor() == 0 || r.version_minor() == 1);
  const std::string_view head = in.substr(0, consumed);
  check(head.size() >= 2 && head.back() == '\n');
  for (std::size_t i = 0; i < r.header_count(); ++i) {
    const std::string_view name = r.header_name(i);
    const std::string_view value = r.header_value(i);
    check(!name.empty());
    for (const char c : name) check(is_tchar(c));
    for (const char c : value) check(c == '\t' || static_cast<unsigned char>(c) >= 0x20);
    check(value.find('\x7f') == std::string_view::npos);
    check(value.empty() || (value.front() != ' ' && value.front() != '\t' &&
                            value.back() != ' ' && value.back() != '\t'));
    // Lookup finds the first field with that name, whatever its case.
    const auto first = r.header(name);
    check(first.has_value());
    std::size_t j = 0;
    while (!glockd::http::iequals(r.header_name(j), name)) ++j;
    check(*first == r.header_value(j));
    check(r.count(name) >= 1);
  }
  // HTTP/1.1 needs exactly one Host, 1.0 at most one; no bodies are accepted.
  check(r.version_minor() == 1 ? r.count("host") == 1 : r.count("host") <= 1);
  check(r.count("transfer-encoding") == 0);
}

void check_upgrade(const Request& r) {
  using Kind = glockd::ws::UpgradeDecision::Kind;
  static const std::vector<std::string> allowed = {"https://ok.example"};
  for (const bool restrict : {false, true}) {
    const auto d = glockd::ws::check_upgrade(
        r, restrict ? std::span<const std::string>(allowed) : std::span<const std::string>());
    const bool attempt = r.has_token("upgrade", "websocket");
    check(attempt == (d.kind != Kind::PlainHttp));
    switch (d.kind) {
      case Kind::PlainHttp: check(d.status == 0 && d.response.empty()); break;
      case Kind::Upgrade: {
        check(d.status == 101 && r.method() == "GET" && r.version_minor() == 1);
        const std::string accept = glockd::ws::accept_key(*r.header("sec-websocket-key"));
        check(d.response.find("\r\nSec-WebSocket-Accept: " + accept + "\r\n") != std::string::npos);
        for (std::size_t i = 0; restrict && i < r.header_count(); ++i) {
          if (glockd::http::iequals(r.header_name(i), "origin")) {
            check(glockd::http::iequals(r.header_value(i), allowed[0]));
          }
        }
        break;
      }
      case Kind::Reject:
        check(d.status == 400 || d.status == 426 || (restrict && d.status == 403));
        check(d.response.rfind("HTTP/1.1 " + std::to_string(d.status) + " ", 0) == 0);
        break;
    }
  }
}

}  // namespace

// Well-formed starts the fuzzer may build on, so that short runs without a
// corpus (as in the meson test) still reach the header and upgrade checks.
constexpr std::string_view kPrefixes[] = {
    "",
    "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    "GET /metrics HTTP/1.1\r\nHost: localhost\r\n",
    "",
};

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  // Byte 0 picks the head limit (small ones reach 431 often), bytes 1-2 the
  // read splits, byte 3 a well-formed prefix for the rest.
  const std::size_t max = 8 + std::size_t{data[0]} * 16;
  const std::uint32_t seed = data[1] | (std::uint32_t{data[2]} << 8);
  std::string input(kPrefixes[data[3] % 4]);
  input.append(reinterpret_cast<const char*>(data) + 4, size - 4);
  const std::string_view in = input;

  RequestParser whole(max);
  const auto w = whole.feed(in);
  check(w.consumed <= in.size());
  if (w.status == Status::NeedMore) check(w.consumed == in.size() && w.error_status == 0);
  if (w.status == Status::Error) {
    check(w.error_status == 400 || w.error_status == 431 || w.error_status == 505);
  }
  if (w.status == Status::Complete) {
    check(w.consumed <= max && w.error_status == 0);
    check_request(whole.request(), in, w.consumed);
    check_upgrade(whole.request());
  }

  RequestParser split(max);
  const Outcome s = feed_split(split, in, seed);
  check(s.status == w.status && s.error_status == w.error_status);
  if (w.status == Status::Complete) {
    check(s.consumed == w.consumed);
    const Request& a = whole.request();
    const Request& b = split.request();
    check(a.method() == b.method() && a.target() == b.target() &&
          a.version_minor() == b.version_minor() && a.header_count() == b.header_count());
    for (std::size_t i = 0; i < a.header_count(); ++i) {
      check(a.header_name(i) == b.header_name(i) && a.header_value(i) == b.header_value(i));
    }
  }

  // reset() gives a parser that behaves like a new one.
  whole.reset();
  const auto again = whole.feed(in);
  check(again.status == w.status && again.error_status == w.error_status &&
        (w.status != Status::Complete || again.consumed == w.consumed));
  return 0;
}
