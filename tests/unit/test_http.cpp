// Unit tests for the HTTP request-head parser and response builder (src/http.hpp).
#include "http.hpp"

#include <gtest/gtest.h>

#include <string>

namespace glockd::http {
namespace {

using Status = RequestParser::Status;

constexpr std::string_view kSimple =
    "GET /metrics HTTP/1.1\r\n"
    "Host: localhost:9998\r\n"
    "User-Agent: curl/7.88\r\n"
    "Accept: */*\r\n"
    "\r\n";

RequestParser::Result parse_whole(RequestParser& p, std::string_view in) { return p.feed(in); }

int error_of(std::string_view in, std::size_t max = kDefaultMaxHeaderBytes) {
  RequestParser p(max);
  const auto r = p.feed(in);
  return r.status == Status::Error ? r.error_status : 0;
}

TEST(HttpParser, ParsesRequestLineAndHeaders) {
  RequestParser p;
  const auto r = parse_whole(p, kSimple);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.consumed, kSimple.size());
  EXPECT_EQ(r.error_status, 0);
  const Request& req = p.request();
  EXPECT_EQ(req.method(), "GET");
  EXPECT_EQ(req.target(), "/metrics");
  EXPECT_EQ(req.version_minor(), 1);
  ASSERT_EQ(req.header_count(), 3u);
  EXPECT_EQ(req.header_name(1), "User-Agent");
  EXPECT_EQ(req.header_value(1), "curl/7.88");
  EXPECT_EQ(req.header("accept"), "*/*");
  EXPECT_EQ(req.header("missing"), std::nullopt);
}

TEST(HttpParser, HeaderNamesAreCaseInsensitive) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nhOsT: x\r\nSec-WebSocket-Key: abc\r\n\r\n").status,
            Status::Complete);
  EXPECT_EQ(p.request().header("sec-websocket-key"), "abc");
  EXPECT_EQ(p.request().header("SEC-WEBSOCKET-KEY"), "abc");
  EXPECT_EQ(p.request().header("Host"), "x");
  EXPECT_EQ(p.request().count("HOST"), 1u);
  // The stored name keeps its original spelling.
  EXPECT_EQ(p.request().header_name(0), "hOsT");
}

TEST(HttpParser, ValuesAreTrimmedAndMayHoldObsText) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHost:x\r\nX-A: \t a b \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n")
                .status,
            Status::Complete);
  EXPECT_EQ(p.request().header("host"), "x");
  EXPECT_EQ(p.request().header("x-a"), "a b");
  EXPECT_EQ(p.request().header("x-b"), "");
  EXPECT_EQ(p.request().header("x-c"), "caf\xc3\xa9");
}

TEST(HttpParser, TokenListsAcrossHeaders) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
                   "Connection: close\r\nUpgrade: websocket\r\n\r\n")
                .status,
            Status::Complete);
  const Request& req = p.request();
  EXPECT_TRUE(req.has_token("connection", "upgrade"));
  EXPECT_TRUE(req.has_token("connection", "keep-alive"));
  EXPECT_TRUE(req.has_token("connection", "CLOSE"));
  EXPECT_FALSE(req.has_token("connection", "upgrad"));
  EXPECT_FALSE(req.has_token("connection", "keep-alive, upgrade"));
  EXPECT_TRUE(req.has_token("upgrade", "WebSocket"));
  EXPECT_FALSE(req.has_token("x-none", "websocket"));
  EXPECT_EQ(req.count("connection"), 2u);
  EXPECT_EQ(req.header("connection"), "keep-alive, Upgrade");
}

TEST(HttpParser, PartialRequestAcrossReadsEveryByte) {
  RequestParser p;
  for (std::size_t i = 0; i + 1 < kSimple.size(); ++i) {
    const auto r = p.feed(kSimple.substr(i, 1));
    ASSERT_EQ(r.status, Status::NeedMore) << "at byte " << i;
    ASSERT_EQ(r.consumed, 1u);
  }
  const auto r = p.feed(kSimple.substr(kSimple.size() - 1));
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.consumed, 1u);
  EXPECT_EQ(p.request().target(), "/metrics");
  EXPECT_EQ(p.request().header("user-agent"), "curl/7.88");
}

TEST(HttpParser, EverySplitPointGivesTheSameRequest) {
  const std::string tail = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  const std::string in = std::string(kSimple) + tail;
  for (std::size_t k = 0; k <= in.size(); ++k) {
    RequestParser p;
    std::string leftover;
    auto r = p.feed(std::string_view(in).substr(0, k));
    if (r.status == Status::Complete) {
      leftover = in.substr(r.consumed, k - r.consumed);
      leftover += in.substr(k);
    } else {
      ASSERT_EQ(r.status, Status::NeedMore);
      ASSERT_EQ(r.consumed, k);
      r = p.feed(std::string_view(in).substr(k));
      ASSERT_EQ(r.status, Status::Complete) << "split at " << k;
      leftover = in.substr(k + r.consumed);
    }
    EXPECT_EQ(leftover, tail) << "split at " << k;
    EXPECT_EQ(p.request().header_count(), 3u);
    EXPECT_EQ(p.request().header("host"), "localhost:9998");
  }
}

