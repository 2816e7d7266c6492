// The client's link to the daemon: one request line out and its answer
// lines in, each with a deadline, and watching the link while a lock is
// held; over a plain socket or TLS alike (the socket I/O is one Step at a
// time either way). Connecting is in connect.cpp, the typed calls in
// client.cpp.
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client/client.hpp"
#include "client/io.hpp"
#include "client/text.hpp"
#include "client/tls.hpp"

namespace glockd::client {

namespace {

using std::chrono::milliseconds;

std::string errno_text(int e) { return std::strerror(e); }

std::string sentinel_name() {
  unsigned char bytes[12];
  if (::getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bytes)) {
    const auto t = Clock::now().time_since_epoch().count() ^ (static_cast<long long>(::getpid()) << 40);
    std::memcpy(bytes, &t, 8);
    std::memset(bytes + 8, 0x5a, 4);
  }
  static const char hex[] = "0123456789abcdef";
  std::string s = "glock-end-";
  for (unsigned char c : bytes) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

bool is_part2(std::string_view request) {
  const auto cmd = request.substr(0, request.find(' '));
  return cmd == "w" || cmd == "sw" || cmd == "t" || cmd == "ra" || cmd == "grace" ||
         cmd == "session" || cmd == "resume";
}

// One step of sending or receiving, on the socket or through TLS.
Step send_some(int fd, TlsSession* tls, std::string_view bytes) {
  if (tls != nullptr) return tls->write(bytes);
  for (;;) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return Step{Step::Moved, static_cast<std::size_t>(n)};
    if (errno == EINTR) continue;
    const int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return Step{Step::WantWrite};
    return Step{Step::Failed, 0, errno_text(e), e == EPIPE ? Errc::Closed : Errc::Io};
  }
}

Step receive_some(int fd, TlsSession* tls, char* buf, std::size_t size) {
  if (tls != nullptr) return tls->read(buf, size);
  for (;;) {
    const ssize_t n = ::recv(fd, buf, size, MSG_DONTWAIT);
    if (n > 0) return Step{Step::Moved, static_cast<std::size_t>(n)};
    if (n == 0) return Step{Step::End};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Step{Step::WantRead};
    return Step{Step::Failed, 0, errno_text(errno)};
  }
}

}  // namespace

Client::~Client() {
  if (tls_ && fd_) tls_->close_notify();
}

Error Client::broken(Errc code, std::string message) {
  if (tls_) tls_->abandon();  // no close_notify: the link is in no order for one
  tls_.reset();
  fd_.reset();
  in_.clear();
  return Error{code, std::move(message)};
}

Error Client::unexpected(std::string_view request, std::string_view answer) const {
  return Error{Errc::Protocol, "unexpected answer from glockd at " + address_.text() + " to '" +
                                   printable(request, 100) + "': '" + printable(answer, 200) + "'"};
}

Error Client::refused(std::string_view request, std::string_view line) const {
  return Error{Errc::BadRequest, "glockd at " + address_.text() + " refused '" +
                                     printable(request, 100) + "': " +
                                     printable(line.substr(15), 200)};
}

Result<Done> Client::check_name(std::string_view name, const char* what) const {
  if (name.find('\n') != std::string_view::npos) {
    return Error{Errc::Usage, std::string(what) + " must not contain a newline"};
  }
  return Done{};
}

Result<Done> Client::send_all(std::string_view bytes, Clock::time_point deadline,
                              std::string_view what) {
  if (!fd_) return Error{Errc::Closed, "the connection to glockd at " + address_.text() + " is closed"};
  while (!bytes.empty()) {
    const Step s = send_some(fd_.get(), tls_.get(), bytes);
    switch (s.kind) {
      case Step::Moved: bytes.remove_prefix(s.n); continue;
      case Step::End:  // TLS: what the write had to read first was the end
        return broken(Errc::Closed, "glockd at " + address_.text() + " closed the connection");
      case Step::Failed:
        return broken(s.code, "sending to glockd at " + address_.text() + " failed: " + s.why);
      case Step::WantRead:
      case Step::WantWrite: break;
    }
    const int r = wait_for(fd_.get(), events_for(s), deadline);
    if (r == 0) {
      return broken(Errc::Timeout, "glockd at " + address_.text() + " did not take '" +
                                       std::string(what) + "' in time (it is not reading)");
    }
    if (r < 0) return broken(Errc::Io, "poll: " + errno_text(errno));
  }
  return Done{};
}

