// Incremental HTTP/1.1 request-head parser and response builder for the
// websocket/HTTP listener. Pure: no I/O, no clock, no logging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glockd::http {

// Default bound on the request head (request line + headers + blank line).
inline constexpr std::size_t kDefaultMaxHeaderBytes = 8192;

// A parsed request head. Views returned by the accessors point into this
// object's own buffer, so they stay valid while the Request (or the parser
// owning it) lives and is not reset.
class Request {
 public:
  std::string_view method() const { return slice(method_); }
  std::string_view target() const { return slice(target_); }
  int version_minor() const { return version_minor_; }  // 0 or 1 (HTTP/1.x)

  std::size_t header_count() const { return fields_.size(); }
  std::string_view header_name(std::size_t i) const { return slice(fields_[i].name); }
  std::string_view header_value(std::size_t i) const { return slice(fields_[i].value); }

  // First value of the header `name` (ASCII case-insensitive), trimmed of
  // surrounding whitespace; nullopt when absent.
  std::optional<std::string_view> header(std::string_view name) const;
  // How many times `name` appears (duplicates matter for Host, keys, ...).
  std::size_t count(std::string_view name) const;
  // True when any `name` header, read as a comma-separated list, holds
  // `token` (ASCII case-insensitive), e.g. has_token("connection", "upgrade").
  bool has_token(std::string_view name, std::string_view token) const;

 private:
  friend class RequestParser;
  struct Span {
    std::uint32_t off = 0;
    std::uint32_t len = 0;
  };
  struct Field {
    Span name;
    Span value;
  };
  std::string_view slice(Span s) const { return std::string_view(buf_).substr(s.off, s.len); }

  std::string buf_;  // raw head bytes as received
  Span method_, target_;
  int version_minor_ = 1;
  std::vector<Field> fields_;
};

// Feeds bytes as they arrive from any number of reads. Each line is checked
// as soon as it is complete, so garbage (a TLS hello, a port scanner) is
// refused without waiting for the whole head.
//
// Policy, decided here so every caller agrees:
// - HTTP/1.0 and HTTP/1.1 only (other HTTP/x.y: 505; not HTTP at all: 400).
// - Line ends are CRLF or bare LF; a bare CR anywhere else is a 400.
// - Empty lines before the request line are skipped (RFC 9112 section 2.2).
// - Obsolete line folding, whitespace before the colon, control characters
//   and lines without a colon are 400.
// - HTTP/1.1 needs exactly one Host header (RFC 9112 section 3.2); 400 else.
// - GET and HEAD bodies are refused with 400: any Transfer-Encoding, or a
//   Content-Length other than 0 (other methods are left to the caller, which
//   answers 405 without reading a body). None of our endpoints takes a body and the
//   connection is either upgraded (body bytes would be misread as frames) or
//   closed after one answer, so refusing is simpler and safer than skipping.
// - A head larger than max_header_bytes is 431.
class RequestParser {
 public:
  enum class Status : std::uint8_t { NeedMore, Complete, Error };
  struct Result {
    Status status;
    // Bytes of *this* feed() call that belong to the head. On Complete the
    // rest (bytes.substr(consumed)) is not part of the request and belongs
    // to the caller, e.g. a websocket frame sent right after the upgrade.
    // On NeedMore it is bytes.size(); on Error it has no use (answer, close).
    std::size_t consumed;
    int error_status;  // 400, 431 or 505 when status == Error, else 0
  };

  explicit RequestParser(std::size_t max_header_bytes = kDefaultMaxHeaderBytes);

  // After Complete or Error, further calls return the same status and
  // consume nothing until reset().
  Result feed(std::string_view bytes);

  const Request& request() const { return req_; }  // meaningful after Complete
  void reset();

 private:
  Result fail(int status, std::size_t consumed);
  int parse_line(std::size_t begin, std::size_t end);  // returns 0 or an HTTP status
  int parse_request_line(std::size_t begin, std::size_t end);
  int parse_field_line(std::size_t begin, std::size_t end);
  int finish_head();

  std::size_t max_bytes_;
  Status status_ = Status::NeedMore;
  int error_status_ = 0;
  std::size_t line_start_ = 0;   // offset in req_.buf_ of the line being received
  std::size_t total_ = 0;        // head bytes taken so far, skipped empty lines included
  bool seen_request_line_ = false;
  Request req_;
};

// Standard reason phrase for the statuses this server sends ("" if unknown).
std::string_view reason_phrase(int status);

// A full HTTP/1.1 response with Content-Length and `Connection: close`.
// An empty content_type omits the Content-Type header. `extra_headers` is
// inserted verbatim and must be complete "Name: value\r\n" lines.
std::string response(int status, std::string_view reason, std::string_view content_type,
                     std::string_view body, std::string_view extra_headers = {});

// ASCII case-insensitive equality (header names, tokens, origins).
bool iequals(std::string_view a, std::string_view b);

}  // namespace glockd::http