TEST(HttpParser, BytesAfterTheHeadAreNotConsumed) {
  RequestParser p;
  const std::string in = std::string(kSimple) + "GET /next HTTP/1.1\r\n";
  const auto r = p.feed(in);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.consumed, kSimple.size());
  EXPECT_EQ(in.substr(r.consumed), "GET /next HTTP/1.1\r\n");
  // Done: more input is not taken.
  const auto again = p.feed("more");
  EXPECT_EQ(again.status, Status::Complete);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(HttpParser, BareLineFeedsAreTolerated) {
  RequestParser p;
  const std::string_view in = "GET /healthz HTTP/1.0\nHost: a\r\nX: y\n\nrest";
  const auto r = p.feed(in);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(in.substr(r.consumed), "rest");
  EXPECT_EQ(p.request().version_minor(), 0);
  EXPECT_EQ(p.request().header("host"), "a");
  EXPECT_EQ(p.request().header("x"), "y");

  RequestParser q;  // CRLF then a bare LF as the blank line
  EXPECT_EQ(q.feed("GET / HTTP/1.1\r\nHost: a\r\n\n").status, Status::Complete);
}

TEST(HttpParser, LeadingEmptyLinesAreSkipped) {
  RequestParser p;
  const auto r = p.feed("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(p.request().method(), "GET");
  EXPECT_EQ(p.request().target(), "/");
}

TEST(HttpParser, HttpTenNeedsNoHost) {
  RequestParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.0\r\n\r\n").status, Status::Complete);
  EXPECT_EQ(p.request().version_minor(), 0);
  EXPECT_EQ(p.request().header_count(), 0u);
}

TEST(HttpParser, MalformedRequestLinesAre400) {
  EXPECT_EQ(error_of("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET /\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(error_of("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
}

TEST(HttpParser, MalformedHeadersAre400) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);   // obs-fold
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"), 400);           // ws before 1st
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);            // ws before colon
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), 400);  // no colon
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n"), 400);  // empty name
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n"), 400);  // bad name char
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n"), 400);         // control char
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n"), 400);         // DEL
  EXPECT_EQ(error_of(std::string_view("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", 28)), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), 400);          // bare CR
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), 400);           // CR CR LF
}

TEST(HttpParser, ControlBytesFailBeforeTheLineEnds) {
  RequestParser p;
  // A TLS ClientHello starts with 0x16: refused without waiting for a '\n'.
  const auto r = p.feed("\x16\x03\x01\x02");
  EXPECT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.error_status, 400);
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\n\r\n").status, Status::Error);
}

TEST(HttpParser, HostRules) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
}

TEST(HttpParser, BodiesAreRefused) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), 0);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -0\r\n\r\n"), 400);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
  EXPECT_EQ(error_of("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"), 400);
  // Other methods are the caller's to refuse (405), body unread.
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"), 0);
}

TEST(HttpParser, OversizedHeadIs431) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(50, 'v') + "\r\n\r\n";
  EXPECT_EQ(error_of(head, head.size()), 0);  // exactly at the limit is fine
  EXPECT_EQ(error_of(head, head.size() - 1), 431);

  // A line that never ends is refused once it passes the limit, byte by byte too.
  RequestParser p(64);
  const std::string endless = "GET /" + std::string(100, 'a');
  RequestParser::Result r{Status::NeedMore, 0, 0};
  std::size_t fed = 0;
  for (; fed < endless.size() && r.status == Status::NeedMore; ++fed) {
    r = p.feed(std::string_view(endless).substr(fed, 1));
  }
  EXPECT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.error_status, 431);
  EXPECT_EQ(fed, 65u);

  // Skipped empty lines count too, so they cannot go on forever.
  EXPECT_EQ(error_of(std::string(100, '\n'), 64), 431);
}

TEST(HttpParser, ErrorIsSticky) {
  RequestParser p;
  ASSERT_EQ(p.feed("BAD LINE\r\n").status, Status::Error);
  const auto r = p.feed(kSimple);
  EXPECT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.error_status, 400);
  EXPECT_EQ(r.consumed, 0u);
  p.reset();
  EXPECT_EQ(p.feed(kSimple).status, Status::Complete);
  EXPECT_EQ(p.request().target(), "/metrics");
}

TEST(HttpResponse, ExactBytes) {
  EXPECT_EQ(response(200, "OK", "text/plain", "ok\n"),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain\r\n"
            "Content-Length: 3\r\n"
            "Connection: close\r\n"
            "\r\n"
            "ok\n");
  EXPECT_EQ(response(404, "Not Found", "", ""),
            "HTTP/1.1 404 Not Found\r\n"
            "Content-Length: 0\r\n"
            "Connection: close\r\n"
            "\r\n");
  EXPECT_EQ(response(426, "Upgrade Required", "text/plain", "x", "Sec-WebSocket-Version: 13\r\n"),
            "HTTP/1.1 426 Upgrade Required\r\n"
            "Content-Type: text/plain\r\n"
            "Content-Length: 1\r\n"
            "Connection: close\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
            "x");
}

TEST(HttpResponse, ReasonPhrases) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(299), "");
}

TEST(HttpUtil, Iequals) {
  EXPECT_TRUE(iequals("Sec-WebSocket-Key", "sec-websocket-key"));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("abc", "ab"));
  EXPECT_FALSE(iequals("\xc3\xa9", "\xc3\x89"));  // ASCII only
}

}  // namespace
}  // namespace glockd::http