Result<std::string> Client::read_line(Clock::time_point deadline, std::string_view what) {
  if (!fd_) return Error{Errc::Closed, "the connection to glockd at " + address_.text() + " is closed"};
  std::size_t scanned = 0;
  for (;;) {
    const auto nl = in_.find('\n', scanned);
    if (nl != std::string::npos) {
      std::string line = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      answered_ = true;
      if (!line.empty() && line.back() == '\r') line.pop_back();  // the original's \r\n
      return line;
    }
    scanned = in_.size();
    if (in_.size() > kMaxAnswerLine) {
      return broken(Errc::Protocol, "an answer line from " + address_.text() + " is over " +
                                        std::to_string(kMaxAnswerLine >> 20) + " MiB");
    }
    char buf[16384];
    const Step s = receive_some(fd_.get(), tls_.get(), buf, sizeof buf);
    switch (s.kind) {
      case Step::Moved: in_.append(buf, s.n); continue;
      case Step::End: {
        std::string msg = "glockd at " + address_.text() +
                          " closed the connection before answering '" + std::string(what) + "'";
        if (!answered_ && address_.kind == Address::Kind::Tcp && !address_.tls) {
          msg += " (a glockd with --ssl closes a connection that does not speak TLS: is it "
                 "tls://" + address_.text() + "?)";
        }
        return broken(Errc::Closed, msg);
      }
      case Step::Failed:
        return broken(s.code, "the connection to glockd at " + address_.text() +
                                  " failed: " + s.why);
      case Step::WantRead:
      case Step::WantWrite: break;
    }
    const int r = wait_for(fd_.get(), events_for(s), deadline);
    if (r < 0) return broken(Errc::Io, "poll: " + errno_text(errno));
    if (r == 0) {
      std::string msg = "no answer from glockd at " + address_.text() + " to '" +
                        std::string(what) + "' within the deadline";
      if (is_part2(what)) {
        msg += " (a server that does not know this request, such as the original glockd, "
               "never answers it)";
      }
      return broken(Errc::Timeout, msg);
    }
  }
}

Result<std::string> Client::call(std::string request, milliseconds extra) {
  const auto deadline = Clock::now() + options_.request_timeout + extra;
  request += '\n';
  const std::string_view shown(request.data(), request.size() - 1);
  if (auto s = send_all(request, deadline, shown); !s) return s.error();
  return read_line(deadline, shown);
}

Result<std::vector<std::string>> Client::call_lines(std::string request) {
  // d, sd, who and q have no end marker: a lock query for a random name
  // right behind them marks it (answers are strictly ordered).
  const std::string sentinel = sentinel_name();
  const std::string end_free = "0 Lock Not Locked: " + sentinel;
  const std::string end_held = "1 Lock Is Locked: " + sentinel;
  const std::string bytes = request + "\ni " + sentinel + "\n";
  if (auto s = send_all(bytes, Clock::now() + options_.request_timeout, request); !s) {
    return s.error();
  }
  // The whole answer has the request's deadline and the one-line size
  // bound: a server trickling or flooding lines cannot hold or fill us.
  const auto deadline = Clock::now() + options_.request_timeout;
  std::size_t total = 0;
  std::vector<std::string> lines;
  for (;;) {
    auto line = read_line(deadline, request);
    if (!line) return line.error();
    if (*line == end_free || *line == end_held) return lines;
    total += line->size() + 1;
    if (total > kMaxAnswerLine) {
      return broken(Errc::Protocol, "the answer to '" + request + "' from " + address_.text() +
                                        " is over " + std::to_string(kMaxAnswerLine >> 20) +
                                        " MiB");
    }
    lines.push_back(std::move(*line));
  }
}

// --- the link --------------------------------------------------------------

std::optional<Error> Client::check_link() {
  if (!fd_) return Error{Errc::Closed, "the connection to glockd at " + address_.text() + " is closed"};
  for (;;) {
    char buf[4096];
    const Step s = receive_some(fd_.get(), tls_.get(), buf, sizeof buf);
    switch (s.kind) {
      case Step::Moved:
        // Nothing is due; keep it (bounded) so a later read sees it in order.
        if (in_.size() < 65536) in_.append(buf, s.n);
        continue;
      case Step::End:
        return broken(Errc::Closed, "glockd at " + address_.text() + " closed the connection");
      case Step::Failed:
        return broken(s.code, "the connection to glockd at " + address_.text() + " failed: " + s.why);
      case Step::WantRead:
      case Step::WantWrite: return std::nullopt;  // alive, as far as can be told now
    }
  }
}

Result<std::vector<std::string>> Client::raw(std::string_view request, std::size_t lines) {
  if (request.find('\n') != std::string_view::npos) {
    return Error{Errc::Usage, "a request is one line"};
  }
  const auto deadline = Clock::now() + options_.request_timeout;
  std::string bytes(request);
  bytes += '\n';
  if (auto s = send_all(bytes, deadline, request); !s) return s.error();
  std::vector<std::string> out;
  while (out.size() < lines) {
    auto line = read_line(deadline, request);
    if (!line) return line.error();
    out.push_back(std::move(*line));
  }
  return out;
}

}  // namespace glockd::client
