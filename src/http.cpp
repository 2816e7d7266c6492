// Incremental HTTP/1.1 request-head parser and response builder (see http.hpp
// for the policy on what is refused and why).
#include "http.hpp"

#include <algorithm>
#include <cstring>

namespace glockd::http {
namespace {

constexpr int kBadRequest = 400;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// RFC 9110 section 5.6.2 tchar: what a method or a header name is made of.
bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

// Field values may hold visible ASCII, SP, HTAB and obs-text (bytes >= 0x80).
bool is_field_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// Bytes that are illegal anywhere in a request head, whatever line they are
// on: checking them as they arrive refuses binary garbage at once.
bool is_forbidden_ctl(unsigned char c) {
  return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const Field& f : fields_) {
    if (iequals(slice(f.name), name)) return slice(f.value);
  }
  return std::nullopt;
}

std::size_t Request::count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      fields_.begin(), fields_.end(), [&](const Field& f) { return iequals(slice(f.name), name); }));
}

bool Request::has_token(std::string_view name, std::string_view token) const {
  for (const Field& f : fields_) {
    if (!iequals(slice(f.name), name)) continue;
    std::string_view rest = slice(f.value);
    while (true) {
      const std::size_t comma = rest.find(',');
      if (iequals(trim_ows(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

RequestParser::RequestParser(std::size_t max_header_bytes)
    // Offsets are 32-bit; no sane head limit comes near that.
    : max_bytes_(std::min<std::size_t>(max_header_bytes, UINT32_MAX)) {}

void RequestParser::reset() {
  status_ = Status::NeedMore;
  error_status_ = 0;
  line_start_ = 0;
  total_ = 0;
  seen_request_line_ = false;
  req_ = Request{};
}

RequestParser::Result RequestParser::fail(int status, std::size_t consumed) {
  status_ = Status::Error;
  error_status_ = status;
  return {status_, consumed, status};
}

RequestParser::Result RequestParser::feed(std::string_view bytes) {
  if (status_ != Status::NeedMore) return {status_, 0, error_status_};
  std::string& buf = req_.buf_;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const void* nl = std::memchr(bytes.data() + i, '\n', bytes.size() - i);
    const std::size_t end =
        nl != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nl) - bytes.data()) + 1
                      : bytes.size();
    const std::string_view piece = bytes.substr(i, end - i);
    // Scan only up to the limit before reporting 431, so that the error
    // depends on the bytes alone and not on how reads happened to split them.
    const std::size_t room = max_bytes_ - total_;
    for (const char c : piece.substr(0, room)) {
      if (is_forbidden_ctl(static_cast<unsigned char>(c))) return fail(kBadRequest, i);
    }
    if (piece.size() > room) return fail(431, i);
    buf.append(piece);
    total_ += piece.size();
    i = end;
    if (nl == nullptr) break;

    std::size_t line_end = buf.size() - 1;  // index of the '\n'
    if (line_end > line_start_ && buf[line_end - 1] == '\r') --line_end;
    if (line_end == line_start_) {  // an empty line
      if (!seen_request_line_) {    // leading empty lines are skipped, but still count
        buf.clear();
        line_start_ = 0;
        continue;
      }
      if (const int st = finish_head(); st != 0) return fail(st, i);
      status_ = Status::Complete;
      return {status_, i, 0};
    }
    if (const int st = parse_line(line_start_, line_end); st != 0) return fail(st, i);
    line_start_ = buf.size();
  }
  return {Status::NeedMore, i, 0};
}

int RequestParser::parse_line(std::size_t begin, std::size_t end) {
  const std::string_view line = std::string_view(req_.buf_).substr(begin, end - begin);
  // A CR that does not end the line is a bare CR: RFC 9112 lets us refuse it.
  if (line.find('\r') != std::string_view::npos) return kBadRequest;
  if (!seen_request_line_) {
    seen_request_line_ = true;
    return parse_request_line(begin, end);
  }
  return parse_field_line(begin, end);
}

// request-line = method SP request-target SP HTTP-version, single spaces.
int RequestParser::parse_request_line(std::size_t begin, std::size_t end) {
  const std::string& b = req_.buf_;
  std::size_t p = begin;
  while (p < end && is_tchar(static_cast<unsigned char>(b[p]))) ++p;
  if (p == begin || p == end || b[p] != ' ') return kBadRequest;
  req_.method_ = {static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(p - begin)};

  const std::size_t t = ++p;
  // The target is visible ASCII only: URIs carry anything else percent-encoded.
  while (p < end && b[p] > 0x20 && b[p] < 0x7f) ++p;
  if (p == t || p == end || b[p] != ' ') return kBadRequest;
  req_.target_ = {static_cast<std::uint32_t>(t), static_cast<std::uint32_t>(p - t)};

  const std::string_view version = std::string_view(b).substr(p + 1, end - p - 1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) ||
      version[6] != '.' || !digit(version[7])) {
    return kBadRequest;
  }
  if (version == "HTTP/1.1") {
    req_.version_minor_ = 1;
  } else if (version == "HTTP/1.0") {
    req_.version_minor_ = 0;
  } else {
    return 505;
  }
  return 0;
}

// field-line = field-name ":" OWS field-value OWS
int RequestParser::parse_field_line(std::size_t begin, std::size_t end) {
  const std::string& b = req_.buf_;
  // A line starting with whitespace is obsolete folding (or junk between the
  // request line and the first field); both are refused, never unfolded.
  if (is_ows(b[begin])) return kBadRequest;
  std::size_t p = begin;
  while (p < end && is_tchar(static_cast<unsigned char>(b[p]))) ++p;
  // No colon, an empty name, or whitespace before the colon (a smuggling
  // vector, RFC 9112 section 5.1).
  if (p == begin || p == end || b[p] != ':') return kBadRequest;
  const std::size_t name_len = p - begin;
  ++p;
  while (p < end && is_ows(b[p])) ++p;
  std::size_t v_end = end;
  while (v_end > p && is_ows(b[v_end - 1])) --v_end;
  for (std::size_t q = p; q < v_end; ++q) {
    if (!is_field_value_char(static_cast<unsigned char>(b[q]))) return kBadRequest;
  }
  req_.fields_.push_back(
      {{static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(name_len)},
       {static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(v_end - p)}});
  return 0;
}

int RequestParser::finish_head() {
  const std::size_t hosts = req_.count("host");
  if (hosts > 1 || (hosts == 0 && req_.version_minor_ == 1)) return kBadRequest;
  // Other methods are answered 405 and the connection closed, body unread;
  // refusing their body with 400 would hide the more useful answer.
  if (req_.method() != "GET" && req_.method() != "HEAD") return 0;
  if (req_.count("transfer-encoding") != 0) return kBadRequest;
  for (std::size_t i = 0; i < req_.header_count(); ++i) {
    if (!iequals(req_.header_name(i), "content-length")) continue;
    const std::string_view v = req_.header_value(i);
    if (v.empty()) return kBadRequest;
    // Only a zero length is accepted ("0", "00", ...): we take no bodies.
    for (const char c : v) {
      if (c != '0') return kBadRequest;
    }
  }
  return 0;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

std::string response(int status, std::string_view reason, std::string_view content_type,
                     std::string_view body, std::string_view extra_headers) {
  std::string out;
  out.reserve(128 + content_type.size() + extra_headers.size() + body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason;
  out += "\r\n";
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += "\r\nConnection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace glockd::http
